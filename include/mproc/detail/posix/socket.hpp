// Stream sockets for Pipe: socketpair, non-blocking send, receive, poll. Every call retries EINTR.
#pragma once

#include <cstddef>
#include <poll.h>
#include <span>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include "../deadline.hpp"
#include "futex.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

/// A connected pair of close-on-exec Unix stream sockets.
inline std::pair<int, int> stream_socket_pair() {
    int fds[2];
    check_call("socketpair(AF_UNIX, SOCK_STREAM)", [&] { return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); });
    return {fds[0], fds[1]};
}

enum class IoResult { done, would_block, peer_closed };

/// Sends what the socket takes now without blocking; `sent` gets the count. Never raises SIGPIPE.
inline IoResult send_some(int fd, std::span<const std::byte> bytes, std::size_t& sent) {
    for (;;) {
        ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) {
            sent = static_cast<std::size_t>(n);
            return IoResult::done;
        }
        if (errno == EINTR) continue;
        sent = 0;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block;
        if (errno == EPIPE || errno == ECONNRESET) return IoResult::peer_closed;
        throw_os_error("send", errno);
    }
}

/// Receives up to `room.size()` bytes, blocking unless `nonblocking`. Returns the count; 0 means the
/// peer closed; -1 (nonblocking only) means nothing is there now.
inline ssize_t receive_some(int fd, std::span<std::byte> room, bool nonblocking) {
    for (;;) {
        ssize_t n = ::recv(fd, room.data(), room.size(), nonblocking ? MSG_DONTWAIT : 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (nonblocking && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
        if (errno == ECONNRESET) return 0;
        throw_os_error("recv", errno);
    }
}

/// Polls `fds` for `events` until one is ready or `deadline` passes; fills revents. Returns the
/// number ready (0 on timeout).
inline int poll_until(std::span<pollfd> fds, Deadline deadline) {
    for (;;) {
        timespec ts{};
        const timespec* tp = nullptr;
        if (!deadline.is_never()) {
            auto left = deadline.at() - Clock::now();
            ts = to_timespec(left < left.zero() ? Clock::duration::zero() : left);
            tp = &ts;
        }
        int n = ::ppoll(fds.data(), fds.size(), tp, nullptr);
        if (n >= 0) return n;
        if (errno != EINTR) throw_os_error("ppoll", errno);
    }
}

} // namespace mproc::detail::posix
