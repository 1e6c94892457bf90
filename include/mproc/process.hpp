// mproc/process.hpp — Process (Python's multiprocessing.Process), mproc::exit, and the process
// queries cpu_count, current_process, parent_process and active_children.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/algorithm.hpp"
#include "detail/chrono.hpp"
#include "detail/child_process.hpp"
#include "detail/deadline.hpp"
#include "detail/functional.hpp"
#include "detail/identity.hpp"
#include "detail/posix/process.hpp"
#include "errors.hpp"

namespace mproc {

/// Options for a Process. `name` defaults to "Process-N"; a `daemon` process is terminated rather
/// than waited for when its Process object is destroyed.
struct ProcessOptions {
    std::string name = {};
    bool daemon = false;
};

/// A process's name and pid, as current_process(), parent_process() and active_children() report them.
struct ProcessInfo {
    std::string name;
    pid_t pid = 0;
};

/// A function running in a child process. Construct it with any callable and its arguments (copied,
/// as std::thread copies them; pass std::ref to share an object, which must then live in shared
/// memory to be seen by both sides), then start() it.
///
/// Movable, not copyable. Not meant to be used from several threads at once. A started Process
/// destroyed without join() is joined (daemon: terminated, then joined). Every child dies with its
/// parent: the kernel SIGKILLs it when the parent process dies (PR_SET_PDEATHSIG; note that Linux
/// ties this to the *thread* that called start(), so start processes from a thread that outlives them).
class Process final {
public:
    template <class F, class... Args>
        requires(!std::is_same_v<std::remove_cvref_t<F>, ProcessOptions>)
    explicit Process(F&& fn, Args&&... args) : Process(ProcessOptions{}, std::forward<F>(fn), std::forward<Args>(args)...) {}

    template <class F, class... Args>
    Process(ProcessOptions options, F&& fn, Args&&... args)
        : child_(std::make_unique<detail::ChildProcess>(detail::bind_task(std::forward<F>(fn), std::forward<Args>(args)...),
                                                        std::move(options.name), options.daemon)) {}

    Process(Process&&) noexcept = default;
    Process& operator=(Process&&) noexcept = default;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    /// Joins a started child (a daemon: SIGTERM first, SIGKILL after a second).
    // g++ 12 (at -O2 and -O3) reports -Warray-bounds ("array subscript 0 is outside array bounds of
    // 'mproc::Process [0]'") here, when this destructor is inlined into the loop with which
    // std::vector<Process>::_M_realloc_insert destroys the old elements of a vector that was empty:
    // a known g++ 12 false positive of vector's reallocation (the loop runs zero times). Silenced for
    // this one definition, for g++ only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
    ~Process() = default;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    /// Forks; the child runs the function and leaves with _exit: 0 if it returned, 1 if an exception
    /// escaped (printed to stderr and kept for error()), N after mproc::exit(N).
    /// Throws StateError if already started or closed, OSError if fork fails.
    void start() { child("start").start(); }

    /// Blocks until the process has exited. Joining again is a no-op. Throws StateError if never started.
    void join() { child("join").join_until(detail::Deadline::never(), "join"); }
    /// Blocks up to `d`; returns true if the process has exited.
    template <class Rep, class Period>
    bool join_for(std::chrono::duration<Rep, Period> d) {
        return child("join_for").join_until(detail::Deadline::after(d), "join_for");
    }
    template <class C, class D>
    bool join_until(std::chrono::time_point<C, D> t) {
        return child("join_until").join_until(detail::Deadline::until(t), "join_until");
    }

    /// True between start() and the child's exit (reaps it if it has exited). Throws StateError if closed.
    bool is_alive() { return child_ && child_->is_alive(); }

    /// Sends SIGTERM. Throws StateError if never started, already joined (its pid may be reused) or closed.
    void terminate() { child("terminate").signal("terminate", SIGTERM); }
    /// Sends SIGKILL. Throws as terminate().
    void kill() { child("kill").signal("kill", SIGKILL); }
    /// Sends SIGINT (Python's interrupt(); by default it ends the child with exitcode -SIGINT).
    /// Throws as terminate().
    void interrupt() { child("interrupt").signal("interrupt", SIGINT); }

    /// A file descriptor that becomes readable (POLLIN) once the process has ended and stays so
    /// (Python's sentinel): for poll/epoll loops and mproc::wait. Owned by this Process: valid until
    /// close() or destruction; do not close it or read from it. A pidfd; after the child was reaped
    /// without one, a descriptor that is readable at once. Does not block. Throws StateError if
    /// never started or closed, OSError if the kernel has no pidfd_open (Linux < 5.3).
    int sentinel() { return child("sentinel").sentinel(); }

    /// Releases what the Process holds (its sentinel, the copied function and arguments, its report
    /// slot); Python's close(). Afterwards every call but name(), daemon(), pid() and close() throws
    /// StateError "closed". Idempotent; fine on a never-started Process. Reaps a child that has
    /// exited; throws StateError if it is still running (join() or terminate() it first).
    void close() { child("close").close(); }

    /// The child's pid, 0 before start().
    pid_t pid() const noexcept { return child_ ? child_->pid() : 0; }
    /// "Process-N" unless given in ProcessOptions. Throws StateError if moved from.
    const std::string& name() const { return child("name").name(); }
    /// Throws StateError if moved from.
    bool daemon() const { return child("daemon").daemon(); }

    /// nullopt while running (or before start); 0 after a normal return; 1 if an exception escaped;
    /// N after mproc::exit(N) or std::exit(N); -SIGNUM if a signal killed it.
    /// Throws StateError if closed.
    std::optional<int> exitcode() { return child_ ? child_->exitcode() : std::nullopt; }

    /// The exception that escaped the function, once the process has exited. Throws StateError if closed.
    std::optional<RemoteError> error() { return child_ ? child_->error() : std::nullopt; }

private:
    detail::ChildControl& child(const char* op) const {
        if (!child_) throw StateError(std::string("Process::") + op + ": this Process was moved from");
        return *child_;
    }

    std::unique_ptr<detail::ChildControl> child_; // on the heap: a moved Process leaves its child where it is
};

/// Ends the calling process with exit code `code`. In a process started by mproc: flushes stdio and
/// leaves with _exit, so the parent's atexit handlers and static destructors do not run twice; its
/// exitcode() becomes `code`. In the main process: std::exit(code).
[[noreturn]] inline void exit(int code) {
    if (!detail::Identity::instance().is_child()) std::exit(code);
    detail::posix::flush_standard_streams();
    detail::posix::exit_now(code);
}

/// The number of CPUs this process may run on (at least 1).
inline int cpu_count() noexcept { return detail::posix::cpu_count(); }

/// This process: "MainProcess" in the program's first process, the Process's name in a child.
inline ProcessInfo current_process() { return {detail::Identity::instance().name(), detail::posix::current_pid()}; }

/// The process that started this one, or nullopt in the main process.
inline std::optional<ProcessInfo> parent_process() {
    ProcessInfo parent;
    if (!detail::Identity::instance().parent(parent.name, parent.pid)) return std::nullopt;
    return parent;
}

/// The children started by this process that are still running (finished ones are reaped, as in Python).
inline std::vector<ProcessInfo> active_children() {
    std::vector<ProcessInfo> out;
    detail::Identity::instance().live_children([&](const std::string& name, pid_t pid) { out.push_back({name, pid}); });
    return out;
}

} // namespace mproc
