// Who this process is (name, parent) and which children it has started: process-local bookkeeping
// that a forked child resets, together with everything else a child must not inherit as is.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <sys/types.h>

#include "arena.hpp"
#include "demangle.hpp"
#include "posix/process.hpp"

namespace mproc::detail {

/// Implemented by ChildProcess; lets live_children() see and reap the live children. The table links
/// them into a list through these members (no container, nothing to allocate when registering).
class ChildHandle {
public:
    virtual const std::string& handle_name() const noexcept = 0;
    virtual pid_t handle_pid() const noexcept = 0;
    virtual bool poll_alive() = 0;

protected:
    ChildHandle() = default;
    ChildHandle(const ChildHandle&) {} // a copy or move is not linked: the table relinks it
    ChildHandle& operator=(const ChildHandle&) { return *this; }
    ~ChildHandle() = default;

private:
    friend class Identity;
    ChildHandle* prev_ = nullptr;
    ChildHandle* next_ = nullptr;
};

class Identity {
public:
    static Identity& instance() {
        static Identity self;
        return self;
    }

    std::string name() {
        std::lock_guard g(m_);
        return name_;
    }
    /// False in the main process; else sets `name` and `pid` to the parent's.
    bool parent(std::string& name, pid_t& pid) {
        std::lock_guard g(m_);
        if (parent_pid_ == 0) return false;
        name = parent_name_;
        pid = parent_pid_;
        return true;
    }
    bool is_child() {
        std::lock_guard g(m_);
        return parent_pid_ != 0;
    }
    /// "Process-1", "Process-2"... per creating process, as Python names them.
    std::string next_child_name() {
        std::lock_guard g(m_);
        return "Process-" + std::to_string(++created_);
    }

    /// Links `c` in; noexcept, so that a moved ChildProcess can relink itself.
    void add_child(ChildHandle* c) noexcept {
        std::lock_guard g(m_);
        c->prev_ = last_;
        c->next_ = nullptr;
        (last_ ? last_->next_ : first_) = c;
        last_ = c;
    }
    /// Unlinks `c`; a no-op if it is not linked.
    void remove_child(ChildHandle* c) noexcept {
        std::lock_guard g(m_);
        if (c->prev_ == nullptr && first_ != c) return;
        (c->prev_ ? c->prev_->next_ : first_) = c->next_;
        (c->next_ ? c->next_->prev_ : last_) = c->prev_;
        c->prev_ = c->next_ = nullptr;
    }
    /// Calls `visit(name, pid)` for each registered child still running, in registration order (a
    /// moved ChildProcess registers again). Polling
    /// reaps an exited child, which unregisters it (remove_child, under the same recursive mutex).
    template <class Visit>
    void live_children(Visit&& visit) {
        std::lock_guard g(m_);
        for (ChildHandle* c = first_; c != nullptr;) {
            ChildHandle* next = c->next_;
            if (c->poll_alive()) visit(c->handle_name(), c->handle_pid());
            c = next;
        }
    }

    /// Runs in a freshly forked child, which has one thread: forget the parent's children, become
    /// `name`, and reset the arena's ownership. Mutexes other parent threads may have held at the
    /// fork are constructed anew.
    void become_child(std::string name, std::string parent_name, pid_t parent_pid) {
        new (&m_) std::recursive_mutex;
        first_ = last_ = nullptr;
        parent_name_ = std::move(parent_name);
        parent_pid_ = parent_pid;
        name_ = std::move(name);
        created_ = 0;
        Arena::instance().after_fork_in_child();
    }

private:
    Identity() = default;
    std::recursive_mutex m_;
    std::string name_ = "MainProcess";
    std::string parent_name_;
    pid_t parent_pid_ = 0; // 0: this is the main process
    ChildHandle* first_ = nullptr; // the children this process started, in start order
    ChildHandle* last_ = nullptr;
    int created_ = 0;
};

/// Says once per process, on stderr, that a fork happened while other threads ran (see the guide's
/// "Caveats"); MPROC_NO_FORK_WARNING=1 silences it.
inline void warn_if_threaded() {
    static std::atomic<bool> warned{false};
    if (warned.load(std::memory_order_relaxed)) return;
    int threads = posix::thread_count();
    if (threads <= 1 || warned.exchange(true)) return;
    if (const char* quiet = std::getenv("MPROC_NO_FORK_WARNING"); quiet && *quiet && *quiet != '0') return;
    std::fprintf(stderr,
                 "mproc: warning: forking while this process runs %d threads; the child gets only the forking "
                 "thread, and locks the others held stay locked in it (mproc keeps malloc, stdout and stderr "
                 "safe). Start processes and pools before threads where you can. MPROC_NO_FORK_WARNING=1 "
                 "silences this.\n",
                 threads);
}

/// Forks a child that will be known as `name`. Returns its pid in the parent, 0 in the child.
inline pid_t fork_named(const std::string& name) {
    warn_if_threaded();
    auto& self = Identity::instance();
    std::string me = self.name();
    pid_t my_pid = posix::current_pid();
    return posix::fork_child([&] { self.become_child(name, std::move(me), my_pid); });
}

} // namespace mproc::detail
