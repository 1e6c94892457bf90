// A named segment's create and attach parameters, from the public CreateOptions and AttachOptions
// (shared_memory.hpp): taken by their fields, so that this layer needs no public header.
#pragma once

#include <cstddef>
#include <optional>

#include "shm_segment.hpp"

namespace mproc::detail::shm {

/// From a CreateOptions: its mode, unlink_on_close and replace_stale.
template <class Options>
    requires requires(const Options& o) { o.replace_stale; }
Segment::CreateParams params(const Options& o) {
    return {o.mode, o.unlink_on_close, o.replace_stale};
}

/// From an AttachOptions: its wait and allowed_owner; `size`, when known, the payload size expected.
template <class Options>
    requires requires(const Options& o) { o.wait; }
Segment::AttachParams params(const Options& o, std::optional<std::size_t> size = std::nullopt) {
    return {o.wait, size, o.allowed_owner};
}

} // namespace mproc::detail::shm
