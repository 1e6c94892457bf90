// fork, wait, signal and process-identity calls: everything Process needs from the OS.
#pragma once

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "../backoff.hpp"
#include "../deadline.hpp"
#include "futex.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

/// Flushes the standard streams (stdout, stderr and the standard iostreams), so that buffered output
/// is not inherited, and printed twice, by a child; a child flushes them again before _exit. Other
/// FILEs are left alone, as Python does: a child never flushes their inherited buffers, and their
/// locks may belong to another thread of the parent. An iostream is flushed only when its buffer
/// holds something: in a fresh child, touching empty buffers costs page faults (~15 µs a process).
inline void flush_standard_streams() noexcept {
    struct Peek : std::streambuf {
        static bool pending(std::streambuf* b) noexcept { return b && (b->*&Peek::pptr)() != (b->*&Peek::pbase)(); }
    };
    for (std::ostream* os : {&std::cout, &std::cerr, &std::clog})
        if (Peek::pending(os->rdbuf())) os->flush();
    std::fflush(stdout);
    std::fflush(stderr);
}

/// The number of threads in this process (1 if /proc cannot tell). One stat() call: procfs counts
/// a process's threads in the link count of its task directory (2 + threads).
inline int thread_count() noexcept {
    struct stat st {};
    if (::stat("/proc/self/task", &st) != 0 || st.st_nlink < 3) return 1;
    return static_cast<int>(st.st_nlink - 2);
}

/// Blocks every signal of the calling thread while it lives; restores the thread's mask as it was.
class AllSignalsBlocked {
public:
    AllSignalsBlocked() {
        sigset_t all;
        ::sigfillset(&all);
        check_pthread("pthread_sigmask", ::pthread_sigmask(SIG_SETMASK, &all, &saved_));
    }
    AllSignalsBlocked(const AllSignalsBlocked&) = delete;
    AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;
    ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_;
};

/// Forks, as reproc's process_fork does. Returns the child's pid in the parent; in the child, runs
/// `setup()` (the caller's bookkeeping) and returns 0.
///
/// Every signal is blocked across fork() and, in the child, until `setup()` is done; then both
/// processes restore the caller's mask. So no handler of the parent runs in a child that is not set
/// up yet: a signal that arrives meanwhile stays pending, and is delivered once the mask is restored
/// to the handlers the child inherits (Python's fork start method keeps them too, and so do mproc's
/// own, such as the SIGPIPE handler of posix/pipe.hpp); a fault inside `setup()` kills the child, as
/// the default action would. reproc also resets every handler in the child, which a child about to
/// exec can afford; here the blocked mask gives the same protection without the 64 sigaction calls
/// (about 1 us each on a VM) or a change of what the child inherits.
///
/// In the child, PR_SET_PDEATHSIG makes the kernel SIGKILL it when the forking thread's process
/// dies, and a parent that died before that was armed is caught by comparing getppid() with the
/// parent's pid read before the fork.
///
/// Forking while other threads run copies only this thread, and a lock another thread held at that
/// moment stays locked in the child. glibc's fork already takes malloc's locks around the fork; this
/// function does the same for stdout's and stderr's, the only streams a child touches on its own,
/// so they are free in the child whatever the parent's threads were printing.
template <class Setup>
pid_t fork_child(Setup&& setup) {
    flush_standard_streams();
    const pid_t parent = ::getpid();
    AllSignalsBlocked blocked; // restored on every way out, in both processes
    ::flockfile(stdout);
    ::flockfile(stderr);
    const pid_t pid = ::fork();
    const int err = errno;
    ::funlockfile(stderr);
    ::funlockfile(stdout);
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(128 + SIGKILL);
        setup();
        return 0;
    }
    if (pid < 0) throw_os_error("fork", err);
    return pid;
}

/// Leaves the process at once: no atexit handlers, no static destructors (they belong to the parent).
[[noreturn]] inline void exit_now(int code) noexcept { ::_exit(code); }

/// A pidfd (close-on-exec) to wait on with poll, or -1 where the kernel lacks pidfd_open.
inline int pidfd_open(pid_t pid) {
    long fd = ::syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == ENOSYS) return -1;
    throw_os_error("pidfd_open(" + std::to_string(pid) + ")", errno);
}

/// Reaps `pid` if it has exited; returns its wait status, or nullopt if it is still running.
inline std::optional<int> try_reap(pid_t pid) {
    int status = 0;
    pid_t r = check_call("waitpid", [&] { return ::waitpid(pid, &status, WNOHANG); });
    if (r == 0) return std::nullopt;
    return status;
}

/// Waits for `pid` to exit and reaps it; nullopt if the deadline passed first. Sleeps in poll on
/// the pidfd when there is one; without one, polls waitpid with a backoff of up to 10 ms.
inline std::optional<int> wait_exit(pid_t pid, int pidfd, Deadline deadline) {
    if (deadline.is_never()) {
        int status = 0;
        check_call("waitpid", [&] { return ::waitpid(pid, &status, 0); });
        return status;
    }
    Backoff backoff(std::chrono::microseconds(50), std::chrono::milliseconds(10));
    for (;;) {
        if (auto st = try_reap(pid)) return st;
        auto left = deadline.at() - Clock::now();
        if (left <= left.zero()) return std::nullopt;
        if (pidfd >= 0) {
            timespec ts = to_timespec(left);
            pollfd p{pidfd, POLLIN, 0};
            if (::ppoll(&p, 1, &ts, nullptr) < 0 && errno != EINTR) throw_os_error("ppoll(pidfd)", errno);
        } else {
            backoff.pause(deadline);
        }
    }
}

/// Sends `sig` to a child that has not been reaped yet (so its pid cannot have been reused).
/// A child that has already exited is not an error.
inline void send_signal(pid_t pid, int sig) {
    if (::kill(pid, sig) < 0 && errno != ESRCH) throw_os_error("kill(" + std::to_string(pid) + ")", errno);
}

/// Python's exitcode from a wait status: the exit status, or -SIGNUM when a signal killed it.
inline int exitcode_from_status(int status) noexcept {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

/// "SIGSEGV" for SIGSEGV; "signal 42" for numbers without a name.
inline std::string signal_name(int sig) {
    if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(sig);
}

inline pid_t current_pid() noexcept { return ::getpid(); }
inline pid_t parent_pid() noexcept { return ::getppid(); }

/// CPUs this process may run on (its affinity mask), at least 1.
inline int cpu_count() noexcept {
    cpu_set_t set;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

} // namespace mproc::detail::posix
