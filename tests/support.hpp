// Shared helpers for mproc's tests: every blocking step is bounded, so a bug fails fast instead of hanging.
#pragma once

#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>

#include <cerrno>
#include <chrono>
#include <sys/wait.h>
#include <thread>
#include <vector>

namespace test {

using namespace std::chrono_literals;

/// How long any step that should finish promptly may take on a loaded 2-core machine.
inline constexpr auto bound = 30s;

/// Joins `p` within `bound`; a process still running by then is killed and the test fails.
inline void join_bounded(mproc::Process& p) {
    bool exited = p.join_for(bound);
    if (!exited) {
        p.kill();
        p.join();
    }
    REQUIRE(exited);
}

/// Calls `ready()` until it returns true or `bound` passes; returns its last answer. Between calls it
/// yields the CPU, or sleeps `pause` if one is given. For state that no Event can announce: another
/// process's progress counter, its scheduling state in /proc, a barrier's count of waiting parties.
template <class Ready>
bool poll_until(Ready ready, std::chrono::milliseconds pause = 0ms) {
    const auto until = std::chrono::steady_clock::now() + bound;
    for (;;) {
        if (ready()) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        if (pause > 0ms)
            std::this_thread::sleep_for(pause);
        else
            std::this_thread::yield();
    }
}

/// Kills `victim` once `counter` reaches `mark` (a random point of its work), unless it exited first
/// or `bound` passed. Returns whether it killed.
template <class Counter>
bool kill_at(mproc::Process& victim, const Counter& counter, long mark) {
    poll_until([&] { return counter.load() >= mark || !victim.is_alive(); });
    if (!victim.is_alive()) return false;
    victim.kill();
    return true;
}

/// Starts `n` processes running fn(0), fn(1), ... fn(n-1).
template <class F>
std::vector<mproc::Process> start_all(int n, F fn) {
    std::vector<mproc::Process> ps;
    for (int i = 0; i < n; ++i) ps.emplace_back(fn, i);
    for (auto& p : ps) p.start();
    return ps;
}

/// Joins every process within the bound and checks each exited with 0.
inline void join_all(std::vector<mproc::Process>& ps) {
    for (auto& p : ps) join_bounded(p);
    for (auto& p : ps) CHECK(p.exitcode() == 0);
}

/// start_all, then join_all.
template <class F>
void run_processes(int n, F fn) {
    auto ps = start_all(n, fn);
    join_all(ps);
}

/// True when `pid` is neither running nor a zombie child of ours (it has been reaped).
inline bool reaped(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

} // namespace test
