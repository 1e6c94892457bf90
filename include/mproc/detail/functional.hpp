// std::function, std::reference_wrapper and std::invoke, which is all mproc takes from <functional>.
// With libstdc++, only the internal headers that hold them: C++17's <functional> also includes
// <unordered_map>, <vector>, <array> and the algorithms (for std::boyer_moore_searcher), about 9 MB
// in every translation unit. Elsewhere, <functional>. A program that uses the rest includes
// <functional> itself, as it should.
#pragma once

#include <version> // defines __GLIBCXX__ with libstdc++

#if defined(__GLIBCXX__) && __has_include(<bits/std_function.h>) && __has_include(<bits/refwrap.h>) && \
    __has_include(<bits/invoke.h>)
#include <bits/invoke.h>
#include <bits/refwrap.h>
#include <bits/std_function.h>
#define MPROC_DETAIL_LEAN_FUNCTIONAL 1
#else
#include <functional>
#endif

#include <type_traits>
#include <utility>

namespace mproc::detail {

/// std::invoke (libstdc++'s own, the one std::invoke calls, where <functional> is left out).
template <class F, class... A>
constexpr std::invoke_result_t<F, A...> invoke(F&& f, A&&... a) noexcept(std::is_nothrow_invocable_v<F, A...>) {
#ifdef MPROC_DETAIL_LEAN_FUNCTIONAL
    return std::__invoke(std::forward<F>(f), std::forward<A>(a)...);
#else
    return std::invoke(std::forward<F>(f), std::forward<A>(a)...);
#endif
}

} // namespace mproc::detail

#undef MPROC_DETAIL_LEAN_FUNCTIONAL
