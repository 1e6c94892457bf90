// mproc/pipe.hpp — Pipe<T> and Connection<T> (Python's multiprocessing.Pipe), and wait() over several
// connections.
//
// A duplex Pipe is a connected pair of Unix stream sockets, a one-way Pipe a pipe(2) (the cheaper
// transport: raw round trips here, 9.3 us through two pipes against 16.7 us through a socketpair).
// Make either before forking: both processes then hold both ends. As in Python, each process should
// close() the end it does not use, or the other side never sees end-of-file. Messages are framed as [u64 length][codec bytes]; any size goes
// through. A send that would block also reads what the other end is sending into this connection's
// buffer, so two ends sending large messages to each other at the same moment never deadlock.
//
// A Connection is movable, not copyable, and not meant for use from several threads at once.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <poll.h>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "detail/algorithm.hpp"
#include "detail/chrono.hpp"
#include "codec.hpp"
#include "detail/channel.hpp"
#include "detail/deadline.hpp"
#include "detail/posix/pipe.hpp"
#include "detail/posix/socket.hpp"
#include "errors.hpp"

namespace mproc {

/// The untyped part of a connection: one end of a socket (or pipe), with its framing and buffering.
/// Typed ends are Connection<T>; wait() takes any mix of them.
class ConnectionBase {
public:
    ConnectionBase(ConnectionBase&&) noexcept = default;
    ConnectionBase& operator=(ConnectionBase&&) noexcept = default;
    ConnectionBase(const ConnectionBase&) = delete;
    ConnectionBase& operator=(const ConnectionBase&) = delete;
    ~ConnectionBase() = default;

    // send_bytes, recv_bytes, poll() and the wait() overloads without a duration are templates over
    // nothing (called as if they were not) so that a file that includes this header but does not call
    // them does not compile the connection's send and receive paths.

    /// Sends raw bytes as one message. Throws EOFError if the other end is closed, StateError if this
    /// end is closed or receive-only.
    template <class = void>
    void send_bytes(std::span<const std::byte> bytes) {
        channel_.check("send_bytes", channel_.writable(), "receives only");
        channel_.send_bytes(bytes);
    }

    /// Receives one message's raw bytes, blocking until it is complete. Throws EOFError once the other
    /// end is closed and everything it sent has been read.
    template <class = void>
    std::vector<std::byte> recv_bytes() {
        return channel_.recv_bytes("recv_bytes");
    }

    /// True if something can be read now or arrives within `d` (end-of-file counts: recv then throws).
    template <class Rep, class Period>
    bool poll(std::chrono::duration<Rep, Period> d) {
        channel_.check("poll", channel_.readable(), "sends only");
        return channel_.poll_until(detail::Deadline::after(d));
    }
    template <class = void>
    bool poll() {
        return poll(std::chrono::seconds(0));
    }

    /// Closes this end (in this process). Idempotent.
    void close() noexcept { channel_.close(); }
    bool closed() const noexcept { return channel_.fd() < 0; }
    bool readable() const noexcept { return channel_.readable(); }
    bool writable() const noexcept { return channel_.writable(); }
    /// The descriptor (a socket, or a pipe end for a one-way Pipe), e.g. for your own poll loop.
    /// Throws StateError if closed.
    int fileno() const {
        if (channel_.fd() < 0) throw StateError("Connection::fileno: the connection is closed");
        return channel_.fd();
    }

protected:
    /// Over `fd`, owned; see detail::Channel.
    ConnectionBase(int fd, bool readable, bool writable, bool pipe) : channel_(fd, readable, writable, pipe) {}

    detail::Channel& channel() noexcept { return channel_; }

private:
    friend struct detail::ChannelAccess;
    detail::Channel channel_;
};

namespace detail {
struct ConnectionMaker;
} // namespace detail

/// One end of a Pipe<T>: send(T), recv() -> T. Made by Pipe<T>().
template <Serializable T>
class Connection : public ConnectionBase {
public:
    /// Sends `v`. Blocks while the socket is full (reading meanwhile, see above). Throws EOFError if
    /// the other end is closed, StateError if this end is closed or receive-only.
    void send(const T& v) {
        channel().check("send", writable(), "receives only");
        channel().send_frame(encoded_size(v), [&](std::byte* out) { encode_into(v, out); });
    }
    /// Receives the next message. Throws EOFError once the other end is closed and drained,
    /// SerializationError if the bytes do not decode as T.
    T recv() {
        T out{};
        channel().recv_frame("recv", [&](std::span<const std::byte> b) { decode_into(b, out); });
        return out;
    }

private:
    // Pipe() builds the ends through this class (a friend class rather than the constrained function
    // template: clang 16 does not match a constrained friend template with its definition).
    friend struct detail::ConnectionMaker;
    Connection(int fd, bool readable, bool writable, bool pipe) : ConnectionBase(fd, readable, writable, pipe) {}
};

namespace detail {
/// Makes Connections over descriptors it owns from now on (Pipe's use only).
struct ConnectionMaker {
    template <class T>
    static Connection<T> make(int fd, bool readable, bool writable, bool pipe) {
        return Connection<T>(fd, readable, writable, pipe);
    }
};
} // namespace detail

/// A connected pair of Connections. Duplex (the default): both ends send and receive, over a
/// socketpair. One-way (`duplex = false`): Python's order, the first end receives and the second
/// sends, over a pipe (as Python's Pipe(duplex=False)). Throws OSError if the descriptors cannot be made.
template <Serializable T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
    if (!duplex) {
        auto [rx, tx] = detail::posix::pipe_pair();
        return {detail::ConnectionMaker::make<T>(rx, true, false, true), detail::ConnectionMaker::make<T>(tx, false, true, true)};
    }
    auto [a, b] = detail::posix::stream_socket_pair();
    return {detail::ConnectionMaker::make<T>(a, true, true, false), detail::ConnectionMaker::make<T>(b, true, true, false)};
}

/// What mproc::wait found ready: the connections with something to read (or at end-of-file) and the
/// sentinels (descriptors) that poll reported, each in the order given.
struct ReadySet {
    std::vector<ConnectionBase*> connections;
    std::vector<int> sentinels;
    bool empty() const noexcept { return connections.empty() && sentinels.empty(); }
};

/// The connections among `conns` that have something to read (or have reached end-of-file), waiting
/// up to `timeout` for one; empty on timeout. One poll(2), no busy wait. Throws StateError if one is
/// closed or send-only, ValueError for a null pointer. Uses no shared state: any thread may call it
/// on connections it alone uses.
template <class Rep, class Period>
std::vector<ConnectionBase*> wait(std::initializer_list<ConnectionBase*> conns, std::chrono::duration<Rep, Period> timeout) {
    return detail::wait_ready<ConnectionBase>({conns.begin(), conns.size()}, {}, detail::Deadline::after(timeout)).first;
}
/// As above, without a timeout.
template <class = void>
std::vector<ConnectionBase*> wait(std::initializer_list<ConnectionBase*> conns) {
    return detail::wait_ready<ConnectionBase>({conns.begin(), conns.size()}, {}, detail::Deadline::never()).first;
}
/// As above, over a set whose size is known only at run time (e.g. a std::vector<ConnectionBase*>).
template <class Rep, class Period>
std::vector<ConnectionBase*> wait(std::span<ConnectionBase* const> conns, std::chrono::duration<Rep, Period> timeout) {
    return detail::wait_ready(conns, {}, detail::Deadline::after(timeout)).first;
}
template <class = void>
std::vector<ConnectionBase*> wait(std::span<ConnectionBase* const> conns) {
    return detail::wait_ready(conns, {}, detail::Deadline::never()).first;
}

/// Python's multiprocessing.connection.wait over connections and sentinels together: blocks (one
/// poll) until one of `conns` has something to read or one of `sentinels` is readable, or `timeout`
/// passes (then the ReadySet is empty). A sentinel is any descriptor that becomes readable on an
/// event, such as Process::sentinel() (readable once that process has ended). Throws as above, and
/// ValueError for a negative or closed sentinel.
template <class Rep, class Period>
ReadySet wait(std::span<ConnectionBase* const> conns, std::span<const int> sentinels,
              std::chrono::duration<Rep, Period> timeout) {
    auto [ready, ended] = detail::wait_ready(conns, sentinels, detail::Deadline::after(timeout));
    return {std::move(ready), std::move(ended)};
}
template <class = void>
ReadySet wait(std::span<ConnectionBase* const> conns, std::span<const int> sentinels) {
    auto [ready, ended] = detail::wait_ready(conns, sentinels, detail::Deadline::never());
    return {std::move(ready), std::move(ended)};
}

} // namespace mproc
