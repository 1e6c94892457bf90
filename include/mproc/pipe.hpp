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

#include <algorithm>
#include <chrono>
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

#include "codec.hpp"
#include "detail/deadline.hpp"
#include "detail/posix/pipe.hpp"
#include "detail/posix/socket.hpp"
#include "detail/posix/syscall.hpp"
#include "errors.hpp"

namespace mproc {

struct ReadySet;

/// The untyped part of a connection: the socket, framing and buffering. Typed ends are Connection<T>;
/// wait() takes any mix of them.
class ConnectionBase {
public:
    ConnectionBase(ConnectionBase&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), readable_(o.readable_), writable_(o.writable_), pipe_(o.pipe_),
          rx_(std::move(o.rx_)), rx_begin_(std::exchange(o.rx_begin_, 0)) {}
    ConnectionBase& operator=(ConnectionBase&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            readable_ = o.readable_;
            writable_ = o.writable_;
            pipe_ = o.pipe_;
            rx_ = std::move(o.rx_);
            rx_begin_ = std::exchange(o.rx_begin_, 0);
        }
        return *this;
    }
    ConnectionBase(const ConnectionBase&) = delete;
    ConnectionBase& operator=(const ConnectionBase&) = delete;
    ~ConnectionBase() { close(); }

    /// Sends raw bytes as one message. Throws EOFError if the other end is closed, StateError if this
    /// end is closed or receive-only.
    void send_bytes(std::span<const std::byte> bytes) {
        check("send_bytes", writable_, "receives only");
        send_frame(bytes.size(), [&](std::byte* out) { if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size()); });
    }

    /// One frame, one send: [u64 n][write(out) fills n bytes], built in a buffer kept between calls.
    template <class Write>
    void send_frame(std::size_t n, Write&& write) {
        tx_.resize(frame_header + n);
        std::uint64_t len = n;
        std::memcpy(tx_.data(), &len, frame_header);
        write(tx_.data() + frame_header);
        send_all(tx_, "send");
    }

    /// Receives one message's raw bytes, blocking until it is complete. Throws EOFError once the other
    /// end is closed and everything it sent has been read.
    std::vector<std::byte> recv_bytes() {
        std::vector<std::byte> out;
        recv_frame("recv_bytes", [&](std::span<const std::byte> b) { out.assign(b.begin(), b.end()); });
        return out;
    }

    /// Receives one frame and calls `use(bytes)` on it while it is still in the buffer.
    template <class Use>
    void recv_frame(const char* op, Use&& use) {
        check(op, readable_, "sends only");
        std::uint64_t n = 0;
        fill(frame_header, op, true);
        std::memcpy(&n, reinterpret_cast<const std::byte*>(rx_.data()) + rx_begin_, frame_header);
        if (n > max_message)
            throw SerializationError("Connection::recv_bytes: frame header announces " + std::to_string(n) +
                                     " bytes, more than the 1 TiB limit: the stream is corrupted");
        fill(frame_header + static_cast<std::size_t>(n), op, false);
        const std::byte* p = reinterpret_cast<const std::byte*>(rx_.data()) + rx_begin_ + frame_header;
        try {
            use(std::span<const std::byte>(p, static_cast<std::size_t>(n)));
        } catch (...) {
            consume(frame_header + static_cast<std::size_t>(n));
            throw;
        }
        consume(frame_header + static_cast<std::size_t>(n));
    }

    /// True if something can be read now or arrives within `d` (end-of-file counts: recv then throws).
    template <class Rep, class Period>
    bool poll(std::chrono::duration<Rep, Period> d) {
        check("poll", readable_, "sends only");
        return poll_until(detail::Deadline::after(d));
    }
    bool poll() { return poll(std::chrono::seconds(0)); }

    /// Closes this end (in this process). Idempotent.
    void close() noexcept {
        detail::posix::close_fd(fd_);
        fd_ = -1;
    }
    bool closed() const noexcept { return fd_ < 0; }
    bool readable() const noexcept { return readable_; }
    bool writable() const noexcept { return writable_; }
    /// The descriptor (a socket, or a pipe end for a one-way Pipe), e.g. for your own poll loop.
    /// Throws StateError if closed.
    int fileno() const {
        if (fd_ < 0) throw StateError("Connection::fileno: the connection is closed");
        return fd_;
    }

protected:
    /// Over `fd`, a stream socket, or (`pipe`) a pipe's read end (readable only) or its non-blocking
    /// write end (writable only).
    ConnectionBase(int fd, bool readable, bool writable, bool pipe = false)
        : fd_(fd), readable_(readable), writable_(writable), pipe_(pipe) {}

    bool poll_until(detail::Deadline d) {
        if (buffered() > 0) return true;
        std::vector<pollfd> fds{{fd_, POLLIN, 0}};
        return detail::posix::poll_until(fds, d) > 0;
    }

    void check(const char* op, bool allowed, const char* role) const {
        if (fd_ < 0) throw StateError(std::string("Connection::") + op + ": the connection is closed");
        if (!allowed) throw StateError(std::string("Connection::") + op + ": this end of a one-way Pipe " + role);
    }

private:
    friend ReadySet wait_ready(std::span<ConnectionBase* const>, std::span<const int>, detail::Deadline);
    static constexpr std::size_t frame_header = sizeof(std::uint64_t);
    static constexpr std::uint64_t max_message = std::uint64_t{1} << 40;
    static constexpr std::size_t read_chunk = 64 * 1024;

    std::size_t buffered() const noexcept { return rx_.size() - rx_begin_; }
    void consume(std::size_t n) noexcept {
        rx_begin_ += n;
        if (rx_begin_ == rx_.size()) {
            rx_.clear();
            rx_begin_ = 0;
        }
    }

    // Reads until `want` bytes are buffered. `at_boundary`: end-of-file before any byte of the
    // frame is the normal end; later it means the sender died mid-message.
    void fill(std::size_t want, const char* op, bool at_boundary) {
        while (buffered() < want) {
            if (!read_available(false)) {
                if (at_boundary && buffered() == 0) throw EOFError(std::string("Connection::") + op + ": the other end is closed");
                std::string got = std::to_string(buffered());
                consume(buffered()); // the cut message is dropped: the next call reports plain end-of-file
                throw EOFError(std::string("Connection::") + op + ": the other end closed in the middle of a message (" +
                               got + " of its " + std::to_string(want) + " framed bytes arrived)");
            }
        }
    }

    // Appends what the socket has to the buffer; blocks for it unless `nonblocking`. Returns false at
    // end-of-file; in non-blocking mode also returns true when nothing was there.
    bool read_available(bool nonblocking) {
        if (rx_begin_ > 0 && rx_begin_ >= rx_.size() / 2) { // compact before growing
            rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(rx_begin_));
            rx_begin_ = 0;
        }
        std::size_t old = rx_.size();
        if (rx_.capacity() < old + read_chunk) rx_.reserve(std::max(old + read_chunk, 2 * rx_.capacity()));
        rx_.resize(old + read_chunk); // NoInit elements: no memset of 64 KiB per read
        std::span<std::byte> room{reinterpret_cast<std::byte*>(rx_.data()) + old, read_chunk};
        // A pipe's read end is never asked for a non-blocking read: only a duplex end reads while it sends.
        ssize_t n = pipe_ ? detail::posix::read_some(fd_, room) : detail::posix::receive_some(fd_, room, nonblocking);
        rx_.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
        return n != 0;
    }

    void send_all(std::span<const std::byte> bytes, const char* op) {
        bool peer_eof = false; // the other end stopped sending: stop polling for input
        while (!bytes.empty()) {
            std::size_t sent = 0;
            auto result = pipe_ ? detail::posix::write_some(fd_, bytes, sent) : detail::posix::send_some(fd_, bytes, sent);
            switch (result) {
            case detail::posix::IoResult::done: bytes = bytes.subspan(sent); break;
            case detail::posix::IoResult::peer_closed:
                throw EOFError(std::string("Connection::") + op + ": the other end is closed");
            case detail::posix::IoResult::would_block: {
                // Wait for room, and meanwhile take in what the other end sends: it may be blocked
                // sending to us, and would never read until it is done.
                short events = static_cast<short>(POLLOUT | (readable_ && !peer_eof ? POLLIN : 0));
                std::vector<pollfd> fds{{fd_, events, 0}};
                detail::posix::poll_until(fds, detail::Deadline::never());
                if ((fds[0].revents & POLLIN) && !read_available(true)) peer_eof = true;
                break;
            }
            }
        }
    }

    int fd_ = -1;
    bool readable_ = true;
    bool writable_ = true;
    bool pipe_ = false;
    struct NoInit {
        std::byte b;
        NoInit() noexcept {} // left uninitialised on purpose: resize() must not memset
    };
    std::vector<NoInit> rx_;
    std::size_t rx_begin_ = 0;
    std::vector<std::byte> tx_;
};

/// One end of a Pipe<T>: send(T), recv() -> T.
template <Serializable T>
class Connection : public ConnectionBase {
public:
    /// Takes ownership of `fd`; see ConnectionBase. Pipe() is the usual way to get Connections.
    Connection(int fd, bool readable, bool writable, bool pipe = false) : ConnectionBase(fd, readable, writable, pipe) {}

    /// Sends `v`. Blocks while the socket is full (reading meanwhile, see above). Throws EOFError if
    /// the other end is closed, StateError if this end is closed or receive-only.
    void send(const T& v) {
        check("send", writable(), "receives only");
        send_frame(encoded_size(v), [&](std::byte* out) { encode_into(v, out); });
    }
    /// Receives the next message. Throws EOFError once the other end is closed and drained,
    /// SerializationError if the bytes do not decode as T.
    T recv() {
        T out{};
        recv_frame("recv", [&](std::span<const std::byte> b) { decode_into(b, out); });
        return out;
    }
};

/// A connected pair of Connections. Duplex (the default): both ends send and receive, over a
/// socketpair. One-way (`duplex = false`): Python's order, the first end receives and the second
/// sends, over a pipe (as Python's Pipe(duplex=False)). Throws OSError if the descriptors cannot be made.
template <Serializable T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
    if (!duplex) {
        auto [rx, tx] = detail::posix::pipe_pair();
        return {Connection<T>(rx, true, false, true), Connection<T>(tx, false, true, true)};
    }
    auto [a, b] = detail::posix::stream_socket_pair();
    return {Connection<T>(a, true, true), Connection<T>(b, true, true)};
}

/// What mproc::wait found ready: the connections with something to read (or at end-of-file) and the
/// sentinels (descriptors) that poll reported, each in the order given.
struct ReadySet {
    std::vector<ConnectionBase*> connections;
    std::vector<int> sentinels;
    bool empty() const noexcept { return connections.empty() && sentinels.empty(); }
};

/// One ppoll over every connection and sentinel; a connection with a message already buffered is
/// ready without waiting (the poll then only looks).
inline ReadySet wait_ready(std::span<ConnectionBase* const> conns, std::span<const int> sentinels, detail::Deadline d) {
    ReadySet ready;
    std::vector<pollfd> fds;
    fds.reserve(conns.size() + sentinels.size());
    std::vector<bool> buffered(conns.size(), false);
    for (std::size_t i = 0; i < conns.size(); ++i) {
        ConnectionBase* c = conns[i];
        if (c == nullptr) throw ValueError("mproc::wait: connection " + std::to_string(i) + " is a null pointer");
        c->check("wait", c->readable_, "sends only");
        buffered[i] = c->buffered() > 0;
        fds.push_back({c->fd_, POLLIN, 0});
    }
    for (int fd : sentinels) {
        if (fd < 0) throw ValueError("mproc::wait: sentinel " + std::to_string(fd) + " is not a descriptor");
        fds.push_back({fd, POLLIN, 0});
    }
    const bool any_buffered = std::find(buffered.begin(), buffered.end(), true) != buffered.end();
    detail::posix::poll_until(fds, any_buffered ? detail::Deadline::after(std::chrono::seconds(0)) : d);
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents & POLLNVAL)
            throw ValueError("mproc::wait: descriptor " + std::to_string(fds[i].fd) + " is not open");
        const bool is_ready = fds[i].revents != 0 || (i < conns.size() && buffered[i]);
        if (!is_ready) continue;
        if (i < conns.size())
            ready.connections.push_back(conns[i]);
        else
            ready.sentinels.push_back(fds[i].fd);
    }
    return ready;
}

/// The connections among `conns` that have something to read (or have reached end-of-file), waiting
/// up to `timeout` for one; empty on timeout. One poll(2), no busy wait. Throws StateError if one is
/// closed or send-only, ValueError for a null pointer. Uses no shared state: any thread may call it
/// on connections it alone uses.
template <class Rep, class Period>
std::vector<ConnectionBase*> wait(std::initializer_list<ConnectionBase*> conns, std::chrono::duration<Rep, Period> timeout) {
    return wait_ready({conns.begin(), conns.size()}, {}, detail::Deadline::after(timeout)).connections;
}
/// As above, without a timeout.
inline std::vector<ConnectionBase*> wait(std::initializer_list<ConnectionBase*> conns) {
    return wait_ready({conns.begin(), conns.size()}, {}, detail::Deadline::never()).connections;
}
/// As above, over a set whose size is known only at run time (e.g. a std::vector<ConnectionBase*>).
template <class Rep, class Period>
std::vector<ConnectionBase*> wait(std::span<ConnectionBase* const> conns, std::chrono::duration<Rep, Period> timeout) {
    return wait_ready(conns, {}, detail::Deadline::after(timeout)).connections;
}
inline std::vector<ConnectionBase*> wait(std::span<ConnectionBase* const> conns) {
    return wait_ready(conns, {}, detail::Deadline::never()).connections;
}

/// Python's multiprocessing.connection.wait over connections and sentinels together: blocks (one
/// poll) until one of `conns` has something to read or one of `sentinels` is readable, or `timeout`
/// passes (then the ReadySet is empty). A sentinel is any descriptor that becomes readable on an
/// event, such as Process::sentinel() (readable once that process has ended). Throws as above, and
/// ValueError for a negative or closed sentinel.
template <class Rep, class Period>
ReadySet wait(std::span<ConnectionBase* const> conns, std::span<const int> sentinels,
              std::chrono::duration<Rep, Period> timeout) {
    return wait_ready(conns, sentinels, detail::Deadline::after(timeout));
}
inline ReadySet wait(std::span<ConnectionBase* const> conns, std::span<const int> sentinels) {
    return wait_ready(conns, sentinels, detail::Deadline::never());
}

} // namespace mproc
