// Running user callbacks (a Future's done callbacks, a pool's progress callback) where an exception
// must never escape into the library's own code.
#pragma once

#include <cstdio>
#include <functional>
#include <vector>

#include "demangle.hpp"

namespace mproc::detail {

/// Runs `calls` in order and clears them; one that throws is reported on stderr, never lost
/// silently, and never stops the others.
inline void run_callbacks(std::vector<std::function<void()>>& calls) noexcept {
    for (auto& call : calls) {
        try {
            call();
        } catch (...) {
            try {
                auto e = describe_current_exception();
                std::fprintf(stderr, "mproc: a callback threw %s: %s (ignored)\n", e.type.c_str(), e.message.c_str());
            } catch (...) {
            }
        }
    }
    calls.clear();
}

} // namespace mproc::detail
