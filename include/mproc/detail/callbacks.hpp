// Running user callbacks (a Future's done callbacks, a pool's on_progress) where an exception must
// never escape into the library's own code.
#pragma once

#include <cstdio>
#include <vector>

#include "demangle.hpp"
#include "functional.hpp"

namespace mproc::detail {

/// Runs a user's callback for `who` ("mproc::Pool", "mproc::Future"...): an exception from it is
/// reported on stderr and ignored, so that user code never breaks a pool.
inline void run_callback(const std::function<void()>& call, const char* who) noexcept {
    try {
        call();
    } catch (...) {
        try {
            auto e = describe_current_exception();
            std::fprintf(stderr, "%s: a callback threw %s: %s (ignored)\n", who, e.type.c_str(), e.message.c_str());
        } catch (...) { // describing it failed too (out of memory): it is still ignored
        }
    }
}

/// Runs `calls` in order, each as run_callback does, and clears them.
inline void run_callbacks(std::vector<std::function<void()>>& calls, const char* who = "mproc::Future") noexcept {
    for (auto& call : calls) run_callback(call, who);
    calls.clear();
}

} // namespace mproc::detail
