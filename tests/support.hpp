// Shared helpers for mproc's tests: every blocking step is bounded, so a bug fails fast instead of hanging.
#pragma once

#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>

#include <cerrno>
#include <chrono>
#include <sys/wait.h>

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

/// True when `pid` is neither running nor a zombie child of ours (it has been reaped).
inline bool reaped(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

} // namespace test
