// One end of a byte stream between processes, framed as [u64 length][bytes]: the socket (or pipe
// end), its framing and its buffering. Under Connection<T> (pipe.hpp) and the pool's zygote. A send
// that would block also reads what the other end is sending into this end's buffer, so two ends
// sending large messages to each other at the same moment never deadlock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <poll.h>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "../errors.hpp"
#include "deadline.hpp"
#include "posix/pipe.hpp"
#include "posix/socket.hpp"
#include "posix/syscall.hpp"

namespace mproc::detail {

/// Movable, not copyable, for one thread at a time. Its errors name "Connection::<op>". A class
/// template over nothing, so that its members are compiled only where a connection sends or receives.
template <class = void>
class BasicChannel {
public:
    /// Over `fd` (owned), a stream socket, or (`pipe`) a pipe's read end (readable only) or its
    /// non-blocking write end (writable only).
    BasicChannel(int fd, bool readable, bool writable, bool pipe = false)
        : fd_(fd), readable_(readable), writable_(writable), pipe_(pipe) {}
    BasicChannel(BasicChannel&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), readable_(o.readable_), writable_(o.writable_), pipe_(o.pipe_),
          rx_(std::move(o.rx_)), rx_cap_(std::exchange(o.rx_cap_, 0)), rx_size_(std::exchange(o.rx_size_, 0)),
          rx_begin_(std::exchange(o.rx_begin_, 0)) {}
    BasicChannel& operator=(BasicChannel&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
            readable_ = o.readable_;
            writable_ = o.writable_;
            pipe_ = o.pipe_;
            rx_ = std::move(o.rx_);
            rx_cap_ = std::exchange(o.rx_cap_, 0);
            rx_size_ = std::exchange(o.rx_size_, 0);
            rx_begin_ = std::exchange(o.rx_begin_, 0);
        }
        return *this;
    }
    BasicChannel(const BasicChannel&) = delete;
    BasicChannel& operator=(const BasicChannel&) = delete;
    ~BasicChannel() { close(); }

    /// One frame, one send: [u64 n][write(out) fills n bytes], built in a buffer kept between calls.
    /// Throws EOFError if the other end is closed.
    template <class Write>
    void send_frame(std::size_t n, Write&& write) {
        tx_.resize(frame_header + n);
        std::uint64_t len = n;
        std::memcpy(tx_.data(), &len, frame_header);
        write(tx_.data() + frame_header);
        send_all(tx_, "send");
    }

    /// Sends `bytes` as one frame. Throws as send_frame.
    void send_bytes(std::span<const std::byte> bytes) {
        send_frame(bytes.size(), [&](std::byte* out) { if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size()); });
    }

    /// Receives one frame's bytes. Throws as recv_frame.
    std::vector<std::byte> recv_bytes(const char* op) {
        std::vector<std::byte> out;
        recv_frame(op, [&](std::span<const std::byte> b) { out.assign(b.begin(), b.end()); });
        return out;
    }

    /// Receives one frame and calls `use(bytes)` on it while it is still in the buffer. Throws
    /// EOFError once the other end is closed and everything it sent has been read.
    template <class Use>
    void recv_frame(const char* op, Use&& use) {
        check(op, readable_, "sends only");
        std::uint64_t n = 0;
        fill(frame_header, op, true);
        std::memcpy(&n, rx_.get() + rx_begin_, frame_header);
        if (n > max_message)
            throw SerializationError("Connection::recv_bytes: frame header announces " + std::to_string(n) +
                                     " bytes, more than the 1 TiB limit: the stream is corrupted");
        fill(frame_header + static_cast<std::size_t>(n), op, false);
        const std::byte* p = rx_.get() + rx_begin_ + frame_header;
        try {
            use(std::span<const std::byte>(p, static_cast<std::size_t>(n)));
        } catch (...) {
            consume(frame_header + static_cast<std::size_t>(n));
            throw;
        }
        consume(frame_header + static_cast<std::size_t>(n));
    }

    /// True if something can be read now or arrives before `d` (end-of-file counts).
    bool poll_until(Deadline d) {
        if (buffered() > 0) return true;
        pollfd fd{fd_, POLLIN, 0};
        return posix::poll_until({&fd, 1}, d) > 0;
    }

    /// Throws StateError naming "Connection::<op>" if closed, or if `allowed` is false (this end of
    /// a one-way pipe is `role`).
    void check(const char* op, bool allowed, const char* role) const {
        if (fd_ < 0) throw StateError(std::string("Connection::") + op + ": the connection is closed");
        if (!allowed) throw StateError(std::string("Connection::") + op + ": this end of a one-way Pipe " + role);
    }

    /// Idempotent.
    void close() noexcept {
        posix::close_fd(fd_);
        fd_ = -1;
    }
    int fd() const noexcept { return fd_; }
    bool readable() const noexcept { return readable_; }
    bool writable() const noexcept { return writable_; }
    /// Bytes received and not yet consumed.
    std::size_t buffered() const noexcept { return rx_size_ - rx_begin_; }

private:
    static constexpr std::size_t frame_header = sizeof(std::uint64_t);
    static constexpr std::uint64_t max_message = std::uint64_t{1} << 40;
    static constexpr std::size_t read_chunk = 64 * 1024;

    void consume(std::size_t n) noexcept {
        rx_begin_ += n;
        if (rx_begin_ == rx_size_) {
            rx_size_ = 0;
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
        if (rx_begin_ > 0 && rx_begin_ >= rx_size_ / 2) { // compact before growing
            std::memmove(rx_.get(), rx_.get() + rx_begin_, rx_size_ - rx_begin_);
            rx_size_ -= rx_begin_;
            rx_begin_ = 0;
        }
        if (rx_cap_ < rx_size_ + read_chunk) { // grown uninitialised: no memset of 64 KiB per read
            std::size_t cap = std::max(rx_size_ + read_chunk, 2 * rx_cap_);
            std::unique_ptr<std::byte[]> grown(new std::byte[cap]);
            if (rx_size_ > 0) std::memcpy(grown.get(), rx_.get(), rx_size_);
            rx_ = std::move(grown);
            rx_cap_ = cap;
        }
        std::span<std::byte> room{rx_.get() + rx_size_, read_chunk};
        // A pipe's read end is never asked for a non-blocking read: only a duplex end reads while it sends.
        ssize_t n = pipe_ ? posix::read_some(fd_, room) : posix::receive_some(fd_, room, nonblocking);
        rx_size_ += static_cast<std::size_t>(n > 0 ? n : 0);
        return n != 0;
    }

    void send_all(std::span<const std::byte> bytes, const char* op) {
        bool peer_eof = false; // the other end stopped sending: stop polling for input
        while (!bytes.empty()) {
            std::size_t sent = 0;
            auto result = pipe_ ? posix::write_some(fd_, bytes, sent) : posix::send_some(fd_, bytes, sent);
            switch (result) {
            case posix::IoResult::done: bytes = bytes.subspan(sent); break;
            case posix::IoResult::peer_closed:
                throw EOFError(std::string("Connection::") + op + ": the other end is closed");
            case posix::IoResult::would_block: {
                // Wait for room, and meanwhile take in what the other end sends: it may be blocked
                // sending to us, and would never read until it is done.
                short events = static_cast<short>(POLLOUT | (readable_ && !peer_eof ? POLLIN : 0));
                pollfd fd{fd_, events, 0};
                posix::poll_until({&fd, 1}, Deadline::never());
                if ((fd.revents & POLLIN) && !read_available(true)) peer_eof = true;
                break;
            }
            }
        }
    }

    int fd_ = -1;
    bool readable_ = true;
    bool writable_ = true;
    bool pipe_ = false;
    std::unique_ptr<std::byte[]> rx_; // [rx_begin_, rx_size_) received and not yet consumed
    std::size_t rx_cap_ = 0;
    std::size_t rx_size_ = 0;
    std::size_t rx_begin_ = 0;
    std::vector<std::byte> tx_;
};

using Channel = BasicChannel<>;

/// What the public connection types hand to the functions here: their Channel (a friend of theirs).
struct ChannelAccess {
    template <class Conn>
    static Channel& of(Conn& c) noexcept {
        return c.channel_;
    }
};

/// One ppoll over the channels of `conns` and over `sentinels`; a connection with a message already
/// buffered is ready without waiting (the poll then only looks). Returns the ready connections and
/// sentinels, each in the order given. Throws ValueError ("mproc::wait: ...") for a null connection,
/// a negative sentinel or a descriptor that is not open, StateError for a closed or send-only one.
template <class Conn>
std::pair<std::vector<Conn*>, std::vector<int>> wait_ready(std::span<Conn* const> conns, std::span<const int> sentinels,
                                                           Deadline d) {
    std::pair<std::vector<Conn*>, std::vector<int>> ready;
    std::vector<pollfd> fds;
    fds.reserve(conns.size() + sentinels.size());
    bool any_buffered = false;
    for (std::size_t i = 0; i < conns.size(); ++i) {
        if (conns[i] == nullptr) throw ValueError("mproc::wait: connection " + std::to_string(i) + " is a null pointer");
        Channel& c = ChannelAccess::of(*conns[i]);
        c.check("wait", c.readable(), "sends only");
        any_buffered = any_buffered || c.buffered() > 0;
        fds.push_back({c.fd(), POLLIN, 0});
    }
    for (int fd : sentinels) {
        if (fd < 0) throw ValueError("mproc::wait: sentinel " + std::to_string(fd) + " is not a descriptor");
        fds.push_back({fd, POLLIN, 0});
    }
    posix::poll_until(fds, any_buffered ? Deadline::after(std::chrono::seconds(0)) : d);
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents & POLLNVAL)
            throw ValueError("mproc::wait: descriptor " + std::to_string(fds[i].fd) + " is not open");
        const bool is_ready = fds[i].revents != 0 || (i < conns.size() && ChannelAccess::of(*conns[i]).buffered() > 0);
        if (!is_ready) continue;
        if (i < conns.size())
            ready.first.push_back(conns[i]);
        else
            ready.second.push_back(fds[i].fd);
    }
    return ready;
}

} // namespace mproc::detail
