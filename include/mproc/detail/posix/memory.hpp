// Anonymous shared memory: the pages every mproc shared object lives in.
#pragma once

#include <cstddef>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

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

/// Gives the pages wholly inside [p, p + size) of a shared mapping back to the system, for every
/// process that maps them (MADV_REMOVE punches a hole in the shared memory); they read as zeros
/// afterwards. Best effort: where the kernel refuses, the pages stay.
inline void release_pages(void* p, std::size_t size) noexcept {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
    const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + size) / page * page;
    if (end <= begin) return;
    if (::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_REMOVE) != 0)
        ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

/// This process's resident memory in bytes (/proc/self/statm), 0 where it cannot be read.
inline std::size_t resident_bytes() noexcept {
    int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128] = {};
    ssize_t n;
    do n = ::read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close_fd(fd);
    if (n <= 0) return 0;
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
    return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

} // namespace mproc::detail::posix
