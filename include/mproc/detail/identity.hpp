// Who this process is (name, parent) and which children it has started: process-local bookkeeping
// that a forked child resets, together with everything else a child must not inherit as is.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "arena.hpp"
#include "demangle.hpp"
#include "posix/process.hpp"

namespace mproc::detail {

/// A process's name and pid (what mproc::ProcessRecord shows users).
struct ProcessRecord {
    std::string name;
    pid_t pid = 0;
};

/// Implemented by ChildProcess; lets active_children() see and reap the live children.
class ChildHandle {
public:
    virtual ProcessRecord info() const = 0;
    virtual bool poll_alive() = 0;

protected:
    ~ChildHandle() = default;
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
    std::optional<ProcessRecord> parent() {
        std::lock_guard g(m_);
        return parent_;
    }
    bool is_child() {
        std::lock_guard g(m_);
        return parent_.has_value();
    }
    /// "Process-1", "Process-2"... per creating process, as Python names them.
    std::string next_child_name() {
        std::lock_guard g(m_);
        return "Process-" + std::to_string(++created_);
    }

    void add_child(ChildHandle* c) {
        std::lock_guard g(m_);
        children_.push_back(c);
    }
    void remove_child(ChildHandle* c) {
        std::lock_guard g(m_);
        std::erase(children_, c);
    }
    std::vector<ProcessRecord> live_children() {
        std::vector<ChildHandle*> children;
        {
            std::lock_guard g(m_);
            children = children_;
        }
        // Polling reaps exited children, which unregisters them: done without holding m_.
        std::vector<ProcessRecord> out;
        for (ChildHandle* c : children)
            if (c->poll_alive()) out.push_back(c->info());
        return out;
    }

    /// Runs in a freshly forked child, which has one thread: forget the parent's children, become
    /// `name`, and reset the arena's ownership. Mutexes other parent threads may have held at the
    /// fork are constructed anew.
    void become_child(std::string name, ProcessRecord parent) {
        new (&m_) std::mutex;
        children_.clear();
        parent_ = std::move(parent);
        name_ = std::move(name);
        created_ = 0;
        Arena::instance().after_fork_in_child();
    }

private:
    Identity() = default;
    std::mutex m_;
    std::string name_ = "MainProcess";
    std::optional<ProcessRecord> parent_;
    std::vector<ChildHandle*> children_;
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
    ProcessRecord me{self.name(), posix::current_pid()};
    return posix::fork_child([&] { self.become_child(name, std::move(me)); });
}

} // namespace mproc::detail
