// FNV-1a, 64 bits: the one hash of names and type names (a named segment's type check, the
// signature MPI ranks compare). Not for untrusted input.
#pragma once

#include <cstdint>
#include <string_view>

namespace mproc::detail {

/// FNV-1a of `text`: the same in every process and on every rank of the same program.
constexpr std::uint64_t fnv1a(std::string_view text) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return h;
}

} // namespace mproc::detail
