// mproc/codec.hpp — what can travel between processes, and how: the one codec behind Queue, Pipe,
// Pool arguments and results, and spawn() results.
//
// Serializable, nested freely:
//   - arithmetic types and enums. Enum values are taken as they come: an enum without a fixed
//     underlying type (`enum E { a, b }`) may then hold a value outside its range, which is
//     undefined to read; give an enum that may arrive corrupted a fixed type (`enum class` has one);
//   - trivially copyable types (structs, unions, std::chrono::duration and time_point...): copied
//     byte for byte, one memcpy of sizeof(T). Nothing inside them is validated on decode (a bool
//     member holding 7, a std::optional member with a bad flag); give such a struct a serialize hook
//     if it can arrive from an untrusted source. One holding a pointer or a view is refused (see
//     below);
//   - std::string, std::vector (one memcpy for a vector of trivially copyable elements), std::array,
//     std::pair, std::tuple, std::optional, std::variant, std::map, std::unordered_map, std::set
//     (and the multi- and unordered sets and maps: mproc does not include their headers, a program
//     that sends one includes <map>, <set>, <unordered_map> or <unordered_set> itself);
//   - plain aggregates whose fields are all serializable, with no user code (via Boost.PFR, field by
//     field). Not for aggregates with a base class (those are not serializable without a hook), nor
//     with a C array field (Boost.PFR stops the build), nor for recursive types such as a tree node
//     holding std::vector<Node> (the compiler cannot finish the check): give those a hook;
//   - user types with a public serialize hook, one member template used for both directions:
//
//         struct Order {
//             std::string symbol;
//             std::vector<double> prices;
//             int quantity = 0;
//             template <class Archive>
//             void serialize(Archive& ar) { ar(symbol, prices, quantity); }
//         };
//
//     ar(...) takes any number of lvalues of serializable types and reads or writes them in order.
//     The hook must call ar with the same members in the same order in both directions and must not
//     modify the object while writing; `Archive::is_loading` tells the directions apart if needed;
//   - types you cannot edit, with the same hook as a free function in the type's namespace, found by
//     argument-dependent lookup (declare it before the type is first sent):
//
//         namespace vendor {
//         template <class Archive>
//         void serialize(Archive& ar, Money& m) {
//             std::string currency = m.currency();
//             long cents = m.cents();
//             ar(currency, cents);
//             if constexpr (Archive::is_loading) m = Money(std::move(currency), cents);
//         }
//         }
//
//   - std::filesystem::path, as its native string.
//
// When several apply: member hook > free hook > trivially copyable > std type > aggregate, with two
// exceptions for safety: bool, std::optional and std::variant are always encoded element-wise so
// that decoding can validate them (also inside a trivially copyable std::array, std::pair or
// std::tuple), and empty trivially copyable types (std::monostate, tag structs) encode to nothing, as copying their one
// byte could clobber a neighbour that shares their address.
// Not serializable: pointers (raw and smart), references, const or volatile types, C arrays, views
// (std::string_view, std::span, std::reference_wrapper), types that hold a pointer or a view where
// it can be seen (a trivially copyable struct whose field, a field of a field or a C-array element
// is one: the address would arrive as a number that means nothing in another process; members of
// classes that are not plain aggregates cannot be seen, and are trusted), types without a default
// constructor, and anything else not listed. Using one is a compile-time error naming the innermost
// type at fault and why ("T is not serializable: <reason>", with "[with T = ...]" in the
// instantiation context; a failed Serializable<T> constraint on Queue<T> or Pipe<T> says the same,
// with "[with U = ...]"). Test Serializable<T> rather than whether encode(x) compiles: encode has an
// overload for the non-serializable whose only job is that error.
//
// Wire format (same machine only: host byte order and struct layout, no header or version tag):
//   trivially copyable: its sizeof(T) bytes; bool: 0/1; optional: 0, or 1 then the value; variant:
//   index then the alternative; string, vector, map, set, path: length then the elements (maps: key,
//   value) in iteration order; array, pair, tuple, aggregate, hook: the parts in order, nothing
//   between.
//   Lengths and indexes are unsigned LEB128 varints in their shortest form (one byte below 128). An
//   element of a vector, map or set that encodes to nothing is followed by one 0x00 byte, so that
//   every element takes a byte and a length can be checked against the bytes left.
//
// Thread-safety: every function here is re-entrant and may be called from any thread and from a
// forked child; concurrent calls on the same object are as safe as concurrent reads (encode) or
// writes (decode_into) of it.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <cassert>
#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "detail/codec/bytes.hpp"
#include "detail/codec/encoding.hpp"
#include "detail/codec/kind.hpp"
#include "detail/codec/type_name.hpp"
#include "errors.hpp"

namespace mproc {

namespace detail::codec {
// One concept per reason a type cannot travel, each about the culprit (the innermost type at fault,
// see culprit_t), so that a failed `Serializable<T>` on `Queue<T>` or `Pipe<T>` reports
// "[with U = <culprit>]" and quotes the line below that gives the reason (the static_asserts of
// explain_not_serializable say the same).
// clang-format off
template <class U> concept not_a_pointer = refusal<U> != Refusal::pointer; // mproc: U is not serializable: a pointer (raw or smart) would arrive without its target; send the value it points to
template <class U> concept not_a_reference = refusal<U> != Refusal::reference; // mproc: U is not serializable: a reference; send the value
template <class U> concept not_qualified = refusal<U> != Refusal::qualified; // mproc: U is not serializable: a const or volatile type cannot be decoded into; drop the qualifier
template <class U> concept not_a_c_array = refusal<U> != Refusal::c_array; // mproc: U is not serializable: a C array; use std::array
template <class U> concept an_object_type = refusal<U> != Refusal::not_object; // mproc: U is not serializable: not an object type
template <class U> concept not_a_view = refusal<U> != Refusal::view; // mproc: U is not serializable: a view (std::string_view, std::span, std::reference_wrapper) does not own what it shows; send std::string, std::vector or the value
template <class U> concept holds_no_address_inside = refusal<U> != Refusal::holds_address; // mproc: U is not serializable: it holds a pointer or a view, an address that means nothing in another process; hold the value (std::string, std::vector) or give U a serialize hook
template <class U> concept constructible_for_decoding = refusal<U> != Refusal::not_constructible; // mproc: U is not serializable: decoding needs it to be default-constructible and move-constructible
template <class U> concept reflectable_aggregate = refusal<U> != Refusal::base_class; // mproc: U is not serializable: an aggregate with a base class is not reflected field by field; give it a serialize hook
template <class U> concept known_to_the_codec = refusal<U> != Refusal::unknown; // mproc: U is not serializable: give it a serialize hook (a member, or a free function `serialize(Archive&, U&)` in U's namespace), or make it trivially copyable or a plain aggregate of serializable members (see <mproc/codec.hpp>)
// clang-format on
} // namespace detail::codec

/// True for the types this codec can encode and decode (see the top of this header). When it is
/// false, the compiler's notes name the innermost type at fault and why it cannot travel.
template <class T>
concept Serializable =
    detail::codec::not_a_pointer<detail::codec::culprit_t<T>> && detail::codec::not_a_reference<detail::codec::culprit_t<T>> &&
    detail::codec::not_qualified<detail::codec::culprit_t<T>> && detail::codec::not_a_c_array<detail::codec::culprit_t<T>> &&
    detail::codec::an_object_type<detail::codec::culprit_t<T>> && detail::codec::not_a_view<detail::codec::culprit_t<T>> &&
    detail::codec::holds_no_address_inside<detail::codec::culprit_t<T>> &&
    detail::codec::constructible_for_decoding<detail::codec::culprit_t<T>> &&
    detail::codec::reflectable_aggregate<detail::codec::culprit_t<T>> &&
    detail::codec::known_to_the_codec<detail::codec::culprit_t<T>> && detail::codec::is_serializable<T>;

/// The exact number of bytes encode_into(value, out) writes. Does not allocate.
/// Throws SerializationError only for a std::variant that is valueless by exception.
template <Serializable T>
std::size_t encoded_size(const T& value) {
    return detail::codec::encoded_size(value);
}

/// Writes the encoding of `value` to `out`, which must have room for encoded_size(value) bytes (no
/// alignment needed), and returns the end of what was written. Does not allocate; for a trivially
/// copyable T it is one memcpy of sizeof(T). This two-pass form lets a queue encode straight into
/// shared memory. Throws SerializationError only for a std::variant valueless by exception.
template <Serializable T>
std::byte* encode_into(const T& value, std::byte* out) {
    return detail::codec::encode_into(value, out);
}

/// The encoding of `value`, in a new buffer of exactly encoded_size(value) bytes.
/// Throws std::bad_alloc, or SerializationError as encoded_size.
template <Serializable T>
std::vector<std::byte> encode(const T& value) {
    return detail::codec::encode(value);
}

/// Decodes `bytes`, which must hold exactly one encoded T, into `out`, reusing its storage where it
/// can (a top-level vector or string that is already large enough is not reallocated).
/// Throws SerializationError, naming the type, the cause and the byte offset, if the bytes are
/// truncated, corrupted or followed by more bytes; `out` is then valid but unspecified. Never reads
/// outside `bytes`, and checks every length against the bytes left before allocating for it.
/// Exceptions thrown by a serialize hook or by allocation pass through.
template <Serializable T>
void decode_into(std::span<const std::byte> bytes, T& out) {
    detail::codec::decode_into(bytes, out);
}

/// Decodes `bytes`, which must hold exactly one encoded T. Throws as decode_into.
template <Serializable T>
T decode(std::span<const std::byte> bytes) {
    return detail::codec::decode<T>(bytes);
}

// The overloads below exist only to turn a use of a non-serializable type into a static_assert that
// says "is not serializable" and, through its instantiation context, which type is to blame.

template <class T>
    requires(!Serializable<T>)
std::size_t encoded_size(const T&) {
    detail::codec::explain_not_serializable<T>();
    return 0;
}

template <class T>
    requires(!Serializable<T>)
std::byte* encode_into(const T&, std::byte* out) {
    detail::codec::explain_not_serializable<T>();
    return out;
}

template <class T>
    requires(!Serializable<T>)
std::vector<std::byte> encode(const T&) {
    detail::codec::explain_not_serializable<T>();
    return {};
}

template <class T>
    requires(!Serializable<T>)
void decode_into(std::span<const std::byte>, T&) {
    detail::codec::explain_not_serializable<T>();
}

template <class T>
    requires(!Serializable<T>)
T decode(std::span<const std::byte>) {
    detail::codec::explain_not_serializable<T>();
    std::terminate();
}

} // namespace mproc
