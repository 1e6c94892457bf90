// The range concepts and access (std::ranges::begin, size, range_value_t, sized_range, next...)
// mproc needs. With libstdc++, only <bits/ranges_base.h>: <ranges> adds the views and adaptors
// (about 6 MB in every translation unit), none of which mproc uses but views::all, replaced by
// detail::AllView below. Elsewhere, <ranges>. A program that uses views includes <ranges> itself.
#pragma once

#include <version> // defines __GLIBCXX__ with libstdc++

#if defined(__GLIBCXX__) && __has_include(<bits/ranges_base.h>)
#include <bits/ranges_base.h>
#else
#include <ranges>
#endif

#include <memory>
#include <type_traits>
#include <utility>

namespace mproc::detail {

/// What std::views::all(std::forward<R>(r)) keeps of a range, without <ranges>: a view by copy, an
/// lvalue by reference (a pointer: the caller's range must outlive it), a temporary by moving it in.
template <class R>
class AllView {
    using T = std::remove_cvref_t<R>;
    static constexpr bool by_reference = std::is_lvalue_reference_v<R> && !std::ranges::view<T>;
    using Held = std::conditional_t<by_reference, std::remove_reference_t<R>*, T>;

public:
    explicit AllView(R&& r) : held_(hold(std::forward<R>(r))) {}

    auto begin() { return std::ranges::begin(range()); }
    auto end() { return std::ranges::end(range()); }

private:
    static Held hold(R&& r) {
        if constexpr (by_reference) return std::addressof(r);
        else return Held(std::forward<R>(r));
    }
    decltype(auto) range() {
        if constexpr (by_reference) return (*held_);
        else return (held_);
    }

    Held held_;
};

} // namespace mproc::detail
