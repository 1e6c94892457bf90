// What a struct that several processes map must be, checked where each is declared (as rigtorp's
// queues check theirs): its members at the same offsets in every process and no per-process
// pointer (standard layout, no virtual functions), and atomics that work across processes.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace mproc::detail {

/// Standard layout and not polymorphic: what a struct in shared memory must be (a vtable pointer
/// would point into one process's code only).
template <class T>
inline constexpr bool shareable_layout = std::is_standard_layout_v<T> && !std::is_polymorphic_v<T>;

/// Atomics in shared memory must be lock-free: a lock-based std::atomic would take a lock of the
/// process that calls it, which the others never see. Every width mproc places is checked here once.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::int64_t>::is_always_lock_free,
              "mproc needs lock-free 32- and 64-bit atomics: they are shared between processes");
// The futex word is an atomic used as a plain 32-bit word by the kernel.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
              alignof(std::atomic<std::uint32_t>) == alignof(std::uint32_t));

} // namespace mproc::detail
