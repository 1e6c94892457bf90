// pipe(2)s: the transport of a one-way Pipe, and an always-readable descriptor. Every call retries EINTR.
#pragma once

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <fcntl.h>
#include <mutex>
#include <span>
#include <unistd.h>
#include <utility>

#include "socket.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

/// Set while this thread is inside write_some's write(2): a SIGPIPE that arrives then is that
/// write's own, and the write reports EPIPE.
inline thread_local volatile std::sig_atomic_t in_pipe_write = 0;

/// The SIGPIPE handler installed in place of the default action: it ignores the signal raised by
/// write_some's write, and for any other does what the default would have done (end the process).
inline void sigpipe_handler(int sig) noexcept {
    if (in_pipe_write) return;
    const int saved = errno;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig); // delivered when this handler returns, with the default action
    errno = saved;
}

/// Makes a write to a pipe without readers an EPIPE error instead of the end of the process. Unlike
/// send(2), write(2) has no MSG_NOSIGNAL, and blocking SIGPIPE around every write costs two system
/// calls per message (1.2-1.5x a raw pipe round trip, measured in bench/pipe_bench.cpp). So, once
/// per process and only while SIGPIPE has its default action, a handler replaces that action; it
/// passes on every SIGPIPE but write_some's. An ignored SIGPIPE or the program's own handler is left
/// in place (with a handler of its own, the program sees the SIGPIPE of a send to a gone reader, as
/// it would for a raw write). Children inherit it; exec restores the default. One imprecision: a
/// SIGPIPE sent with kill(2) that lands on a thread inside write_some's write is lost.
inline void route_sigpipe() noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current {};
        if (::sigaction(SIGPIPE, nullptr, &current) != 0) return;
        if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) return;
        struct sigaction mine {};
        mine.sa_handler = sigpipe_handler;
        sigemptyset(&mine.sa_mask);
        mine.sa_flags = SA_RESTART;
        ::sigaction(SIGPIPE, &mine, nullptr);
    });
}

/// A close-on-exec pipe: {read end, write end}. The write end is non-blocking (write_some relies on
/// it); the read end blocks. Both are shared by every process forked afterwards.
inline std::pair<int, int> pipe_pair() {
    route_sigpipe();
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
/// whose read ends are all closed is peer_closed (see route_sigpipe, which pipe_pair has called).
inline IoResult write_some(int fd, std::span<const std::byte> bytes, std::size_t& sent) {
    ssize_t n;
    in_pipe_write = 1;
    do n = ::write(fd, bytes.data(), bytes.size());
    while (n < 0 && errno == EINTR);
    in_pipe_write = 0;
    const int err = errno;
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
