// pipe(2)s: the transport of a one-way Pipe, and an always-readable descriptor. Every call retries EINTR.
#pragma once

#include <csignal>
#include <cstddef>
#include <fcntl.h>
#include <pthread.h>
#include <span>
#include <unistd.h>
#include <utility>

#include "socket.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

/// A close-on-exec pipe: {read end, write end}. The write end is non-blocking (write_some relies on
/// it); the read end blocks. Both are shared by every process forked afterwards.
inline std::pair<int, int> pipe_pair() {
    int fds[2];
    check_call("pipe2", [&] { return ::pipe2(fds, O_CLOEXEC); });
    int flags = ::fcntl(fds[1], F_GETFL);
    if (flags < 0 || ::fcntl(fds[1], F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = errno;
        close_fd(fds[0]);
        close_fd(fds[1]);
        throw_os_error("fcntl(F_SETFL, O_NONBLOCK)", err);
    }
    return {fds[0], fds[1]};
}

/// The read end of a pipe holding one byte, its write end closed: poll reports POLLIN (and POLLHUP)
/// on it until someone reads it.
inline int readable_fd() {
    int fds[2];
    check_call("pipe2", [&] { return ::pipe2(fds, O_CLOEXEC); });
    const char byte = 0;
    check_call("write(pipe)", [&] { return ::write(fds[1], &byte, 1); }); // an empty pipe takes it
    close_fd(fds[1]);
    return fds[0];
}

/// Writes what the pipe takes now (its write end is non-blocking); `sent` gets the count. A pipe
/// whose read ends are all closed is peer_closed, never SIGPIPE: unlike send(2), write(2) has no
/// MSG_NOSIGNAL, so SIGPIPE is blocked in this thread around the write and the one the write raised
/// is taken back before the mask is restored (two rt_sigprocmask calls, ~0.1 us each).
inline IoResult write_some(int fd, std::span<const std::byte> bytes, std::size_t& sent) {
    sigset_t pipe_signal, old;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, &old);
    ssize_t n;
    do n = ::write(fd, bytes.data(), bytes.size());
    while (n < 0 && errno == EINTR);
    const int err = errno;
    if (!sigismember(&old, SIGPIPE)) {
        if (n < 0 && err == EPIPE) {
            timespec now{};
            while (::sigtimedwait(&pipe_signal, nullptr, &now) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    sent = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (n >= 0) return IoResult::done;
    if (err == EAGAIN || err == EWOULDBLOCK) return IoResult::would_block;
    if (err == EPIPE) return IoResult::peer_closed;
    throw_os_error("write(pipe)", err);
}

/// Reads up to `room.size()` bytes, blocking until some arrive. Returns the count; 0 means every
/// write end is closed.
inline ssize_t read_some(int fd, std::span<std::byte> room) {
    return check_call("read(pipe)", [&] { return ::read(fd, room.data(), room.size()); });
}

} // namespace mproc::detail::posix
