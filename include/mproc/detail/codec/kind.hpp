// Which encoding each type gets, decided at compile time: the half of <mproc/codec.hpp> that says
// what is serializable, how small its encoding can be, and, for what is not, why.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>

namespace mproc::detail::codec {

/// How a type travels. Chosen in this order: refused > hook > bool > empty > arithmetic and enum
/// (bitwise) > optional, variant (always element-wise, so their flag and index are validated) >
/// std::array, pair, tuple (bitwise when trivially copyable and made of bitwise parts, else
/// element-wise) > any other trivially copyable type (bitwise) > string, vector (sequence) > maps,
/// sets (associative) > plain aggregates (PFR, field by field).
enum class Kind { none, hook, boolean, empty, bitwise, optional, variant, fixed, product, sequence, associative, aggregate };

template <class T, template <class...> class Template>
inline constexpr bool is_instance_of = false;
template <template <class...> class Template, class... Args>
inline constexpr bool is_instance_of<Template<Args...>, Template> = true;

template <class T>
inline constexpr bool is_std_array = false;
template <class E, std::size_t N>
inline constexpr bool is_std_array<std::array<E, N>> = true;

template <class T>
inline constexpr bool is_std_span = false;
template <class E, std::size_t N>
inline constexpr bool is_std_span<std::span<E, N>> = true;

template <class T>
inline constexpr bool is_sequence = is_instance_of<T, std::vector> || is_instance_of<T, std::basic_string>;
template <class T>
inline constexpr bool is_map = is_instance_of<T, std::map> || is_instance_of<T, std::unordered_map> ||
                               is_instance_of<T, std::multimap> || is_instance_of<T, std::unordered_multimap>;
template <class T>
inline constexpr bool is_set = is_instance_of<T, std::set> || is_instance_of<T, std::unordered_set> ||
                               is_instance_of<T, std::multiset> || is_instance_of<T, std::unordered_multiset>;
template <class T>
inline constexpr bool is_product = is_instance_of<T, std::pair> || is_instance_of<T, std::tuple>;

template <class T>
inline constexpr bool is_view = is_instance_of<T, std::basic_string_view> || is_std_span<T> ||
                                is_instance_of<T, std::reference_wrapper>;

/// Types that never travel, whatever else is true of them: a pointer's target, a reference's or a
/// view's referent would stay behind; const objects cannot be decoded into; C arrays cannot be returned.
template <class T>
inline constexpr bool refused_outright = !std::is_object_v<T> || std::is_const_v<T> || std::is_volatile_v<T> ||
                                         std::is_pointer_v<T> || std::is_member_pointer_v<T> ||
                                         std::is_null_pointer_v<T> || std::is_array_v<T> || is_view<T>;

/// Accepts anything: used only to ask whether a type declares a serialize hook, so that a hook
/// with a deduced return type can be instantiated without the real archives.
struct HookProbe {
    static constexpr bool is_loading = false;
    template <class... A>
    void operator()(A&&...) {}
};

template <class T>
concept HasHook = requires(T& t, HookProbe& probe) { t.serialize(probe); };

template <class... A>
struct TypeList {};

/// The types a compound type is made of; what its serializability depends on.
template <class T>
struct Parts {
    using type = TypeList<>;
};
template <class E, class A>
struct Parts<std::vector<E, A>> {
    using type = TypeList<E>;
};
template <class C, class Tr, class A>
struct Parts<std::basic_string<C, Tr, A>> {
    using type = TypeList<C>;
};
template <class E, std::size_t N>
struct Parts<std::array<E, N>> {
    using type = TypeList<E>;
};
template <class E>
struct Parts<std::optional<E>> {
    using type = TypeList<E>;
};
template <class... E>
struct Parts<std::variant<E...>> {
    using type = TypeList<E...>;
};
template <class A, class B>
struct Parts<std::pair<A, B>> {
    using type = TypeList<A, B>;
};
template <class... E>
struct Parts<std::tuple<E...>> {
    using type = TypeList<E...>;
};
template <class T>
    requires is_map<T>
struct Parts<T> {
    using type = TypeList<typename T::key_type, typename T::mapped_type>;
};
template <class T>
    requires is_set<T>
struct Parts<T> {
    using type = TypeList<typename T::key_type>;
};

/// A plain aggregate's fields, as Boost.PFR sees them.
template <class T, std::size_t... I>
TypeList<boost::pfr::tuple_element_t<I, T>...> pfr_fields(std::index_sequence<I...>);
template <class T>
using FieldsOf = decltype(pfr_fields<T>(std::make_index_sequence<boost::pfr::tuple_size_v<T>>{}));

/// Converts only to a proper base class of Derived: `Derived{FirstBase<Derived>{}}` compiles exactly
/// when Derived's first element is a base. Boost.PFR refuses such aggregates with a hard error; this
/// lets Serializable say "no" instead.
template <class Derived>
struct FirstBase {
    template <class B>
        requires(std::is_base_of_v<B, Derived> && !std::is_same_v<B, Derived>)
    operator B&() const;
};

template <class T>
inline constexpr bool is_plain_aggregate = std::is_aggregate_v<T> && !std::is_union_v<T> &&
                                           !requires { T{FirstBase<T>{}}; };

template <class T>
consteval Kind classify();

template <class T>
inline constexpr Kind kind_of = classify<T>();

template <class T>
inline constexpr bool is_serializable = kind_of<T> != Kind::none;

template <class... E>
consteval bool all_serializable(TypeList<E...>) {
    return (is_serializable<E> && ...);
}
template <class... E>
consteval bool all_bitwise(TypeList<E...>) {
    return ((kind_of<E> == Kind::bitwise) && ...);
}

template <class T>
consteval Kind classify() {
    using P = typename Parts<T>::type;
    if constexpr (refused_outright<T>) {
        return Kind::none;
    } else if constexpr (!std::is_default_constructible_v<T> || !std::is_move_constructible_v<T>) {
        return Kind::none;  // decode builds the value in place, then returns or moves it
    } else if constexpr (HasHook<T>) {
        return Kind::hook;
    } else if constexpr (std::is_same_v<T, bool>) {
        return Kind::boolean;
    } else if constexpr (std::is_empty_v<T> && std::is_trivially_copyable_v<T>) {
        // Empty types take no bytes: an empty member may share its address with a neighbour
        // (empty-base optimisation in std::tuple), so copying its one byte could clobber it.
        return Kind::empty;
    } else if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) {
        return Kind::bitwise;
    } else if constexpr (is_instance_of<T, std::optional>) {
        return all_serializable(P{}) ? Kind::optional : Kind::none;
    } else if constexpr (is_instance_of<T, std::variant>) {
        return all_serializable(P{}) ? Kind::variant : Kind::none;
    } else if constexpr (is_std_array<T> || is_product<T>) {
        if constexpr (!all_serializable(P{})) return Kind::none;
        else if constexpr (std::is_trivially_copyable_v<T> && all_bitwise(P{})) return Kind::bitwise;
        else return is_std_array<T> ? Kind::fixed : Kind::product;
    } else if constexpr (std::is_trivially_copyable_v<T>) {
        return Kind::bitwise;
    } else if constexpr (is_sequence<T>) {
        return all_serializable(P{}) ? Kind::sequence : Kind::none;
    } else if constexpr (is_map<T> || is_set<T>) {
        return all_serializable(P{}) ? Kind::associative : Kind::none;
    } else if constexpr (is_plain_aggregate<T>) {
        return all_serializable(FieldsOf<T>{}) ? Kind::aggregate : Kind::none;
    } else {
        return Kind::none;
    }
}

template <class T>
consteval std::size_t min_size();

template <class... E>
consteval std::size_t min_size_sum(TypeList<E...>) {
    return (std::size_t{0} + ... + min_size<E>());
}

/// The fewest bytes any value of T encodes to. A length read from the wire is checked against the
/// remaining bytes with it before anything is allocated. 0 for types that may encode to nothing.
template <class T>
consteval std::size_t min_size() {
    constexpr Kind k = kind_of<T>;
    if constexpr (k == Kind::hook || k == Kind::empty) return 0;
    else if constexpr (k == Kind::boolean) return 1;
    else if constexpr (k == Kind::bitwise) return sizeof(T);
    else if constexpr (k == Kind::fixed) return std::tuple_size_v<T> * min_size<typename T::value_type>();
    else if constexpr (k == Kind::product) return min_size_sum(typename Parts<T>::type{});
    else if constexpr (k == Kind::aggregate) return min_size_sum(FieldsOf<T>{});
    else return 1;  // a length, a flag or an index
}

/// One entry of a map or set, as min_size sees it.
template <class T>
consteval std::size_t min_entry_size() {
    if constexpr (is_map<T>) return min_size<typename T::key_type>() + min_size<typename T::mapped_type>();
    else return min_size<typename T::value_type>();
}

template <class T>
inline constexpr bool dependent_false = false;

/// Whether every field of T is serializable; false (without asking PFR) when T is no plain aggregate.
template <class T>
consteval bool fields_serializable() {
    if constexpr (is_plain_aggregate<T>) return all_serializable(FieldsOf<T>{});
    else return false;
}

template <class T>
constexpr void explain_not_serializable();

template <class... E>
constexpr void explain_parts(TypeList<E...>) {
    (explain_not_serializable<E>(), ...);
}

/// Instantiated for a type that is not serializable: fails with a static_assert whose instantiation
/// context ("[with T = ...]") names the innermost offending type.
template <class T>
constexpr void explain_not_serializable() {
    if constexpr (is_serializable<T>) {
        return;
    } else if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T> || std::is_null_pointer_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a raw pointer's target would not travel "
                                          "with it; send the value it points to");
    } else if constexpr (std::is_reference_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a reference; send the value");
    } else if constexpr (std::is_const_v<T> || std::is_volatile_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a const or volatile type cannot be "
                                          "decoded into; drop the qualifier");
    } else if constexpr (std::is_array_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a C array; use std::array");
    } else if constexpr (!std::is_object_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: not an object type");
    } else if constexpr (is_view<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a view (std::string_view, std::span, "
                                          "std::reference_wrapper) does not own what it shows; send std::string, "
                                          "std::vector or the value");
    } else if constexpr (!std::is_default_constructible_v<T> || !std::is_move_constructible_v<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: decoding needs it to be "
                                          "default-constructible and move-constructible");
    } else if constexpr (std::is_aggregate_v<T> && !std::is_union_v<T> && !is_plain_aggregate<T> &&
                         !std::is_trivially_copyable_v<T> && !HasHook<T>) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: an aggregate with a base class is not "
                                          "reflected field by field; give it a serialize hook");
    } else if constexpr (!all_serializable(typename Parts<T>::type{})) {
        explain_parts(typename Parts<T>::type{});
    } else if constexpr (is_plain_aggregate<T> && !HasHook<T> && !std::is_trivially_copyable_v<T> &&
                         !fields_serializable<T>()) {
        explain_parts(FieldsOf<T>{});
    } else {
        static_assert(dependent_false<T>,
                      "mproc: T is not serializable: give it a public member "
                      "`template <class Archive> void serialize(Archive& ar) { ar(member1, member2); }`, or make "
                      "it trivially copyable or a plain aggregate of serializable members (see <mproc/codec.hpp>)");
    }
}

} // namespace mproc::detail::codec
