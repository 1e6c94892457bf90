// pool_bench.cpp — mproc::Pool on the workloads of Python's multiprocessing tutorials, beside the
// serial loop, an in-process bound and a raw-OS bound.
//
//   serial/SumSquare, mproc/SumSquare_pool/W   sum_square(n) for n = 0..9999 (examples/sum_square.cpp),
//                                              serially and by Pool(W).map, W = 1..cpu_count() + 2
//   serial/Factorial, mproc/Factorial_pool/W   the bit length of n! (Boost.Multiprecision cpp_int) for
//                                              n = 0..1999 (examples/factorial.cpp, a smaller range)
//   mproc/Map_square/1000000                   Pool().map(square, 1M ints), default (guided) chunking
//   mproc/Map_square_chunksize1/20000          the same with chunksize 1, over 20,000 ints
//   raw_threads/Map_square/1000000             two threads of this process square the same 1M ints in
//                                              chunks: the in-process bound for map
//   serial/Grain, threads2/Grain,              N items of ~0 ns .. 1 ms of work each: a loop, two
//   mproc/Grain_pool2  (/<ns of work>)         std::threads, Pool(2).map: where processes pay off
//   mproc/Apply_round_trip_same_cpu, _two_cpus Pool(1).apply(f, x): one task there and its result back,
//                                              the worker on the caller's CPU or on another one
//   raw/Apply_round_trip_same_cpu, _two_cpus   a futex ping-pong between two processes: the bound
//
// Reference numbers on a 2-core VM of the kind this is developed on (Python 3.11, the same workloads,
// bench/python/compare.py): sum_square Pool(2) speedup 1.82x; map(square) over 1M ints ~344 ns per
// item; apply round trip ~300 us. A futex ping-pong between two processes ~26 us.
//
// Pools are built before the timed loop (forking them is not what is measured); the timed part is the
// map or apply call, results included. Every case uses real time (the parent sleeps while workers
// work), and the items_per_second counter counts the items of one call, so the rate of a pooled case
// over the rate of its serial case is the speedup. Map cases also report ns_per_item.
//
// Placement: the map cases leave the processes where the scheduler puts them (they need every CPU);
// the round trips are pinned, one CPU or two (see below).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <linux/futex.h>
#include <numeric>
#include <ranges>
#include <sched.h>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/multiprecision/cpp_int.hpp>

#include <benchmark/benchmark.h>
#include <mproc/pool.hpp>

#include "bench_support.hpp"

namespace {

// ---- the workloads ------------------------------------------------------------------------------

constexpr int sum_square_count = 10000; // the tutorial's range(10000)
constexpr int factorial_count = 2000;   // examples/factorial.cpp does 12000; this keeps the run short
constexpr int map_count = 1'000'000;
constexpr int map_chunksize1_count = 20'000; // chunksize 1 costs microseconds per item

std::uint64_t sum_square(int number) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(number); ++i) {
        // As in examples/sum_square.cpp: the compiler may not replace the loop by its closed form.
        asm volatile("" : "+r"(i));
        s += i * i;
    }
    return s;
}

std::size_t factorial_bits(int n) {
    boost::multiprecision::cpp_int f = 1;
    for (int i = 2; i <= n; ++i) f *= i;
    return boost::multiprecision::msb(f) + 1;
}

// Exact, as Python's x * x: a 64-bit result.
std::int64_t square(int x) { return std::int64_t{x} * x; }

int plus_one(int x) { return x + 1; }

// Pool(W) for W = 1..cpu_count() + 2: the last two have more workers than CPUs (bench/python/compare.py
// draws them shaded).
int workers_arg_max() { return std::max(2, mproc::cpu_count()) + 2; }

// Runs `body`, turning an mproc exception into a failed benchmark rather than an aborted run.
template <class Body>
void guarded(benchmark::State& state, Body&& body) {
    try {
        body();
    } catch (const std::exception& e) {
        state.SkipWithError((std::string("exception: ") + e.what()).c_str());
    }
}

// ---- sum_square and factorial: serial against Pool(W).map ------------------------------------------

template <auto F, int Count>
void serial_loop(benchmark::State& state) {
    using R = decltype(F(0));
    std::vector<R> out;
    for (auto _ : state) {
        out.clear(); // keeps the capacity, as a serial loop written once would
        out.reserve(Count);
        for (int n = 0; n < Count; ++n) out.push_back(F(n));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * Count);
}

template <auto F, int Count>
void pooled_map(benchmark::State& state) {
    using R = decltype(F(0));
    guarded(state, [&] {
        static const std::vector<R> expected = [] { // once: the library calls this function many times
            std::vector<R> v;
            for (int n = 0; n < Count; ++n) v.push_back(F(n));
            return v;
        }();
        mproc::Pool pool(static_cast<int>(state.range(0)));
        std::vector<R> out;
        for (auto _ : state) {
            out = pool.map(F, std::views::iota(0, Count));
            benchmark::DoNotOptimize(out.data());
        }
        if (out != expected) state.SkipWithError("the pooled results differ from the serial ones");
        state.SetItemsProcessed(state.iterations() * Count);
    });
}

BENCHMARK(serial_loop<sum_square, sum_square_count>)->Name("serial/SumSquare")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(pooled_map<sum_square, sum_square_count>)
    ->Name("mproc/SumSquare_pool")
    ->DenseRange(1, workers_arg_max())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(serial_loop<factorial_bits, factorial_count>)->Name("serial/Factorial")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(pooled_map<factorial_bits, factorial_count>)
    ->Name("mproc/Factorial_pool")
    ->DenseRange(1, workers_arg_max())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- map(square): per-item cost -------------------------------------------------------------------

std::vector<int> iota_ints(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}

/// Times the loop it spans (as the library does: from the first iteration to the end of the last)
/// and reports ns_per_item, real time per item, beside items_per_second.
class PerItem {
public:
    explicit PerItem(benchmark::State& state) : state_(state) {}
    void report(std::size_t items_per_iteration) {
        const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start_).count();
        const double items = static_cast<double>(state_.iterations()) * static_cast<double>(items_per_iteration);
        state_.SetItemsProcessed(static_cast<std::int64_t>(items));
        if (items > 0) state_.counters["ns_per_item"] = ns / items;
    }

private:
    benchmark::State& state_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Pool().map(square, inputs, chunksize): cpu_count() workers, as Python's Pool().
void mproc_map_square(benchmark::State& state, std::size_t chunksize) {
    const auto n = static_cast<int>(state.range(0));
    guarded(state, [&] {
        const std::vector<int> inputs = iota_ints(n);
        mproc::Pool pool;
        std::vector<std::int64_t> out;
        PerItem per_item(state);
        for (auto _ : state) {
            out = pool.map(square, inputs, chunksize);
            benchmark::DoNotOptimize(out.data());
        }
        if (out.size() != inputs.size() || out.back() != square(n - 1) || out[static_cast<std::size_t>(n / 2)] != square(n / 2))
            state.SkipWithError("wrong results");
        per_item.report(inputs.size());
    });
}
void mproc_map_square_default(benchmark::State& state) { mproc_map_square(state, 0); }
void mproc_map_square_chunksize1(benchmark::State& state) { mproc_map_square(state, 1); }
BENCHMARK(mproc_map_square_default)->Name("mproc/Map_square")->Arg(map_count)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(mproc_map_square_chunksize1)
    ->Name("mproc/Map_square_chunksize1")
    ->Arg(map_chunksize1_count)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The in-process bound: this thread and one std::thread (started per call, as a map's work is handed
// out per call) take chunks of 16 Ki items from a shared counter and write the squares into a fresh
// result vector, value-initialised as map's is.
void raw_threads_map_square(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<int> inputs = iota_ints(static_cast<int>(n));
    constexpr std::size_t chunk = 16384;
    std::vector<std::int64_t> out;
    PerItem per_item(state);
    for (auto _ : state) {
        out = std::vector<std::int64_t>(n);
        std::atomic<std::size_t> next{0};
        auto work = [&] {
            for (std::size_t at; (at = next.fetch_add(chunk, std::memory_order_relaxed)) < n;) {
                const std::size_t end = std::min(n, at + chunk);
                for (std::size_t i = at; i < end; ++i) out[i] = square(inputs[i]);
            }
        };
        std::thread other(work);
        work();
        other.join();
        benchmark::DoNotOptimize(out.data());
    }
    if (out.back() != square(static_cast<int>(n) - 1)) state.SkipWithError("wrong results");
    per_item.report(n);
}
BENCHMARK(raw_threads_map_square)->Name("raw_threads/Map_square")->Arg(map_count)->UseRealTime()->Unit(benchmark::kMillisecond);

// ---- grain: per-item cost as the task grows --------------------------------------------------------
//
// The same map over N items of `work_ns` nanoseconds of work each (a calibrated loop), four ways:
//   serial/Grain/<work_ns>         a plain loop in this process
//   threads2/Grain/<work_ns>       this thread and one std::thread (started per call) taking chunks of
//                                  an atomic counter: what two CPUs give without processes
//   mproc/Grain_pool2/<work_ns>    Pool(2).map, default chunks
// (bench/python/compare.py runs Python's Pool(2).map on the same grid.) The time per item beyond
// serial/2 is what a pool costs per item; where a pooled rate passes the serial rate, processes pay
// off. N shrinks as the task grows (grain_items), so every call does ~20 ms of serial work.

/// Runs `iterations` steps of a loop the compiler must keep (an empty asm claims to change the
/// counter): the task of the grain cases, its cost set by `iterations`.
std::uint64_t burn(int iterations) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(iterations); ++i) {
        asm volatile("" : "+r"(i));
        s += i ^ (s << 1);
    }
    return s;
}

/// Nanoseconds per step of burn(), the best of a few timed runs of ~10 ms (measured once).
double burn_ns_per_step() {
    static const double ns = [] {
        constexpr int steps = 1 << 22;
        double best = 1e9;
        for (int r = 0; r < 5; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            benchmark::DoNotOptimize(burn(steps));
            const double t = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
            best = std::min(best, t / steps);
        }
        return best;
    }();
    return ns;
}

/// Items per call for a task of `work_ns`: ~20 ms of serial work, between 64 and 200,000 items
/// (the same rule as bench/python/compare.py's grain workload).
int grain_items(std::int64_t work_ns) {
    return static_cast<int>(std::clamp<std::int64_t>(20'000'000 / std::max<std::int64_t>(work_ns, 100), 64, 200'000));
}

/// The inputs of a grain case: grain_items(work_ns) copies of the step count that takes work_ns.
std::vector<int> grain_inputs(std::int64_t work_ns) {
    const double steps = std::round(static_cast<double>(work_ns) / burn_ns_per_step());
    return std::vector<int>(static_cast<std::size_t>(grain_items(work_ns)), static_cast<int>(steps));
}

void report_grain(benchmark::State& state, PerItem& per_item, std::size_t items, std::int64_t work_ns) {
    per_item.report(items);
    state.counters["work_ns"] = static_cast<double>(work_ns);
    state.counters["items"] = static_cast<double>(items);
}

void serial_grain(benchmark::State& state) {
    const std::vector<int> inputs = grain_inputs(state.range(0));
    std::vector<std::uint64_t> out;
    PerItem per_item(state);
    for (auto _ : state) {
        out.clear();
        out.reserve(inputs.size());
        for (int steps : inputs) out.push_back(burn(steps));
        benchmark::DoNotOptimize(out.data());
    }
    report_grain(state, per_item, inputs.size(), state.range(0));
}

void threads2_grain(benchmark::State& state) {
    const std::vector<int> inputs = grain_inputs(state.range(0));
    const std::size_t n = inputs.size();
    const std::size_t chunk = std::max<std::size_t>(1, n / 16); // 16 chunks, handed out as they are asked for
    std::vector<std::uint64_t> out;
    PerItem per_item(state);
    for (auto _ : state) {
        out = std::vector<std::uint64_t>(n);
        std::atomic<std::size_t> next{0};
        auto work = [&] {
            for (std::size_t at; (at = next.fetch_add(chunk, std::memory_order_relaxed)) < n;) {
                const std::size_t end = std::min(n, at + chunk);
                for (std::size_t i = at; i < end; ++i) out[i] = burn(inputs[i]);
            }
        };
        std::thread other(work);
        work();
        other.join();
        benchmark::DoNotOptimize(out.data());
    }
    report_grain(state, per_item, n, state.range(0));
}

void mproc_grain_pool2(benchmark::State& state) {
    guarded(state, [&] {
        const std::vector<int> inputs = grain_inputs(state.range(0));
        const std::uint64_t expected = burn(inputs.front());
        mproc::Pool pool(2);
        std::vector<std::uint64_t> out;
        PerItem per_item(state);
        for (auto _ : state) {
            out = pool.map(burn, inputs);
            benchmark::DoNotOptimize(out.data());
        }
        if (out.size() != inputs.size() || out.front() != expected || out.back() != expected)
            state.SkipWithError("wrong results");
        report_grain(state, per_item, inputs.size(), state.range(0));
    });
}

// Task sizes in ns of work per item: ~0 to 1 ms, about three per decade.
void grain_sizes(benchmark::internal::Benchmark* b) {
    for (std::int64_t ns : {0, 100, 300, 1'000, 3'000, 10'000, 30'000, 100'000, 300'000, 1'000'000}) b->Arg(ns);
}
BENCHMARK(serial_grain)->Name("serial/Grain")->Apply(grain_sizes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(threads2_grain)->Name("threads2/Grain")->Apply(grain_sizes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(mproc_grain_pool2)->Name("mproc/Grain_pool2")->Apply(grain_sizes)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---- apply round trip -----------------------------------------------------------------------------
//
// Where the two processes run decides the round trip (bench/README.md, "Placement"), so each side is
// measured in both placements, pinned: on one CPU, a round trip is two wake-ups and two context
// switches there; on two CPUs, two wake-ups of the other CPU, which on a VM cost tens of microseconds
// (the ~26 us of the reference figure) unless the process being woken is still spinning.

/// Pins the calling thread to the CPU it runs on (children forked meanwhile inherit that), names
/// another CPU it may use for a partner process (the same one if there is none), and restores the
/// former affinity when destroyed. Does nothing if the affinity cannot be read or set.
class Placement {
public:
    Placement() {
        if (::sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
        here_ = ::sched_getcpu();
        if (here_ < 0) return;
        other_ = here_;
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (c != here_ && CPU_ISSET(static_cast<std::size_t>(c), &saved_)) {
                other_ = c;
                break;
            }
        pinned_ = pin(0, here_);
    }
    ~Placement() {
        if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
    }
    Placement(const Placement&) = delete;
    Placement& operator=(const Placement&) = delete;

    /// Puts `pid` on this thread's CPU (`two_cpus` false) or on the other one. False if that is not
    /// possible (one CPU only: then both share it).
    bool place_partner(pid_t pid, bool two_cpus) const {
        if (!pinned_) return false;
        if (!two_cpus) return true; // a child forked after the constructor inherited the pin
        return other_ != here_ && pin(pid, other_);
    }

private:
    static bool pin(pid_t pid, int cpu) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(static_cast<std::size_t>(cpu), &one);
        return ::sched_setaffinity(pid, sizeof one, &one) == 0;
    }
    cpu_set_t saved_{};
    int here_ = -1, other_ = -1;
    bool pinned_ = false;
};

void label_placement(benchmark::State& state, const Placement& placement, pid_t partner, bool two_cpus) {
    if (!placement.place_partner(partner, two_cpus)) state.SetLabel(two_cpus ? "not on two CPUs" : "not pinned");
}

void mproc_apply_round_trip(benchmark::State& state, bool two_cpus) {
    guarded(state, [&] {
        Placement placement;
        mproc::Pool pool(1);
        label_placement(state, placement, pool.worker_pids().at(0), two_cpus);
        int x = 0;
        for (auto _ : state) {
            const int y = pool.apply(plus_one, x);
            if (y != x + 1) {
                state.SkipWithError("apply returned a wrong result");
                break;
            }
            x = y;
        }
    });
}
void mproc_apply_same_cpu(benchmark::State& state) { mproc_apply_round_trip(state, false); }
void mproc_apply_two_cpus(benchmark::State& state) { mproc_apply_round_trip(state, true); }
BENCHMARK(mproc_apply_same_cpu)->Name("mproc/Apply_round_trip_same_cpu")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(mproc_apply_two_cpus)->Name("mproc/Apply_round_trip_two_cpus")->UseRealTime()->Unit(benchmark::kMicrosecond);

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value) {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, nullptr, nullptr, 0);
}

// Two words on their own cache lines in a MAP_SHARED page: the parent writes a request number to
// `ping` and wakes the child; the child echoes it into `pong` and wakes the parent. Each side sleeps
// in FUTEX_WAIT as soon as the word it waits on is unchanged (no spinning). Request 0xffffffff stops
// the child.
struct PingPong {
    alignas(64) std::atomic<std::uint32_t> ping{0};
    alignas(64) std::atomic<std::uint32_t> pong{0};
};

void raw_futex_round_trip(benchmark::State& state, bool two_cpus) {
    constexpr std::uint32_t stop = 0xffffffff;
    Placement placement;
    mproc_bench::RawShared<PingPong> pp;
    const pid_t child = mproc_bench::fork_helper([&] {
        std::uint32_t seen = 0;
        for (;;) {
            std::uint32_t v;
            while ((v = pp->ping.load(std::memory_order_acquire)) == seen) futex(&pp->ping, FUTEX_WAIT, seen);
            seen = v;
            if (v == stop) return;
            pp->pong.store(v, std::memory_order_release);
            futex(&pp->pong, FUTEX_WAKE, 1);
        }
    });
    if (child < 0) {
        state.SkipWithError("fork failed");
        return;
    }
    label_placement(state, placement, child, two_cpus);
    std::uint32_t seq = 0;
    for (auto _ : state) {
        if (++seq == stop) seq = 1;
        pp->ping.store(seq, std::memory_order_release);
        futex(&pp->ping, FUTEX_WAKE, 1);
        std::uint32_t v;
        while ((v = pp->pong.load(std::memory_order_acquire)) != seq) futex(&pp->pong, FUTEX_WAIT, v);
    }
    pp->ping.store(stop, std::memory_order_release);
    futex(&pp->ping, FUTEX_WAKE, 1);
    const int status = mproc_bench::reap(child);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("the echo child failed");
}
void raw_futex_same_cpu(benchmark::State& state) { raw_futex_round_trip(state, false); }
void raw_futex_two_cpus(benchmark::State& state) { raw_futex_round_trip(state, true); }
BENCHMARK(raw_futex_same_cpu)->Name("raw/Apply_round_trip_same_cpu")->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(raw_futex_two_cpus)->Name("raw/Apply_round_trip_two_cpus")->UseRealTime()->Unit(benchmark::kMicrosecond);

} // namespace
