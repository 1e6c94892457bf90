// The one wait primitive: spin briefly, then sleep on a shared futex word until a condition holds.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>

#include <cstddef>

#include "deadline.hpp"
#include "shared_layout.hpp"
#include "posix/futex.hpp"

namespace mproc::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// A futex word that wakers bump, and a count of sleepers so that wakers skip the system call when
/// nobody sleeps. Lives in shared memory.
struct WaitQueue {
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint32_t> sleepers{0};
};
static_assert(shareable_layout<WaitQueue>);
static_assert(offsetof(WaitQueue, seq) == 0 && sizeof(WaitQueue) == 8, "the futex word first, the count beside it");

/// Iterations of the spin before sleeping. A sleep/wake pair costs ~10-50 µs on a VM; this spin
/// (a few µs) catches a state change that is about to happen without burning a core when it is not.
inline constexpr int spin_iterations = 128;
/// Every this many iterations the spin yields the CPU instead of pausing. When the process that will
/// change the state waits for this CPU (a request just woke it, and both share a CPU), a pure spin
/// only delays it; the yield lets it run at once, and costs well under a microsecond when nobody
/// else wants the CPU. Measured (bench/README.md): Pool apply round trip on one CPU 11.5 -> 4.0 µs,
/// across two CPUs unchanged (~1 µs), Queue 1 -> 1 unchanged, sum_square Pool(2) 1.70 -> ~1.85x.
inline constexpr int yield_every = 8;

/// Returns true as soon as `ready()` holds, false if `deadline` passes first. `ready` reads shared
/// state without locks; whoever changes that state calls notify() on the same WaitQueue afterwards.
template <class Ready>
bool await(Ready&& ready, WaitQueue& q, Deadline deadline) {
    // A deadline that has passed already (Deadline::after(0): "is it ready now?") gets one look and
    // no futex_wait: with an expired timeout the kernel still arms a timer with the thread's timer
    // slack (50 us by default) and sleeps until it fires, ~70 us here, not the immediate return
    // that the caller expects.
    if (deadline.expired()) return ready();
    for (int i = 1; i <= spin_iterations; ++i) {
        if (ready()) return true;
        if (i % yield_every == 0)
            posix::yield_cpu();
        else
            cpu_relax();
    }
    for (;;) {
        // Registering before the re-check pairs with notify(), which changes the state before it
        // reads `sleepers` (both seq_cst): either we see the change or the waker sees us.
        q.sleepers.fetch_add(1);
        std::uint32_t seen = q.seq.load();
        if (ready()) {
            q.sleepers.fetch_sub(1);
            return true;
        }
        if (deadline.expired()) { // the same late sleep, on a later round
            q.sleepers.fetch_sub(1);
            return false;
        }
        auto r = posix::futex_wait(&q.seq, seen, deadline);
        // A waker that woke us has already taken us off `sleepers` (see notify()).
        if (r != posix::WaitResult::woken) q.sleepers.fetch_sub(1);
        if (ready()) return true;
        if (r == posix::WaitResult::timed_out) return false;
    }
}

/// Wakes up to `count` sleepers of `q`. Call after changing the state their `ready()` reads.
inline void notify(WaitQueue& q, int count = INT_MAX) noexcept {
    if (q.sleepers.load() == 0) return;
    q.seq.fetch_add(1);
    // The waker, not the woken, takes them off `sleepers`: otherwise every notify() between this wake
    // and the moment they run (tens of microseconds on a busy machine) would make the system call again.
    if (int woken = posix::futex_wake(&q.seq, count)) q.sleepers.fetch_sub(static_cast<std::uint32_t>(woken));
}

} // namespace mproc::detail
