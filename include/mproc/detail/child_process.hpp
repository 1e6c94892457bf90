// A child process started by fork, with its bookkeeping: the engine of Process (process.hpp), the
// pool's zygote and spawn(). Process adds the public constructor (with its compile-time checks on the
// function and arguments); everything else Process does is here, and its errors name "Process::<op>".
#pragma once

#include <atomic>
#include <cstddef>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "../errors.hpp"
#include "placement.hpp"
#include "deadline.hpp"
#include "identity.hpp"
#include "posix/pipe.hpp"
#include "posix/process.hpp"
#include "shared_layout.hpp"

namespace mproc::detail {

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
// Written by the child, read by the parent after the child's exit: the flag first, the texts after it.
static_assert(shareable_layout<ExitReport> && offsetof(ExitReport, type_name) == sizeof(std::atomic<std::uint32_t>) &&
              offsetof(ExitReport, message) == offsetof(ExitReport, type_name) + 256);

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

/// The task of calling fn(args...) on copies of the arguments (as Process and spawn take them). A
/// shared object passed by value, or arguments the function cannot take, stop the build with a
/// message that says what to do.
template <class F, class... Args>
std::unique_ptr<Task> bind_task(F&& fn, Args&&... args) {
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
            return std::make_unique<BoundTask<std::decay_t<F>, std::decay_t<Args>...>>(
                std::forward<F>(fn), std::forward<Args>(args)...);
    }
    return nullptr;
}

/// What Process calls on its child: Process's non-template members reach the child through this
/// interface, so that ChildProcess (a class template over nothing) is compiled only where a Process
/// is built (as Pool reaches its engine through PoolEngine).
class ChildControl {
public:
    virtual ~ChildControl() = default;
    virtual void start() = 0;
    virtual bool is_alive() = 0;
    virtual int sentinel() = 0;
    virtual void close() = 0;
    virtual pid_t pid() const noexcept = 0;
    virtual const std::string& name() const = 0;
    virtual bool daemon() const = 0;
    virtual std::optional<int> exitcode() = 0;
    virtual std::optional<RemoteError> error() = 0;
    virtual bool join_until(Deadline d, const char* op) = 0;
    virtual void signal(const char* op, int sig) = 0;
};

template <class = void>
class BasicChildProcess;
using ChildProcess = BasicChildProcess<>;

/// A child process running a Task; see Process for the contract of each member. Movable, not
/// copyable, for one thread at a time. Destroyed started and not closed: joined (daemon: terminated
/// first, SIGKILL after a second).
template <class>
class BasicChildProcess final : public ChildControl, private ChildHandle {
public:
    /// `name` empty: "Process-N". Does not fork yet (start()).
    BasicChildProcess(std::unique_ptr<Task> task, std::string name, bool daemon) : s_(std::make_unique<State>()) {
        s_->task = std::move(task);
        s_->name = name.empty() ? Identity::instance().next_child_name() : std::move(name);
        s_->daemon = daemon;
    }

    BasicChildProcess(BasicChildProcess&& other) noexcept : s_(std::move(other.s_)) { rebind(other); }
    BasicChildProcess& operator=(BasicChildProcess&& other) noexcept {
        if (this != &other) {
            finish();
            s_ = std::move(other.s_);
            rebind(other);
        }
        return *this;
    }
    BasicChildProcess(const BasicChildProcess&) = delete;
    BasicChildProcess& operator=(const BasicChildProcess&) = delete;

    ~BasicChildProcess() override { finish(); }

    /// As Process::start().
    void start() override {
        State& s = open_state("start");
        if (s.pid != 0) throw StateError("Process::start: process '" + s.name + "' was already started (pid " + std::to_string(s.pid) + ")");
        pid_t pid = fork_named(s.name);
        if (pid == 0) run_child(s); // never returns
        s.pid = pid;
        Identity::instance().add_child(this);
        s.registered = true;
    }

    /// As Process::is_alive().
    bool is_alive() override {
        if (!s_) return false;
        return open_state("is_alive").pid != 0 && poll_alive();
    }

    /// As Process::sentinel().
    int sentinel() override {
        State& s = open_state("sentinel");
        if (s.pid == 0) throw StateError("Process::sentinel: process '" + s.name + "' was never started");
        if (s.pidfd < 0) {
            // Once reaped, the pid may belong to another process: no pidfd for it any more.
            s.pidfd = s.exitcode ? posix::readable_fd() : posix::pidfd_open(s.pid);
            if (s.pidfd < 0)
                throw OSError(ENOSYS, "Process::sentinel: pidfd_open is not available on this kernel");
        }
        s.keep_sentinel = true;
        return s.pidfd;
    }

    /// As Process::close().
    void close() override {
        State& s = state("close");
        if (s.closed) return;
        if (s.pid != 0 && poll_alive())
            throw StateError("Process::close: process '" + s.name + "' (pid " + std::to_string(s.pid) +
                             ") is still running; join() or terminate() it first");
        posix::close_fd(s.pidfd);
        s.pidfd = -1;
        s.task.reset();
        s.report.reset();
        s.closed = true;
    }

    /// As Process::pid().
    pid_t pid() const noexcept override { return s_ ? s_->pid : 0; }
    const std::string& name() const override { return const_state("name").name; }
    bool daemon() const override { return const_state("daemon").daemon; }

    /// As Process::exitcode().
    std::optional<int> exitcode() override {
        if (!s_ || open_state("exitcode").pid == 0) return std::nullopt;
        poll_alive();
        return s_->exitcode;
    }

    /// As Process::error().
    std::optional<RemoteError> error() override {
        if (s_) open_state("error");
        if (!exitcode()) return std::nullopt;
        const ExitReport& r = **s_->report;
        if (!r.has_error.load(std::memory_order_acquire)) return std::nullopt;
        return RemoteError(r.type_name, r.message, s_->pid);
    }

    /// Blocks until the child has exited or `d` passes; true if it has exited (and was reaped).
    /// `op` names the call in errors. Throws StateError if never started or closed.
    bool join_until(Deadline d, const char* op) override {
        State& s = open_state(op);
        if (s.pid == 0) throw StateError(std::string("Process::") + op + ": process '" + s.name + "' was never started");
        if (s.exitcode) return true;
        // A pidfd to sleep on, opened on the first timed wait only (it costs a system call, and an
        // untimed join needs none). Until we reap the child its pid cannot be reused.
        if (!d.is_never() && s.pidfd < 0) {
            try {
                s.pidfd = posix::pidfd_open(s.pid);
            } catch (const OSError&) {
                // wait_exit() falls back to polling waitpid
            }
        }
        auto status = posix::wait_exit(s.pid, s.pidfd, d);
        if (!status) return false;
        settle(*status);
        return true;
    }

    /// Sends `sig`; `op` names the call in errors. Throws StateError if never started, already
    /// reaped (its pid may be reused) or closed.
    void signal(const char* op, int sig) override {
        State& s = open_state(op);
        if (s.pid == 0) throw StateError(std::string("Process::") + op + ": process '" + s.name + "' was never started");
        if (s.exitcode)
            throw StateError(std::string("Process::") + op + ": process '" + s.name + "' (pid " + std::to_string(s.pid) +
                             ") has already exited and been reaped; its pid may belong to another process now");
        posix::send_signal(s.pid, sig);
    }

private:
    struct State {
        std::unique_ptr<Task> task;
        std::string name;
        bool daemon = false;
        pid_t pid = 0;
        int pidfd = -1;
        bool keep_sentinel = false; // sentinel() gave pidfd out: it stays open until close()
        bool closed = false;
        bool registered = false;
        std::optional<int> exitcode;
        std::optional<SharedBlock<ExitReport>> report{std::in_place}; // empty once closed
    };

    // The identity table points at this object; a move must re-point it.
    void rebind(BasicChildProcess& from) noexcept {
        if (s_ && s_->registered) {
            auto& id = Identity::instance();
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
            std::string type = current_exception_type();
            std::string what = "(not derived from std::exception)";
            try {
                throw;
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            (*s.report)->record(type, what.c_str());
            posix::flush_standard_streams();
            std::fprintf(stderr, "mproc: process '%s' (pid %d) failed: %s: %s\n", s.name.c_str(),
                         static_cast<int>(posix::current_pid()), type.c_str(), what.c_str());
            code = 1;
        }
        posix::flush_standard_streams();
        posix::exit_now(code);
    }

    void settle(int status) {
        s_->exitcode = posix::exitcode_from_status(status);
        if (!s_->keep_sentinel) {
            posix::close_fd(s_->pidfd);
            s_->pidfd = -1;
        }
        if (s_->registered) {
            Identity::instance().remove_child(this);
            s_->registered = false;
        }
    }

    // ChildHandle
    const std::string& handle_name() const noexcept override { return s_->name; }
    pid_t handle_pid() const noexcept override { return s_->pid; }
    bool poll_alive() override {
        if (s_->exitcode) return false;
        if (auto status = posix::try_reap(s_->pid)) {
            settle(*status);
            return false;
        }
        return true;
    }

    void finish() noexcept {
        if (!s_ || s_->pid == 0 || s_->closed) return;
        try {
            if (!s_->exitcode && s_->daemon) {
                posix::send_signal(s_->pid, SIGTERM);
                // A daemon that ignores SIGTERM must not hang its parent's destructor.
                if (!join_until(Deadline::after(std::chrono::seconds(1)), "~Process"))
                    posix::send_signal(s_->pid, SIGKILL);
            }
            join_until(Deadline::never(), "~Process");
        } catch (...) {
        }
        posix::close_fd(s_->pidfd);
        s_->pidfd = -1;
        if (s_->registered) Identity::instance().remove_child(this);
    }

    std::unique_ptr<State> s_;
};

} // namespace mproc::detail
