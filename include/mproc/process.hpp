// mproc/process.hpp — Process (Python's multiprocessing.Process), mproc::exit, and the process
// queries cpu_count, current_process, parent_process and active_children.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/deadline.hpp"
#include "detail/identity.hpp"
#include "detail/posix/pipe.hpp"
#include "detail/posix/process.hpp"
#include "errors.hpp"
#include "sync.hpp"

namespace mproc {

/// Options for a Process. `name` defaults to "Process-N"; a `daemon` process is terminated rather
/// than waited for when its Process object is destroyed.
struct ProcessOptions {
    std::string name = {};
    bool daemon = false;
};

namespace detail {

/// Where a child reports the exception that escaped its function. Lives in the arena, so the
/// parent reads it after the child has exited. Long texts are cut to fit.
struct ExitReport {
    std::atomic<std::uint32_t> has_error{0};
    char type_name[256] = {};
    char message[3840] = {};

    void record(const std::string& type, const char* what) noexcept {
        copy_cut(type_name, type.c_str());
        copy_cut(message, what);
        has_error.store(1, std::memory_order_release);
    }
    template <std::size_t N>
    static void copy_cut(char (&dst)[N], const char* src) noexcept {
        std::size_t n = std::min(std::strlen(src), N - 1);
        std::memcpy(dst, src, n);
        dst[n] = '\0';
    }
};

/// The callable and its copied arguments, type-erased.
class Task {
public:
    virtual ~Task() = default;
    virtual void run() = 0;
};

template <class F, class... Args>
class BoundTask final : public Task {
public:
    template <class G, class... A>
    explicit BoundTask(G&& f, A&&... args) : f_(std::forward<G>(f)), args_(std::forward<A>(args)...) {}
    void run() override { std::apply(f_, args_); }

private:
    F f_;
    std::tuple<Args...> args_;
};

} // namespace detail

/// A function running in a child process. Construct it with any callable and its arguments (copied,
/// as std::thread copies them; pass std::ref to share an object, which must then live in shared
/// memory to be seen by both sides), then start() it.
///
/// Movable, not copyable. Not meant to be used from several threads at once. A started Process
/// destroyed without join() is joined (daemon: terminated, then joined). Every child dies with its
/// parent: the kernel SIGKILLs it when the parent process dies (PR_SET_PDEATHSIG; note that Linux
/// ties this to the *thread* that called start(), so start processes from a thread that outlives them).
class Process final : private detail::ChildHandle {
public:
    template <class F, class... Args>
        requires(!std::is_same_v<std::remove_cvref_t<F>, ProcessOptions>)
    explicit Process(F&& fn, Args&&... args) : Process(ProcessOptions{}, std::forward<F>(fn), std::forward<Args>(args)...) {}

    template <class F, class... Args>
    Process(ProcessOptions options, F&& fn, Args&&... args) : s_(std::make_unique<State>()) {
        // Checked first, and nothing else instantiated when it fails, so that a shared object passed
        // by value gives this one message rather than pages of std::tuple errors.
        constexpr bool copyable = (std::is_constructible_v<std::decay_t<Args>, Args&&> && ...);
        static_assert(copyable,
                      "mproc::Process: an argument cannot be copied into the process (shared objects such as "
                      "Queue, Lock, Event, Condition, Barrier, Semaphore, SharedValue and SharedArray are "
                      "neither copyable nor movable; a Pipe end is not copyable): pass it by reference with "
                      "std::ref(object), or capture it by reference in a lambda");
        if constexpr (copyable) {
            static_assert(std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>,
                          "mproc::Process: the function cannot be called with these arguments (they are copied; "
                          "wrap an argument in std::ref to pass it by reference)");
            if constexpr (std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>)
                s_->task = std::make_unique<detail::BoundTask<std::decay_t<F>, std::decay_t<Args>...>>(
                    std::forward<F>(fn), std::forward<Args>(args)...);
        }
        s_->name = options.name.empty() ? detail::Identity::instance().next_child_name() : std::move(options.name);
        s_->daemon = options.daemon;
    }

    Process(Process&& other) noexcept : s_(std::move(other.s_)) { rebind(other); }
    Process& operator=(Process&& other) noexcept {
        if (this != &other) {
            finish();
            s_ = std::move(other.s_);
            rebind(other);
        }
        return *this;
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    // g++ 12 at -O3 reports -Warray-bounds ("array subscript 0 is outside array bounds of
    // 'mproc::Process [0]'") here, when this destructor is inlined into the loop with which
    // std::vector<Process>::_M_realloc_insert destroys the old elements of a vector that was empty:
    // a known g++ 12 false positive of vector's reallocation (the loop runs zero times). Silenced for
    // this one definition, for g++ only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
    ~Process() { finish(); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

    /// Forks; the child runs the function and leaves with _exit: 0 if it returned, 1 if an exception
    /// escaped (printed to stderr and kept for error()), N after mproc::exit(N).
    /// Throws StateError if already started or closed, OSError if fork fails.
    void start() {
        State& s = open_state("start");
        if (s.pid != 0) throw StateError("Process::start: process '" + s.name + "' was already started (pid " + std::to_string(s.pid) + ")");
        pid_t pid = detail::fork_named(s.name);
        if (pid == 0) run_child(s); // never returns
        s.pid = pid;
        detail::Identity::instance().add_child(this);
        s.registered = true;
    }

    /// Blocks until the process has exited. Joining again is a no-op. Throws StateError if never started.
    void join() { join_until_deadline(detail::Deadline::never(), "join"); }
    /// Blocks up to `d`; returns true if the process has exited.
    template <class Rep, class Period>
    bool join_for(std::chrono::duration<Rep, Period> d) {
        return join_until_deadline(detail::Deadline::after(d), "join_for");
    }
    template <class C, class D>
    bool join_until(std::chrono::time_point<C, D> t) {
        return join_until_deadline(detail::Deadline::until(t), "join_until");
    }

    /// True between start() and the child's exit (reaps it if it has exited). Throws StateError if closed.
    bool is_alive() {
        if (!s_) return false;
        return open_state("is_alive").pid != 0 && poll_alive();
    }

    /// Sends SIGTERM. Throws StateError if never started, already joined (its pid may be reused) or closed.
    void terminate() { signal("terminate", SIGTERM); }
    /// Sends SIGKILL. Throws as terminate().
    void kill() { signal("kill", SIGKILL); }
    /// Sends SIGINT (Python's interrupt(); by default it ends the child with exitcode -SIGINT).
    /// Throws as terminate().
    void interrupt() { signal("interrupt", SIGINT); }

    /// A file descriptor that becomes readable (POLLIN) once the process has ended and stays so
    /// (Python's sentinel): for poll/epoll loops and mproc::wait. Owned by this Process: valid until
    /// close() or destruction; do not close it or read from it. A pidfd; after the child was reaped
    /// without one, a descriptor that is readable at once. Does not block. Throws StateError if
    /// never started or closed, OSError if the kernel has no pidfd_open (Linux < 5.3).
    int sentinel() {
        State& s = open_state("sentinel");
        if (s.pid == 0) throw StateError("Process::sentinel: process '" + s.name + "' was never started");
        if (s.pidfd < 0) {
            // Once reaped, the pid may belong to another process: no pidfd for it any more.
            s.pidfd = s.exitcode ? detail::posix::readable_fd() : detail::posix::pidfd_open(s.pid);
            if (s.pidfd < 0)
                throw OSError(ENOSYS, "Process::sentinel: pidfd_open is not available on this kernel");
        }
        s.keep_sentinel = true;
        return s.pidfd;
    }

    /// Releases what the Process holds (its sentinel, the copied function and arguments, its report
    /// slot); Python's close(). Afterwards every call but name(), daemon(), pid() and close() throws
    /// StateError "closed". Idempotent; fine on a never-started Process. Reaps a child that has
    /// exited; throws StateError if it is still running (join() or terminate() it first).
    void close() {
        State& s = state("close");
        if (s.closed) return;
        if (s.pid != 0 && poll_alive())
            throw StateError("Process::close: process '" + s.name + "' (pid " + std::to_string(s.pid) +
                             ") is still running; join() or terminate() it first");
        detail::posix::close_fd(s.pidfd);
        s.pidfd = -1;
        s.task.reset();
        s.report.reset();
        s.closed = true;
    }

    /// The child's pid, 0 before start().
    pid_t pid() const noexcept { return s_ ? s_->pid : 0; }
    const std::string& name() const { return const_state("name").name; }
    bool daemon() const { return const_state("daemon").daemon; }

    /// nullopt while running (or before start); 0 after a normal return; 1 if an exception escaped;
    /// N after mproc::exit(N) or std::exit(N); -SIGNUM if a signal killed it.
    /// Throws StateError if closed.
    std::optional<int> exitcode() {
        if (!s_ || open_state("exitcode").pid == 0) return std::nullopt;
        poll_alive();
        return s_->exitcode;
    }

    /// The exception that escaped the function, once the process has exited. Throws StateError if closed.
    std::optional<RemoteError> error() {
        if (s_) open_state("error");
        if (!exitcode()) return std::nullopt;
        const detail::ExitReport& r = **s_->report;
        if (!r.has_error.load(std::memory_order_acquire)) return std::nullopt;
        return RemoteError(r.type_name, r.message, s_->pid);
    }

private:
    struct State {
        std::unique_ptr<detail::Task> task;
        std::string name;
        bool daemon = false;
        pid_t pid = 0;
        int pidfd = -1;
        bool keep_sentinel = false; // sentinel() gave pidfd out: it stays open until close()
        bool closed = false;
        bool registered = false;
        std::optional<int> exitcode;
        std::optional<detail::SharedBlock<detail::ExitReport>> report{std::in_place}; // empty once closed
    };

    // The identity table points at this object; a move must re-point it.
    void rebind(Process& from) noexcept {
        if (s_ && s_->registered) {
            auto& id = detail::Identity::instance();
            id.remove_child(&from);
            id.add_child(this);
        }
    }

    State& state(const char* op) {
        if (!s_) throw StateError(std::string("Process::") + op + ": this Process was moved from");
        return *s_;
    }
    State& open_state(const char* op) {
        State& s = state(op);
        if (s.closed) throw StateError(std::string("Process::") + op + ": process '" + s.name + "' is closed");
        return s;
    }
    const State& const_state(const char* op) const {
        if (!s_) throw StateError(std::string("Process::") + op + ": this Process was moved from");
        return *s_;
    }

    [[noreturn]] static void run_child(State& s) noexcept {
        int code = 0;
        try {
            s.task->run();
        } catch (...) {
            std::string type = detail::current_exception_type();
            std::string what = "(not derived from std::exception)";
            try {
                throw;
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            (*s.report)->record(type, what.c_str());
            detail::posix::flush_standard_streams();
            std::fprintf(stderr, "mproc: process '%s' (pid %d) failed: %s: %s\n", s.name.c_str(),
                         static_cast<int>(detail::posix::current_pid()), type.c_str(), what.c_str());
            code = 1;
        }
        detail::posix::flush_standard_streams();
        detail::posix::exit_now(code);
    }

    void settle(int status) {
        s_->exitcode = detail::posix::exitcode_from_status(status);
        if (!s_->keep_sentinel) {
            detail::posix::close_fd(s_->pidfd);
            s_->pidfd = -1;
        }
        if (s_->registered) {
            detail::Identity::instance().remove_child(this);
            s_->registered = false;
        }
    }

    bool join_until_deadline(detail::Deadline d, const char* op) {
        State& s = open_state(op);
        if (s.pid == 0) throw StateError(std::string("Process::") + op + ": process '" + s.name + "' was never started");
        if (s.exitcode) return true;
        // A pidfd to sleep on, opened on the first timed wait only (it costs a system call, and an
        // untimed join needs none). Until we reap the child its pid cannot be reused.
        if (!d.is_never() && s.pidfd < 0) {
            try {
                s.pidfd = detail::posix::pidfd_open(s.pid);
            } catch (const OSError&) {
                // wait_exit() falls back to polling waitpid
            }
        }
        auto status = detail::posix::wait_exit(s.pid, s.pidfd, d);
        if (!status) return false;
        settle(*status);
        return true;
    }

    void signal(const char* op, int sig) {
        State& s = open_state(op);
        if (s.pid == 0) throw StateError(std::string("Process::") + op + ": process '" + s.name + "' was never started");
        if (s.exitcode)
            throw StateError(std::string("Process::") + op + ": process '" + s.name + "' (pid " + std::to_string(s.pid) +
                             ") has already exited and been reaped; its pid may belong to another process now");
        detail::posix::send_signal(s.pid, sig);
    }

    // ChildHandle
    ProcessInfo info() const override { return {s_->name, s_->pid}; }
    bool poll_alive() override {
        if (s_->exitcode) return false;
        if (auto status = detail::posix::try_reap(s_->pid)) {
            settle(*status);
            return false;
        }
        return true;
    }

    void finish() noexcept {
        if (!s_ || s_->pid == 0 || s_->closed) return;
        try {
            if (!s_->exitcode && s_->daemon) {
                detail::posix::send_signal(s_->pid, SIGTERM);
                // A daemon that ignores SIGTERM must not hang its parent's destructor.
                if (!join_until_deadline(detail::Deadline::after(std::chrono::seconds(1)), "~Process"))
                    detail::posix::send_signal(s_->pid, SIGKILL);
            }
            join_until_deadline(detail::Deadline::never(), "~Process");
        } catch (...) {
        }
        detail::posix::close_fd(s_->pidfd);
        s_->pidfd = -1;
        if (s_->registered) detail::Identity::instance().remove_child(this);
    }

    std::unique_ptr<State> s_;
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
inline std::optional<ProcessInfo> parent_process() { return detail::Identity::instance().parent(); }

/// The children started by this process that are still running (finished ones are reaped, as in Python).
inline std::vector<ProcessInfo> active_children() { return detail::Identity::instance().live_children(); }

} // namespace mproc
