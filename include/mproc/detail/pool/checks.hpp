// The compile-time checks of Pool's calls: each misuse of map, starmap and apply (a function that
// captures owning state, takes the wrong arguments, returns a reference or an unserializable value)
// gets one static_assert that says what to do, instead of a cascade from deep inside the engine.
#pragma once

#include <tuple>
#include <type_traits>

#include "../codec/kind.hpp"

namespace mproc::detail {

/// What a worker can call without the parent's help: copied byte for byte into the task.
template <class F>
constexpr void check_pool_callable() {
    static_assert(std::is_trivially_copyable_v<F> && !std::is_member_pointer_v<F>,
                  "mproc::Pool: the function must be a function pointer, a capture-less lambda or a trivially "
                  "copyable function object, because it is copied byte for byte into a worker process. Pass "
                  "the data it needs as arguments (they travel through the codec) instead of capturing "
                  "std::string, std::vector or other owning objects");
}

/// True when map's function takes one element and returns a value.
template <class F, class Item>
constexpr bool map_callable = [] {
    if constexpr (std::is_invocable_v<F&, Item&>)
        return !std::is_reference_v<std::invoke_result_t<F&, Item&>>;
    else
        return false;
}();

/// True when apply's function takes these arguments and returns void or a serializable value.
template <class F, class... Args>
constexpr bool apply_callable = [] {
    if constexpr (std::is_invocable_v<F&, Args&...>) {
        using R = std::invoke_result_t<F&, Args&...>;
        if constexpr (std::is_reference_v<R>)
            return false;
        else
            return std::is_void_v<R> || codec::is_serializable<std::remove_cvref_t<R>>;
    } else {
        return false;
    }
}();

/// One message for what makes apply's function unusable (apply_callable is false).
template <class F, class... Args>
constexpr void check_apply_callable() {
    constexpr bool invocable = std::is_invocable_v<F&, Args&...>;
    static_assert(invocable, "mproc::Pool::apply: the function cannot be called with these arguments");
    if constexpr (invocable) {
        using R = std::invoke_result_t<F&, Args&...>;
        static_assert(!std::is_reference_v<R>,
                      "mproc::Pool::apply: the function returns a reference; a result travels by value to another "
                      "process: return a value (std::decay_t of it)");
        if constexpr (!std::is_reference_v<R>)
            static_assert(std::is_void_v<R> || codec::is_serializable<std::remove_cvref_t<R>>,
                          "mproc::Pool::apply: the function's return type is not serializable (see <mproc/codec.hpp>)");
    }
}

/// map's function must take one element; a function of several arguments wants starmap.
template <class F, class Item>
constexpr void check_map_callable(const char*) {
    constexpr bool callable = std::is_invocable_v<F&, Item&>;
    if constexpr (!callable) {
        constexpr bool star = requires(F& f, Item& item) { std::apply(f, item); };
        static_assert(!star, "mproc::Pool::map: the function takes the elements of each tuple as separate arguments: use "
                             "pool.starmap(f, tuples) (Python's starmap), or make it take the tuple");
        static_assert(star, "mproc::Pool::map: the function cannot be called with one element of the input range "
                            "(check its parameter type and count)");
    } else {
        using R = std::invoke_result_t<F&, Item&>;
        static_assert(!std::is_reference_v<R>,
                      "mproc::Pool::map: the function returns a reference; results travel by value to another process: "
                      "return a value");
    }
}

/// starmap's function takes each tuple's elements as its arguments.
template <class G, class Item>
constexpr void check_starmap_callable() {
    constexpr bool star = requires(G& g, Item& item) { std::apply(g, item); };
    static_assert(star, "mproc::Pool::starmap: the function cannot be called with the elements of each tuple as its "
                        "arguments (check the tuple's types and the function's parameters; pool.map passes the whole element)");
    if constexpr (star) {
        using R = decltype(std::apply(std::declval<G&>(), std::declval<Item&>()));
        static_assert(!std::is_reference_v<R>,
                      "mproc::Pool::starmap: the function returns a reference; results travel by value: return a value");
    }
}

} // namespace mproc::detail
