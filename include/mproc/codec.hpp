// mproc/codec.hpp — what can travel between processes, and how: the one codec behind Queue, Pipe,
// Pool arguments and results, and spawn() results.
//
// Serializable, nested freely:
//   - arithmetic types and enums. Enum values are taken as they come: an enum without a fixed
//     underlying type (`enum E { a, b }`) may then hold a value outside its range, which is
//     undefined to read; give an enum that may arrive corrupted a fixed type (`enum class` has one);
//   - trivially copyable types (structs, unions, std::chrono::duration...): copied byte for byte, one
//     memcpy of sizeof(T). Pointers inside them are copied as numbers, and nothing inside them is
//     validated on decode (a bool member holding 7, a std::optional member with a bad flag); give
//     such a struct a serialize hook if it can arrive from an untrusted source;
//   - std::string, std::vector (one memcpy for a vector of trivially copyable elements), std::array,
//     std::pair, std::tuple, std::optional, std::variant, std::map, std::unordered_map, std::set
//     (and the multi- and unordered sets and maps);
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
//     modify the object while writing; `Archive::is_loading` tells the directions apart if needed.
//
// When several apply: hook > trivially copyable > std type > aggregate, with two exceptions for
// safety: bool, std::optional and std::variant are always encoded element-wise so that decoding can
// validate them (also inside a trivially copyable std::array, std::pair or std::tuple), and empty
// trivially copyable types (std::monostate, tag structs) encode to nothing, as copying their one
// byte could clobber a neighbour that shares their address.
// Not serializable: raw pointers, references, const or volatile types, C arrays, views
// (std::string_view, std::span, std::reference_wrapper), types without a default constructor, and
// anything else not listed. Using one is a compile-time error naming the type ("T is not
// serializable", with "[with T = ...]" in the instantiation context). Test Serializable<T> rather
// than whether encode(x) compiles: encode has an overload for the non-serializable whose only job is
// that error.
//
// Wire format (same machine only: host byte order and struct layout, no header or version tag):
//   trivially copyable: its sizeof(T) bytes; bool: 0/1; optional: 0, or 1 then the value; variant:
//   index then the alternative; string, vector, map, set: length then the elements (maps: key, value)
//   in iteration order; array, pair, tuple, aggregate, hook: the parts in order, nothing between.
//   Lengths and indexes are unsigned LEB128 varints in their shortest form (one byte below 128). An
//   element of a vector, map or set that encodes to nothing is followed by one 0x00 byte, so that
//   every element takes a byte and a length can be checked against the bytes left.
//
// Thread-safety: every function here is re-entrant and may be called from any thread and from a
// forked child; concurrent calls on the same object are as safe as concurrent reads (encode) or
// writes (decode_into) of it.
#pragma once

#include <cassert>
#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "detail/codec/encoding.hpp"
#include "detail/codec/kind.hpp"
#include "detail/codec/type_name.hpp"
#include "errors.hpp"

namespace mproc {

/// True for the types this codec can encode and decode (see the top of this header).
template <class T>
concept Serializable = detail::codec::is_serializable<T>;

/// The exact number of bytes encode_into(value, out) writes. Does not allocate.
/// Throws SerializationError only for a std::variant that is valueless by exception.
template <Serializable T>
std::size_t encoded_size(const T& value) {
    return detail::codec::size_of(value);
}

/// Writes the encoding of `value` to `out`, which must have room for encoded_size(value) bytes (no
/// alignment needed), and returns the end of what was written. Does not allocate; for a trivially
/// copyable T it is one memcpy of sizeof(T). This two-pass form lets a queue encode straight into
/// shared memory. Throws SerializationError only for a std::variant valueless by exception.
template <Serializable T>
std::byte* encode_into(const T& value, std::byte* out) {
    return detail::codec::write(value, out);
}

/// The encoding of `value`, in a new buffer of exactly encoded_size(value) bytes.
/// Throws std::bad_alloc, or SerializationError as encoded_size.
template <Serializable T>
std::vector<std::byte> encode(const T& value) {
    std::vector<std::byte> out(encoded_size(value));
    [[maybe_unused]] std::byte* end = encode_into(value, out.data());
    assert(end == out.data() + out.size());
    return out;
}

/// Decodes `bytes`, which must hold exactly one encoded T, into `out`, reusing its storage where it
/// can (a top-level vector or string that is already large enough is not reallocated).
/// Throws SerializationError, naming the type, the cause and the byte offset, if the bytes are
/// truncated, corrupted or followed by more bytes; `out` is then valid but unspecified. Never reads
/// outside `bytes`, and checks every length against the bytes left before allocating for it.
/// Exceptions thrown by a serialize hook or by allocation pass through.
template <Serializable T>
void decode_into(std::span<const std::byte> bytes, T& out) {
    detail::codec::Reader r(bytes, &detail::codec::type_name<T>);
    detail::codec::read(r, out);
    if (r.remaining() != 0) [[unlikely]]
        r.fail(std::to_string(r.remaining()) + " byte(s) left over after the value (a message of another type?)");
}

/// Decodes `bytes`, which must hold exactly one encoded T. Throws as decode_into.
template <Serializable T>
T decode(std::span<const std::byte> bytes) {
    T out{};
    decode_into(bytes, out);
    return out;
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
