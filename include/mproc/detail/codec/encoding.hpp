// The run-time half of <mproc/codec.hpp>: sizing, writing and reading each Kind of type.
// Writing never allocates and never fails (except on a valueless variant); reading checks every
// byte count before it touches memory and every length before it allocates.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>

#include <boost/pfr/core.hpp>

#include "../../errors.hpp"
#include "kind.hpp"
#include "type_name.hpp"

namespace mproc::detail::codec {

inline std::size_t varint_size(std::uint64_t v) noexcept {
    return (static_cast<std::size_t>(std::bit_width(v | 1)) + 6) / 7;
}

/// LEB128: seven bits per byte, low bits first, the high bit set on every byte but the last.
inline std::byte* write_varint(std::uint64_t v, std::byte* out) noexcept {
    while (v >= 0x80) {
        *out++ = static_cast<std::byte>(v | 0x80);
        v >>= 7;
    }
    *out++ = static_cast<std::byte>(v);
    return out;
}

inline std::string hex_byte(unsigned b) {
    static constexpr char digits[] = "0123456789abcdef";
    return std::string("0x") + digits[(b >> 4) & 0xf] + digits[b & 0xf];
}

/// A cursor over the bytes being decoded. Every read goes through take(), which checks the count
/// against what remains; a failure throws SerializationError naming the decoded type, the cause
/// and the offset.
class Reader {
public:
    Reader(std::span<const std::byte> bytes, std::string (*top_name)()) noexcept
        : begin_(bytes.data()), p_(bytes.data()), end_(bytes.data() + bytes.size()), top_name_(top_name) {}

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }

    /// The next `n` bytes, which make (part of) a T.
    template <class T>
    const std::byte* take(std::size_t n) {
        if (n > remaining()) [[unlikely]]
            fail("truncated: " + type_name<T>() + " needs " + std::to_string(n) + " bytes but " +
                 std::to_string(remaining()) + " remain");
        const std::byte* at = p_;
        p_ += n;
        return at;
    }

    /// One byte that must be 0 or 1: a bool, or the flag of an optional T.
    template <class T>
    bool flag() {
        auto b = std::to_integer<unsigned>(*take<T>(1));
        if (b > 1) [[unlikely]]
            fail_at(offset() - 1, (std::is_same_v<T, bool> ? std::string("bool byte") : "flag of " + type_name<T>()) +
                                      " is " + hex_byte(b) + " (must be 0 or 1)");
        return b == 1;
    }

    /// A varint (the length of a T, or the index of a variant T), whole and in its shortest form.
    template <class T>
    std::uint64_t varint(const char* what) {
        std::uint64_t v = 0;
        const std::size_t start = offset();
        for (unsigned shift = 0;; shift += 7) {
            if (p_ == end_) [[unlikely]]
                fail_at(start, std::string("truncated: the ") + what + " of " + type_name<T>() + " is cut off");
            auto b = std::to_integer<std::uint64_t>(*p_++);
            if (shift == 63 && b > 1) [[unlikely]]
                fail_at(start, std::string("the ") + what + " of " + type_name<T>() + " does not fit in 64 bits");
            v |= (b & 0x7f) << shift;
            if (b < 0x80) {
                if (b == 0 && shift > 0) [[unlikely]]
                    fail_at(start, std::string("the ") + what + " of " + type_name<T>() +
                                       " is not in its shortest form");
                return v;
            }
        }
    }

    /// The element count of a container T whose elements take at least `min_element` bytes each
    /// (1 is assumed for elements that can encode to nothing: those are padded to one byte).
    /// Checked against the remaining bytes, so a corrupted count never drives an allocation.
    template <class T>
    std::size_t length(std::size_t min_element) {
        const std::size_t start = offset();
        std::uint64_t n = varint<T>("length");
        std::size_t each = min_element == 0 ? 1 : min_element;
        if (n > remaining() / each) [[unlikely]] {
            std::string need = n > std::numeric_limits<std::uint64_t>::max() / each ? "more than 2^64"
                                                                                     : std::to_string(n * each);
            fail_at(start, "length " + std::to_string(n) + " of " + type_name<T>() + " needs at least " + need +
                               " bytes but " + std::to_string(remaining()) + " remain");
        }
        return static_cast<std::size_t>(n);
    }

    [[noreturn]] void fail(const std::string& cause) const { fail_at(offset(), cause); }

    /// Throws SerializationError: "decode<T>: <cause> (at byte <at> of <size>)".
    [[noreturn]] void fail_at(std::size_t at, const std::string& cause) const {
        throw SerializationError("decode<" + top_name_() + ">: " + cause + " (at byte " + std::to_string(at) +
                                 " of " + std::to_string(static_cast<std::size_t>(end_ - begin_)) + ")");
    }

private:
    const std::byte* begin_;
    const std::byte* p_;
    const std::byte* end_;
    std::string (*top_name_)();
};

template <class T>
std::size_t size_of(const T& v);
template <class T>
std::byte* write(const T& v, std::byte* out);
template <class T>
void read(Reader& r, T& v);

/// The archive a serialize hook sees while its value's size is measured.
class SizeArchive {
public:
    static constexpr bool is_loading = false;
    template <class... A>
    void operator()(const A&... members) {
        (explain_not_serializable<A>(), ...);
        ((size_ += size_of(members)), ...);
    }
    std::size_t size() const noexcept { return size_; }

private:
    std::size_t size_ = 0;
};

/// The archive a serialize hook sees while its value is written.
class WriteArchive {
public:
    static constexpr bool is_loading = false;
    explicit WriteArchive(std::byte* out) noexcept : out_(out) {}
    template <class... A>
    void operator()(const A&... members) {
        (explain_not_serializable<A>(), ...);
        ((out_ = write(members, out_)), ...);
    }
    std::byte* end() const noexcept { return out_; }

private:
    std::byte* out_;
};

/// The archive a serialize hook sees while its value is read; members must be lvalues.
class ReadArchive {
public:
    static constexpr bool is_loading = true;
    explicit ReadArchive(Reader& r) noexcept : r_(r) {}
    template <class... A>
    void operator()(A&... members) {
        (explain_not_serializable<A>(), ...);
        (read(r_, members), ...);
    }

private:
    Reader& r_;
};

// An element that can encode to zero bytes (an empty type, a hook with nothing to say) is followed
// by one 0x00 byte when it does, so that every element of a container takes at least one byte and
// a length can always be checked against the bytes that remain.

template <class T>
std::size_t element_size(const T& e) {
    std::size_t n = size_of(e);
    if constexpr (min_size<T>() == 0) return n == 0 ? 1 : n;
    else return n;
}

template <class T>
std::byte* write_element(const T& e, std::byte* out) {
    std::byte* end = write(e, out);
    if constexpr (min_size<T>() == 0) {
        if (end == out) *end++ = std::byte{0};
    }
    return end;
}

template <class T>
void read_padding(Reader& r, std::size_t before) {
    if (r.offset() == before) {
        auto b = std::to_integer<unsigned>(*r.take<T>(1));
        if (b != 0) [[unlikely]]
            r.fail_at(r.offset() - 1, "the padding byte of an empty " + type_name<T>() + " is " + hex_byte(b) + " (must be 0x00)");
    }
}

template <class T>
void read_element(Reader& r, T& e) {
    std::size_t before = r.offset();
    read(r, e);
    if constexpr (min_size<T>() == 0) read_padding<T>(r, before);
}

template <class T>
[[noreturn]] void fail_valueless(const T&) {
    throw SerializationError("encode: " + type_name<T>() + " is valueless by exception");
}

template <class T>
std::size_t size_of(const T& v) {
    constexpr Kind k = kind_of<T>;
    if constexpr (k == Kind::empty) {
        return 0;
    } else if constexpr (k == Kind::boolean) {
        return 1;
    } else if constexpr (k == Kind::bitwise) {
        return sizeof(T);
    } else if constexpr (k == Kind::hook) {
        SizeArchive a;
        run_hook(a, const_cast<T&>(v));
        return a.size();
    } else if constexpr (k == Kind::optional) {
        return 1 + (v.has_value() ? size_of(*v) : 0);
    } else if constexpr (k == Kind::variant) {
        if (v.valueless_by_exception()) [[unlikely]]
            fail_valueless(v);
        return varint_size(v.index()) + std::visit([](const auto& alt) { return size_of(alt); }, v);
    } else if constexpr (k == Kind::fixed) {
        std::size_t n = 0;
        for (const auto& e : v) n += size_of(e);
        return n;
    } else if constexpr (k == Kind::product) {
        return std::apply([](const auto&... e) { return (std::size_t{0} + ... + size_of(e)); }, v);
    } else if constexpr (k == Kind::path) {
        return size_of(v.native());
    } else if constexpr (k == Kind::aggregate) {
        std::size_t n = 0;
        boost::pfr::for_each_field(v, [&n](const auto& f) { n += size_of(f); });
        return n;
    } else if constexpr (k == Kind::sequence) {
        using E = typename T::value_type;
        std::size_t n = varint_size(v.size());
        if constexpr (kind_of<E> == Kind::bitwise || kind_of<E> == Kind::boolean) {
            n += v.size() * sizeof(E);
        } else {
            for (const auto& e : v) n += element_size(e);
        }
        return n;
    } else {
        static_assert(k == Kind::associative);
        std::size_t n = varint_size(v.size());
        for (const auto& entry : v) {
            if constexpr (is_map<T>) {
                std::size_t kv = size_of(entry.first) + size_of(entry.second);
                n += kv == 0 ? 1 : kv;
            } else {
                n += element_size(entry);
            }
        }
        return n;
    }
}

template <class T>
std::byte* write(const T& v, std::byte* out) {
    constexpr Kind k = kind_of<T>;
    if constexpr (k == Kind::empty) {
        return out;
    } else if constexpr (k == Kind::boolean) {
        *out = std::byte{v ? std::uint8_t{1} : std::uint8_t{0}};
        return out + 1;
    } else if constexpr (k == Kind::bitwise) {
        std::memcpy(out, std::addressof(v), sizeof(T));
        return out + sizeof(T);
    } else if constexpr (k == Kind::hook) {
        WriteArchive a(out);
        run_hook(a, const_cast<T&>(v));
        return a.end();
    } else if constexpr (k == Kind::optional) {
        *out++ = std::byte{v.has_value() ? std::uint8_t{1} : std::uint8_t{0}};
        return v.has_value() ? write(*v, out) : out;
    } else if constexpr (k == Kind::variant) {
        if (v.valueless_by_exception()) [[unlikely]]
            fail_valueless(v);
        out = write_varint(v.index(), out);
        return std::visit([out](const auto& alt) { return write(alt, out); }, v);
    } else if constexpr (k == Kind::fixed) {
        for (const auto& e : v) out = write(e, out);
        return out;
    } else if constexpr (k == Kind::product) {
        std::apply([&out](const auto&... e) { ((out = write(e, out)), ...); }, v);
        return out;
    } else if constexpr (k == Kind::path) {
        return write(v.native(), out);
    } else if constexpr (k == Kind::aggregate) {
        boost::pfr::for_each_field(v, [&out](const auto& f) { out = write(f, out); });
        return out;
    } else if constexpr (k == Kind::sequence) {
        using E = typename T::value_type;
        out = write_varint(v.size(), out);
        if constexpr (kind_of<E> == Kind::bitwise) {
            if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(E));  // one copy for the lot
            return out + v.size() * sizeof(E);
        } else {
            for (const auto& e : v) out = write_element(static_cast<const E&>(e), out);
            return out;
        }
    } else {
        static_assert(k == Kind::associative);
        out = write_varint(v.size(), out);
        for (const auto& entry : v) {
            if constexpr (is_map<T>) {
                std::byte* start = out;
                out = write(entry.second, write(entry.first, out));
                if (out == start) *out++ = std::byte{0};
            } else {
                out = write_element(entry, out);
            }
        }
        return out;
    }
}

/// Copies a bitwise T out of the wire. For a class, assignment rather than a memcpy into `v`: `v`
/// may be a member whose tail padding holds a neighbour, and assignment leaves that padding alone.
/// A scalar is copied straight into `v`, so that an enum value outside the enumeration's range is
/// never loaded here (UBSan's -fsanitize=enum would flag the load, not the bytes).
template <class T>
void read_bitwise(const std::byte* in, T& v) {
    if constexpr (std::is_class_v<T> && std::is_trivially_copy_assignable_v<T>) {
        T tmp;
        std::memcpy(static_cast<void*>(std::addressof(tmp)), in, sizeof(T));
        v = tmp;
    } else {
        std::memcpy(static_cast<void*>(std::addressof(v)), in, sizeof(T));
    }
}

template <class T, std::size_t I>
void read_alternative(Reader& r, T& v) {
    if (v.index() != I) v.template emplace<I>();
    read(r, std::get<I>(v));
}

template <class T>
void read(Reader& r, T& v) {
    constexpr Kind k = kind_of<T>;
    if constexpr (k == Kind::empty) {
        return;
    } else if constexpr (k == Kind::boolean) {
        v = r.flag<bool>();
    } else if constexpr (k == Kind::bitwise) {
        read_bitwise(r.take<T>(sizeof(T)), v);
    } else if constexpr (k == Kind::hook) {
        ReadArchive a(r);
        run_hook(a, v);
    } else if constexpr (k == Kind::optional) {
        if (r.flag<T>()) {
            if (!v.has_value()) v.emplace();
            read(r, *v);
        } else {
            v.reset();
        }
    } else if constexpr (k == Kind::variant) {
        constexpr std::size_t n = std::variant_size_v<T>;
        std::size_t start = r.offset();
        std::uint64_t index = r.varint<T>("index");
        if (index >= n) [[unlikely]]
            r.fail_at(start, "index " + std::to_string(index) + " of " + type_name<T>() + " is out of range (" +
                                 std::to_string(n) + " alternatives)");
        constexpr auto by_index = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<void (*)(Reader&, T&), n>{&read_alternative<T, I>...};
        }(std::make_index_sequence<n>{});
        by_index[static_cast<std::size_t>(index)](r, v);
    } else if constexpr (k == Kind::fixed) {
        for (auto& e : v) read(r, e);
    } else if constexpr (k == Kind::product) {
        std::apply([&r](auto&... e) { (read(r, e), ...); }, v);
    } else if constexpr (k == Kind::path) {
        typename T::string_type native;
        read(r, native);
        v = std::move(native);
    } else if constexpr (k == Kind::aggregate) {
        boost::pfr::for_each_field(v, [&r](auto& f) { read(r, f); });
    } else if constexpr (k == Kind::sequence) {
        using E = typename T::value_type;
        std::size_t n = r.length<T>(min_size<E>());
        v.clear();
        if constexpr (kind_of<E> == Kind::bitwise) {
            const std::byte* in = r.take<T>(n * sizeof(E));
            v.resize(n);
            if (n != 0) std::memcpy(static_cast<void*>(v.data()), in, n * sizeof(E));  // one copy for the lot
        } else if constexpr (std::is_same_v<E, bool>) {  // std::vector<bool> has no bool& to read into
            v.reserve(n);
            for (std::size_t i = 0; i < n; ++i) v.push_back(r.flag<bool>());
        } else {
            v.reserve(n);
            for (std::size_t i = 0; i < n; ++i) read_element(r, v.emplace_back());
        }
    } else {
        static_assert(k == Kind::associative);
        std::size_t n = r.length<T>(min_entry_size<T>());
        v.clear();
        if constexpr (requires { v.reserve(n); }) v.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            std::size_t before = r.offset();
            std::size_t count = v.size();
            if constexpr (is_map<T>) {
                typename T::key_type key{};
                typename T::mapped_type value{};
                read(r, key);
                read(r, value);
                if constexpr (min_entry_size<T>() == 0) read_padding<T>(r, before);
                v.emplace_hint(v.end(), std::move(key), std::move(value));
            } else {
                typename T::value_type key{};
                read_element(r, key);
                v.emplace_hint(v.end(), std::move(key));
            }
            if (v.size() == count) [[unlikely]]
                r.fail_at(before, "duplicate key in " + type_name<T>() + " (entry " + std::to_string(i) + ")");
        }
    }
}

} // namespace mproc::detail::codec
