// shared_bench.cpp — mproc::SharedValue<long>::fetch_add against std::atomic<long>::fetch_add on a
// MAP_SHARED page. Both are sequentially consistent (a `lock xadd` on x86-64); mproc should add
// nothing but the pointer load to reach the arena slot.
#include <atomic>

#include <benchmark/benchmark.h>
#include <mproc/shared.hpp>

#include "bench_support.hpp"

namespace {

void mproc_shared_value_fetch_add(benchmark::State& state) {
    mproc::SharedValue<long> value(0);
    for (auto _ : state) benchmark::DoNotOptimize(value.fetch_add(1));
    if (value.load() != static_cast<long>(state.iterations())) state.SkipWithError("lost increments");
}
BENCHMARK(mproc_shared_value_fetch_add)->Name("mproc/SharedValue_fetch_add");

void raw_atomic_fetch_add(benchmark::State& state) {
    mproc_bench::RawShared<std::atomic<long>> value(0);
    for (auto _ : state) benchmark::DoNotOptimize(value->fetch_add(1));
    if (value->load() != static_cast<long>(state.iterations())) state.SkipWithError("lost increments");
}
BENCHMARK(raw_atomic_fetch_add)->Name("raw/SharedValue_fetch_add");

} // namespace
