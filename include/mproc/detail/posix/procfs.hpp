// Process identity that survives pid reuse: a pid together with its start time from /proc/<pid>/stat.
// The functions are templates over nothing (called as plain functions), so that they are compiled
// only where the pool's zygote or named shared memory uses them.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <unistd.h>

#include "syscall.hpp"

namespace mproc::detail::posix {

struct ProcessStat {
    char state = '?';            // R, S, D, Z (zombie), X (dead)...
    std::uint64_t start_time = 0; // clock ticks after boot: with the pid, unique until reboot
};

/// The state and start time of `pid`, or nullopt if there is no such process (or no /proc).
template <class = void>
std::optional<ProcessStat> process_stat(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    int fd = -1;
    for (;;) {
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0 || errno != EINTR) break;
    }
    if (fd < 0) return std::nullopt;
    char buf[1024];
    ssize_t n = -1;
    for (;;) {
        n = ::read(fd, buf, sizeof buf - 1);
        if (n >= 0 || errno != EINTR) break;
    }
    close_fd(fd);
    if (n <= 0) return std::nullopt; // ESRCH: it exited between open and read
    buf[n] = '\0';
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted
    // after the last ')'. The state is field 3, the start time field 22.
    std::string_view text(buf, static_cast<std::size_t>(n));
    std::size_t close = text.rfind(')');
    if (close == std::string_view::npos || close + 2 >= text.size()) return std::nullopt;
    ProcessStat out;
    out.state = text[close + 2];
    const char* p = buf + close + 2;
    for (int field = 3; field < 22; ++field) {
        while (*p && *p != ' ') ++p;
        while (*p == ' ') ++p;
        if (!*p) return std::nullopt;
    }
    out.start_time = std::strtoull(p, nullptr, 10);
    return out;
}

/// True while `pid` is the process that started at `start_time` and has not exited: a dead
/// process, a zombie waiting to be reaped, and a later process that got the same pid all say false.
template <class = void>
bool process_alive(pid_t pid, std::uint64_t start_time) {
    auto st = process_stat(pid);
    return st && st->state != 'Z' && st->state != 'X' && st->start_time == start_time;
}

/// The calling process's start time (read anew each time: a forked child is another process).
template <class = void>
std::uint64_t own_start_time() {
    auto st = process_stat(::getpid());
    return st ? st->start_time : 0;
}

} // namespace mproc::detail::posix
