// Anonymous shared memory: the pages every mproc shared object lives in.
#pragma once

#include <cstddef>
#include <sys/mman.h>

#include "syscall.hpp"

namespace mproc::detail::posix {

/// Maps `size` bytes of zeroed memory that stays shared with every process forked afterwards.
/// Pages are reserved lazily (MAP_NORESERVE), so a large mapping costs nothing until touched.
inline void* map_shared_anonymous(std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (p == MAP_FAILED) throw_os_error("mmap(MAP_SHARED|MAP_ANONYMOUS, " + std::to_string(size) + " bytes)", errno);
    return p;
}

inline void unmap(void* p, std::size_t size) noexcept { ::munmap(p, size); }

} // namespace mproc::detail::posix
