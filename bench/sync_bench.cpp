// sync_bench.cpp — mproc::Lock against a raw robust, process-shared pthread mutex in MAP_SHARED memory.
//
// Reference numbers on a 2-core VM of the kind this is developed on: a raw robust mutex
// lock+unlock takes ~11 ns; Python's multiprocessing.Lock acquire+release ~96 ns.
#include <cstdint>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>
#include <mproc/sync.hpp>

#include "bench_support.hpp"

namespace {

using mproc_bench::HelperControl;
using mproc_bench::RawRobustMutex;
using mproc_bench::RawShared;

// ---- 1. lock+unlock, nobody else around -------------------------------------------------------

void mproc_lock_uncontended(benchmark::State& state) {
    mproc::Lock lock;
    for (auto _ : state) {
        lock.lock();
        lock.unlock();
    }
}
BENCHMARK(mproc_lock_uncontended)->Name("mproc/Lock_uncontended");

void raw_lock_uncontended(benchmark::State& state) {
    RawRobustMutex lock;
    for (auto _ : state) {
        lock.lock();
        lock.unlock();
    }
}
BENCHMARK(raw_lock_uncontended)->Name("raw/Lock_uncontended");

// ---- 2. lock+unlock while another process hammers the same lock -------------------------------
//
// Both sides fork their helper with a raw fork() (bench_support.hpp), not mproc::Process, so that the
// lock is the only thing that differs between the pair. The helper locks, bumps a shared counter and
// unlocks until the stop flag is set; then it is reaped. Timing covers only the benchmark thread's
// loop; real time is used because the thread sleeps in the futex while the helper holds the lock.

struct GuardedCounter {
    alignas(64) long value = 0; // written only under the lock being measured
};

template <class LockT>
void lock_contended(benchmark::State& state, LockT& lock) {
    RawShared<HelperControl> ctl;
    RawShared<GuardedCounter> counter;
    const pid_t helper = mproc_bench::start_hammer(state, *ctl, [&] {
        lock.lock();
        ++counter->value;
        lock.unlock();
    });
    if (helper < 0) return;
    for (auto _ : state) {
        lock.lock();
        lock.unlock();
    }
    mproc_bench::stop_hammer(state, *ctl, helper);
}

void mproc_lock_contended(benchmark::State& state) {
    mproc::Lock lock;
    lock_contended(state, lock);
}
BENCHMARK(mproc_lock_contended)->Name("mproc/Lock_contended_2proc")->UseRealTime();

void raw_lock_contended(benchmark::State& state) {
    RawRobustMutex lock;
    lock_contended(state, lock);
}
BENCHMARK(raw_lock_contended)->Name("raw/Lock_contended_2proc")->UseRealTime();

// ---- extra (no target): two *independent* locks, one per process ------------------------------
//
// Each process locks and unlocks its own lock; nothing is logically shared. The arena packs Locks
// 48 bytes apart, so neighbouring Locks usually share a 64-byte cache line and the two processes
// then fight over that line (false sharing). The mproc side takes the first pair of consecutively
// constructed Locks that the arena put on one line (normally the very first pair) — this measures
// what that placement costs when it happens, not how often it happens (if no pair shares a line,
// the first pair is used and the run is labelled so). The raw side uses two
// mutexes on separate pages, as a careful raw programmer would.

template <class LockT>
void locks_neighbours(benchmark::State& state, LockT& mine, LockT& theirs) {
    RawShared<HelperControl> ctl;
    const pid_t helper = mproc_bench::start_hammer(state, *ctl, [&] {
        theirs.lock();
        theirs.unlock();
    });
    if (helper < 0) return;
    for (auto _ : state) {
        mine.lock();
        mine.unlock();
    }
    mproc_bench::stop_hammer(state, *ctl, helper);
}

bool share_a_line(const void* a, std::size_t a_size, const void* b) {
    auto line = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) / 64; };
    return line(static_cast<const char*>(a) + a_size - 1) == line(b) || line(a) == line(b);
}

void mproc_locks_neighbours(benchmark::State& state) {
    std::vector<std::unique_ptr<mproc::Lock>> locks;
    for (int i = 0; i < 8; ++i) locks.push_back(std::make_unique<mproc::Lock>());
    for (std::size_t i = 0; i + 1 < locks.size(); ++i) {
        if (share_a_line(locks[i]->native_handle(), sizeof(pthread_mutex_t), locks[i + 1]->native_handle())) {
            locks_neighbours(state, *locks[i], *locks[i + 1]);
            return;
        }
    }
    // An arena that keeps each Lock on a line of its own (the fix this case argues for) lands here.
    state.SetLabel("no two Locks share a line");
    locks_neighbours(state, *locks[0], *locks[1]);
}
BENCHMARK(mproc_locks_neighbours)->Name("mproc/Lock_own_lock_each_2proc")->UseRealTime();

void raw_locks_neighbours(benchmark::State& state) {
    RawRobustMutex a, b;
    locks_neighbours(state, a, b);
}
BENCHMARK(raw_locks_neighbours)->Name("raw/Lock_own_lock_each_2proc")->UseRealTime();

} // namespace
