// Which encoding each type gets, decided at compile time: the half of <mproc/codec.hpp> that says
// what is serializable, how small its encoding can be, and, for what is not, why.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <boost/pfr/core.hpp>
#include <boost/pfr/tuple_size.hpp>

#include "../functional.hpp"

namespace mproc::detail::codec {

/// How a type travels. Chosen in this order: refused > hook (member or free function) > bool > empty
/// > arithmetic and enum (bitwise) > optional, variant (always element-wise, so their flag and index
/// are validated) > std::array, pair, tuple (bitwise when trivially copyable and made of bitwise
/// parts, else element-wise) > any other trivially copyable type that holds no visible address
/// (bitwise) > string, vector (sequence) > maps, sets (associative) > std::filesystem::path (its
/// native string) > plain aggregates (PFR, field by field).
enum class Kind { none, hook, boolean, empty, bitwise, optional, variant, fixed, product, sequence, associative, path, aggregate };

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

/// The standard associative containers (std::map, std::set, std::unordered_map, std::unordered_set,
/// their multi forms, with any comparator, hash or allocator), recognised by what they offer rather
/// than by name, so that no mproc header needs <map>, <set>, <unordered_map> or <unordered_set>
/// (7 MB in every translation unit that includes mproc; a program that sends one includes its header
/// anyway): node handles (C++17) and insertion with a hint.
template <class T>
concept associative_like = requires(T& c, typename T::value_type&& entry) {
    typename T::key_type;
    typename T::node_type;
    { c.size() } -> std::same_as<typename T::size_type>;
    { c.extract(c.begin()) } -> std::same_as<typename T::node_type>;
    c.emplace_hint(c.end(), std::move(entry));
};
template <class T>
concept map_like = associative_like<T> && requires { typename T::mapped_type; } &&
                   std::same_as<typename T::value_type, std::pair<const typename T::key_type, typename T::mapped_type>>;
template <class T>
concept set_like = associative_like<T> && !requires { typename T::mapped_type; } &&
                   std::same_as<typename T::value_type, typename T::key_type>;

template <class T>
inline constexpr bool is_map = map_like<T>;
template <class T>
inline constexpr bool is_set = set_like<T>;
template <class T>
inline constexpr bool is_product = is_instance_of<T, std::pair> || is_instance_of<T, std::tuple>;

template <class T>
inline constexpr bool is_view = is_instance_of<T, std::basic_string_view> || is_std_span<T> ||
                                is_instance_of<T, std::reference_wrapper>;

/// Owning pointers: what they point to would not travel with them either.
template <class T>
inline constexpr bool is_smart_pointer = is_instance_of<T, std::unique_ptr> || is_instance_of<T, std::shared_ptr> ||
                                         is_instance_of<T, std::weak_ptr>;

template <class T>
inline constexpr bool is_address = std::is_pointer_v<T> || std::is_member_pointer_v<T> || std::is_null_pointer_v<T> ||
                                   is_smart_pointer<T>;

/// std::filesystem::path, recognised by what it offers rather than by name, so that no mproc header
/// needs <filesystem> (a quarter of a second and 19 MB in every translation unit that includes mproc):
/// a native string of its value_type it is built from and gives back, and the path operations.
template <class T>
concept path_like = requires(const T& p, const typename T::string_type& native) {
    requires std::is_same_v<typename T::string_type, std::basic_string<typename T::value_type>>;
    { p.native() } -> std::same_as<const typename T::string_type&>;
    { p.root_name() } -> std::same_as<T>;
    { p.lexically_normal() } -> std::same_as<T>;
    { p.has_relative_path() } -> std::same_as<bool>;
    T::preferred_separator;
    T(native);
};

/// Types that never travel, whatever else is true of them: a pointer's target, a reference's or a
/// view's referent would stay behind; const objects cannot be decoded into; C arrays cannot be returned.
template <class T>
inline constexpr bool refused_outright = !std::is_object_v<T> || std::is_const_v<T> || std::is_volatile_v<T> ||
                                         is_address<T> || std::is_array_v<T> || is_view<T>;

/// Accepts anything: used only to ask whether a type declares a serialize hook, so that a hook
/// with a deduced return type can be instantiated without the real archives.
struct HookProbe {
    static constexpr bool is_loading = false;
    template <class... A>
    void operator()(A&&...) {}
};

/// The intrusive hook: a member `template <class Archive> void serialize(Archive&)`.
template <class T>
concept HasMemberHook = requires(T& t, HookProbe& probe) { t.serialize(probe); };

namespace adl {
// Hides every `serialize` of the enclosing namespaces from the unqualified calls below, so that only
// argument-dependent lookup finds a user's hook (in the namespace of the type it serializes).
void serialize() = delete;

/// The non-intrusive hook: a free `template <class Archive> void serialize(Archive&, T&)` declared
/// in T's namespace, for a type that cannot be edited.
template <class T>
concept HasFreeHook = requires(T& t, HookProbe& probe) { serialize(probe, t); };

template <class Archive, class T>
void call_free_hook(Archive& ar, T& v) {
    serialize(ar, v);
}
} // namespace adl

template <class T>
concept HasHook = HasMemberHook<T> || adl::HasFreeHook<T>;

/// Runs T's hook with `ar`: the member one if it has both.
template <class Archive, class T>
void run_hook(Archive& ar, T& v) {
    if constexpr (HasMemberHook<T>) v.serialize(ar);
    else adl::call_free_hook(ar, v);
}

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
consteval bool holds_no_address();

/// Converts to any field type that holds no address, as Boost.PFR's `ubiq_lref_constructor` converts
/// to any type: `T{AddressFreeField{}...}`, one per field, compiles exactly when no field of T (nor of
/// its plain-aggregate fields, nor an element of its C-array fields) is a pointer or a view. Bit
/// fields and C arrays are fine here, where asking PFR for the field types would stop the build.
struct AddressFreeField {
    template <class F>
        requires(holds_no_address<F>())
    constexpr operator F&() const&& noexcept;
    template <class F>
        requires(holds_no_address<F>())
    constexpr operator F&() const& noexcept;
};

template <class T, std::size_t... I>
consteval bool fields_hold_no_address(std::index_sequence<I...>) {
    return requires { T{((void)I, AddressFreeField{})...}; };
}

template <class... E>
consteval bool none_holds_address(TypeList<E...>) {
    return (holds_no_address<E>() && ...);
}

/// False for a pointer or a view, or anything that visibly holds one: an address means nothing in
/// another process. "Visibly": std types through their parts, plain aggregates field by field; the
/// private members of other classes cannot be seen and are trusted.
template <class T>
consteval bool holds_no_address() {
    using P = typename Parts<T>::type;
    if constexpr (is_address<T> || is_view<T>) return false;
    else if constexpr (std::is_array_v<T>) return holds_no_address<std::remove_all_extents_t<T>>();
    else if constexpr (!std::is_class_v<T>) return true;
    else if constexpr (!std::is_same_v<P, TypeList<>>) return none_holds_address(P{});
    else if constexpr (is_plain_aggregate<T> && std::is_copy_constructible_v<T>)
        return fields_hold_no_address<T>(std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
    else return true;
}

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
        // Copied byte for byte, so a pointer inside would arrive as a number meaning nothing there.
        return holds_no_address<T>() ? Kind::bitwise : Kind::none;
    } else if constexpr (is_sequence<T>) {
        return all_serializable(P{}) ? Kind::sequence : Kind::none;
    } else if constexpr (is_map<T> || is_set<T>) {
        return all_serializable(P{}) ? Kind::associative : Kind::none;
    } else if constexpr (path_like<T>) {
        return Kind::path;
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

/// Why a type is not serializable, once blame has been laid on the innermost type at fault.
enum class Refusal { none, pointer, reference, qualified, c_array, not_object, view, holds_address, not_constructible, base_class, unknown };

/// Why T itself is not serializable; `unknown` when that depends on its parts (see culprit_t).
template <class T>
consteval Refusal refusal_of() {
    if constexpr (is_serializable<T>) return Refusal::none;
    else if constexpr (is_address<T>) return Refusal::pointer;
    else if constexpr (std::is_reference_v<T>) return Refusal::reference;
    else if constexpr (!std::is_object_v<T>) return Refusal::not_object;
    else if constexpr (std::is_const_v<T> || std::is_volatile_v<T>) return Refusal::qualified;
    else if constexpr (std::is_array_v<T>) return Refusal::c_array;
    else if constexpr (is_view<T>) return Refusal::view;
    else if constexpr (!std::is_default_constructible_v<T> || !std::is_move_constructible_v<T>) return Refusal::not_constructible;
    else if constexpr (std::is_aggregate_v<T> && !std::is_union_v<T> && !is_plain_aggregate<T> &&
                       !std::is_trivially_copyable_v<T>)
        return Refusal::base_class;
    else if constexpr (std::is_trivially_copyable_v<T> && all_serializable(typename Parts<T>::type{}) &&
                       !holds_no_address<T>())
        return Refusal::holds_address;
    else return Refusal::unknown;
}

template <class T>
inline constexpr Refusal refusal = refusal_of<T>();

/// The first type of the list that is not serializable (void if none).
template <class List>
struct FirstRefused {
    using type = void;
};
template <class H, class... R>
struct FirstRefused<TypeList<H, R...>> {
    using type = std::conditional_t<is_serializable<H>, typename FirstRefused<TypeList<R...>>::type, H>;
};

/// Whether every field of T is serializable; false (without asking PFR) when T is no plain aggregate.
template <class T>
consteval bool fields_serializable() {
    if constexpr (is_plain_aggregate<T>) return all_serializable(FieldsOf<T>{});
    else return false;
}

template <class T>
consteval auto blame() {
    using P = typename Parts<T>::type;
    if constexpr (refusal<T> != Refusal::unknown) return std::type_identity<T>{};
    else if constexpr (!all_serializable(P{})) return blame<typename FirstRefused<P>::type>();
    else if constexpr (is_plain_aggregate<T> && !std::is_trivially_copyable_v<T> && !fields_serializable<T>())
        return blame<typename FirstRefused<FieldsOf<T>>::type>();
    else return std::type_identity<T>{};
}

/// The type to blame when T is not serializable: T itself, or the innermost part or field of T that
/// is not (std::unique_ptr<int> for a struct holding one). T when T is serializable.
template <class T>
using culprit_t = typename decltype(blame<T>())::type;

/// Fails with a static_assert that says why; its instantiation context ("[with T = ...]") names the
/// culprit. The same reasons, word for word, as the concepts behind mproc::Serializable.
template <class T, Refusal R>
constexpr void refuse() {
    if constexpr (R == Refusal::pointer) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a pointer (raw or smart) would arrive "
                                          "without its target; send the value it points to");
    } else if constexpr (R == Refusal::reference) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a reference; send the value");
    } else if constexpr (R == Refusal::qualified) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a const or volatile type cannot be "
                                          "decoded into; drop the qualifier");
    } else if constexpr (R == Refusal::c_array) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a C array; use std::array");
    } else if constexpr (R == Refusal::not_object) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: not an object type");
    } else if constexpr (R == Refusal::view) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: a view (std::string_view, std::span, "
                                          "std::reference_wrapper) does not own what it shows; send std::string, "
                                          "std::vector or the value");
    } else if constexpr (R == Refusal::holds_address) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: it holds a pointer or a view, an address "
                                          "that means nothing in another process; hold the value (std::string, "
                                          "std::vector) or give T a serialize hook");
    } else if constexpr (R == Refusal::not_constructible) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: decoding needs it to be "
                                          "default-constructible and move-constructible");
    } else if constexpr (R == Refusal::base_class) {
        static_assert(dependent_false<T>, "mproc: T is not serializable: an aggregate with a base class is not "
                                          "reflected field by field; give it a serialize hook");
    } else {
        static_assert(dependent_false<T>,
                      "mproc: T is not serializable: give it a serialize hook (a public member `template <class "
                      "Archive> void serialize(Archive& ar) { ar(member1, member2); }`, or a free function `template "
                      "<class Archive> void serialize(Archive& ar, T& v)` in T's namespace), or make it trivially "
                      "copyable or a plain aggregate of serializable members (see <mproc/codec.hpp>)");
    }
}

/// Instantiated for a type that is not serializable: fails with a static_assert that names the
/// innermost offending type and why it cannot travel.
template <class T>
constexpr void explain_not_serializable() {
    if constexpr (!is_serializable<T>) refuse<culprit_t<T>, refusal<culprit_t<T>>>();
}

} // namespace mproc::detail::codec
