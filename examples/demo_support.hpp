// demo_support.hpp — the few bits every example shares: `--quick` (all simulated durations divided
// by 10, for ctest), pause(seconds), one-line atomic printing, and a bounded join of a group of
// processes. Not part of mproc.
#pragma once

#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include <mproc/mproc.hpp>

namespace demo {

/// 1.0 normally, 0.1 with --quick. Set once in main() before any fork, so children inherit it.
inline double scale = 1.0;

/// `seconds` of simulated work (or waiting), shortened by --quick. Never used to order processes.
inline void pause(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds * scale)); }

/// `seconds` as the demo will really spend them.
inline double scaled(double seconds) { return seconds * scale; }

/// An int the demo counts with, as the std::size_t that SharedArray and std::vector are indexed by.
inline std::size_t at(int i) { return static_cast<std::size_t>(i); }

/// printf, then flush at once: with stdout on a pipe (as under ctest) each line then leaves in one
/// write(), so lines from different processes never interleave mid-line.
[[gnu::format(printf, 1, 2)]] inline void say(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::vfprintf(stdout, fmt, args);
    va_end(args);
    std::fflush(stdout);
}

/// Seconds elapsed on the steady clock since construction.
class Stopwatch {
public:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// Joins every process, giving the whole group `timeout` (a safety net, never part of the demo's
/// timing). Processes still running then are killed, reported, and reaped; returns false if any was.
inline bool join_all(std::vector<mproc::Process>& procs, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool all = true;
    for (mproc::Process& p : procs) {
        if (p.join_until(deadline)) continue;
        all = false;
        say("FAIL: %s (pid %d) still running after %lld s; killing it\n", p.name().c_str(), static_cast<int>(p.pid()),
            static_cast<long long>(timeout.count()));
        p.kill();
        p.join();
    }
    return all;
}

/// Parses the command line (`--quick`), runs `body`, and turns an escaped exception into a FAIL
/// line and exit status 1.
template <class Body>
int run(int argc, char** argv, Body body) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            scale = 0.1;
        } else {
            std::fprintf(stderr, "usage: %s [--quick]\n  --quick  divide every simulated duration by 10\n", argv[0]);
            return 2;
        }
    }
    try {
        return body();
    } catch (const std::exception& e) {
        say("FAIL: exception: %s\n", e.what());
        return 1;
    }
}

} // namespace demo
