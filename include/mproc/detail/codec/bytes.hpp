// The codec's whole-value calls, for mproc's own code below the public headers: the public
// encoded_size, encode_into, encode, decode_into and decode (codec.hpp) are these. A type that cannot
// travel stops the build here with explain_not_serializable's message.
#pragma once

#include <cassert>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "encoding.hpp"
#include "kind.hpp"
#include "type_name.hpp"

namespace mproc::detail::codec {

/// The exact number of bytes encode_into(value, out) writes. As mproc::encoded_size.
template <class T>
std::size_t encoded_size(const T& value) {
    explain_not_serializable<T>();
    if constexpr (is_serializable<T>) return size_of(value);
    else return 0;
}

/// Writes the encoding of `value` to `out` (room for encoded_size(value) bytes); returns its end.
/// As mproc::encode_into.
template <class T>
std::byte* encode_into(const T& value, std::byte* out) {
    explain_not_serializable<T>();
    if constexpr (is_serializable<T>) return write(value, out);
    else return out;
}

/// The encoding of `value` in a buffer of exactly its size. As mproc::encode.
template <class T>
std::vector<std::byte> encode(const T& value) {
    std::vector<std::byte> out(codec::encoded_size(value));
    [[maybe_unused]] std::byte* end = codec::encode_into(value, out.data());
    assert(end == out.data() + out.size());
    return out;
}

/// Decodes `bytes`, exactly one encoded T, into `out`. As mproc::decode_into.
template <class T>
void decode_into(std::span<const std::byte> bytes, T& out) {
    explain_not_serializable<T>();
    if constexpr (is_serializable<T>) {
        Reader r(bytes, &type_name<T>);
        read(r, out);
        if (r.remaining() != 0) [[unlikely]]
            r.fail(std::to_string(r.remaining()) + " byte(s) left over after the value (a message of another type?)");
    }
}

/// Decodes `bytes`, exactly one encoded T. As mproc::decode.
template <class T>
T decode(std::span<const std::byte> bytes) {
    T out{};
    codec::decode_into(bytes, out);
    return out;
}

} // namespace mproc::detail::codec
