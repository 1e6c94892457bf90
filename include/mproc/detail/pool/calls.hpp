// How every pool (the fork-based Pool, mpi::Pool) calls the user's function on one item, and runs
// the user's callbacks: shared by the pools, whatever carries their tasks.
#pragma once

#include <cstdio>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "../demangle.hpp"

namespace mproc::detail {

/// Calls f(item) (Star = false: map, imap) or f(std::get<0>(item), ...) (Star = true: starmap,
/// and apply over its argument tuple).
template <class F, class Item, bool Star>
decltype(auto) call_item(F& f, Item& item) {
    if constexpr (Star)
        return std::apply(f, item);
    else
        return std::invoke(f, item);
}

/// What call_item returns, as the function declares it (void, a reference...).
template <class F, class Item, bool Star>
using CallResult = decltype(call_item<F, Item, Star>(std::declval<F&>(), std::declval<Item&>()));

/// What an item's call gives back to the caller: its value, std::monostate for a void function.
template <class R>
using Returned = std::conditional_t<std::is_void_v<R>, std::monostate, std::remove_cvref_t<R>>;

/// call_item, with a void function's result as std::monostate.
template <class F, class Item, bool Star>
Returned<CallResult<F, Item, Star>> call_returned(F& f, Item& item) {
    if constexpr (std::is_void_v<CallResult<F, Item, Star>>) {
        call_item<F, Item, Star>(f, item);
        return {};
    } else {
        return call_item<F, Item, Star>(f, item);
    }
}

/// Runs a user's callback (a Future's done callback, on_progress) for `pool` ("mproc::Pool"): an
/// exception from it is reported on stderr and ignored, so that user code never breaks a pool.
inline void run_callback(const std::function<void()>& call, const char* pool) noexcept {
    try {
        call();
    } catch (...) {
        try {
            auto e = describe_current_exception();
            std::fprintf(stderr, "%s: a callback threw %s: %s (ignored)\n", pool, e.type.c_str(), e.message.c_str());
        } catch (...) { // describing it failed too (out of memory): it is still ignored
        }
    }
}

} // namespace mproc::detail
