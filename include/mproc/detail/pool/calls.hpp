// How every pool (the fork-based Pool, mpi::Pool) calls the user's function on one item:
// shared by the pools, whatever carries their tasks.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "../callbacks.hpp"
#include "../functional.hpp"

namespace mproc::detail {

/// Calls f(item) (Star = false: map, imap) or f(std::get<0>(item), ...) (Star = true: starmap,
/// and apply over its argument tuple).
template <class F, class Item, bool Star>
decltype(auto) call_item(F& f, Item& item) {
    if constexpr (Star)
        return std::apply(f, item);
    else
        return detail::invoke(f, item);
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

} // namespace mproc::detail
