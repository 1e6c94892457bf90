// The one wait primitive: a shared (not process-private) futex on a 32-bit word.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <ctime>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../deadline.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

inline timespec to_timespec(Clock::duration d) noexcept {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    if (ns < 0) ns = 0;
    return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

enum class WaitResult { woken, returned, timed_out };

/// Sleeps while `*word == expected`, until woken or `deadline` passes.
/// woken: a futex_wake() counted this waiter in its return value; returned: the word had changed or a
/// signal interrupted the wait; timed_out: the deadline passed.
inline WaitResult futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, Deadline deadline) {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    timespec ts{};
    const timespec* tp = nullptr;
    if (!deadline.is_never()) {
        ts = to_timespec(deadline.at().time_since_epoch());
        tp = &ts;
    }
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so retries after EINTR
    // do not stretch the wait.
    long rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected, tp,
                        nullptr, FUTEX_BITSET_MATCH_ANY);
    if (rc == 0) return WaitResult::woken;
    switch (errno) {
    case EAGAIN: // the word changed before we slept
    case EINTR: return WaitResult::returned;
    case ETIMEDOUT: return WaitResult::timed_out;
    default: throw_os_error("futex(FUTEX_WAIT_BITSET)", errno);
    }
}

/// Lets another runnable process on this CPU run first (a no-op when there is none).
inline void yield_cpu() noexcept { ::sched_yield(); }

/// Wakes up to `count` processes sleeping on `word`; returns how many it woke.
inline int futex_wake(std::atomic<std::uint32_t>* word, int count = INT_MAX) noexcept {
    long n = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
    return n > 0 ? static_cast<int>(n) : 0;
}

} // namespace mproc::detail::posix
