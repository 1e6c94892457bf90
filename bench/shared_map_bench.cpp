// shared_map_bench.cpp — mproc::SharedMap and SharedVector against the same operations on a
// Boost.Interprocess map and vector (boost::container with an interprocess allocator in a
// managed_external_buffer over a MAP_SHARED mapping) behind a raw robust mutex: what mproc's
// containers were before their own validated layout (docs/shared_memory.md), so one run gives the
// cost of validating every shared field. One process; every call takes the lock.
//
// Keys are "key-<i>" strings (8 to 9 bytes), values longs; N entries are in the map before timing.
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/container/map.hpp>
#include <boost/container/string.hpp>
#include <boost/container/vector.hpp>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <mproc/shared_memory.hpp>

#include "bench_support.hpp"

namespace {

namespace bip = boost::interprocess;
using Manager = bip::managed_external_buffer::segment_manager;
template <class T>
using Alloc = bip::allocator<T, Manager>;
using BoostString = boost::container::basic_string<char, std::char_traits<char>, Alloc<char>>;
struct Less {
    using is_transparent = void;
    static std::string_view view(const BoostString& s) { return {s.data(), s.size()}; }
    static std::string_view view(std::string_view s) { return s; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const { return view(a) < view(b); }
};
using BoostMap = boost::container::map<BoostString, long, Less, Alloc<std::pair<const BoostString, long>>>;
using BoostVector = boost::container::vector<long, Alloc<long>>;

constexpr std::size_t capacity = std::size_t{16} << 20;

std::string key(long i) { return "key-" + std::to_string(i); }

/// A name for this process's benchmark objects; removed by their destructors.
std::string bench_name(const char* what) { return "bench-" + std::to_string(::getpid()) + "." + what; }

/// The Boost side: a buffer in one MAP_SHARED mapping, with a container in it and a robust mutex.
struct BoostSide {
    struct Memory {
        alignas(64) std::byte bytes[capacity];
    };
    mproc_bench::RawShared<Memory> memory;
    mproc_bench::RawRobustMutex lock;
    bip::managed_external_buffer buffer{bip::create_only, memory->bytes, capacity};

    /// A map in the buffer holding key(i * stride) -> i for i < n (what the mproc cases set up).
    BoostMap* filled_map(long n, long stride = 1) {
        BoostMap* map = buffer.construct<BoostMap>(bip::anonymous_instance)(Alloc<char>(buffer.get_segment_manager()));
        for (long i = 0; i < n; ++i) {
            const std::string k = key(i * stride);
            map->emplace(BoostString(k.data(), k.size(), Alloc<char>(buffer.get_segment_manager())), i);
        }
        return map;
    }
};

void mproc_map_get(benchmark::State& state) {
    const long n = state.range(0);
    auto map = mproc::SharedMap<std::string, long>::create(bench_name("get"), capacity);
    for (long i = 0; i < n; ++i) map.set(key(i), i);
    std::vector<std::string> keys;
    for (long i = 0; i < n; ++i) keys.push_back(key((i * 7919) % n));
    std::size_t at = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(map.get(keys[at]));
        if (++at == keys.size()) at = 0;
    }
}
BENCHMARK(mproc_map_get)->Name("mproc/SharedMap_get")->Arg(1000)->Arg(100000);

void boost_map_get(benchmark::State& state) {
    const long n = state.range(0);
    BoostSide side;
    BoostMap* map = side.filled_map(n);
    std::vector<std::string> keys;
    for (long i = 0; i < n; ++i) keys.push_back(key((i * 7919) % n));
    std::size_t at = 0;
    for (auto _ : state) {
        side.lock.lock();
        auto it = map->find(std::string_view(keys[at]));
        std::optional<long> v;
        if (it != map->end()) v = it->second;
        side.lock.unlock();
        benchmark::DoNotOptimize(v);
        if (++at == keys.size()) at = 0;
    }
}
BENCHMARK(boost_map_get)->Name("boost/SharedMap_get")->Arg(1000)->Arg(100000);

void mproc_map_set_existing(benchmark::State& state) {
    const long n = state.range(0);
    auto map = mproc::SharedMap<std::string, long>::create(bench_name("set"), capacity);
    for (long i = 0; i < n; ++i) map.set(key(i), i);
    const std::string k = key(n / 2);
    long v = 0;
    for (auto _ : state) map.set(k, ++v);
}
BENCHMARK(mproc_map_set_existing)->Name("mproc/SharedMap_set_existing")->Arg(1000);

void boost_map_set_existing(benchmark::State& state) {
    const long n = state.range(0);
    BoostSide side;
    BoostMap* map = side.filled_map(n);
    const std::string k = key(n / 2);
    long v = 0;
    for (auto _ : state) {
        side.lock.lock();
        map->find(std::string_view(k))->second = ++v;
        side.lock.unlock();
    }
}
BENCHMARK(boost_map_set_existing)->Name("boost/SharedMap_set_existing")->Arg(1000);

// A new key in the middle of the map, then its removal: mproc moves the rows after it (O(n)),
// Boost relinks a tree node (O(log n)) and allocates one.
void mproc_map_insert_erase(benchmark::State& state) {
    const long n = state.range(0);
    auto map = mproc::SharedMap<std::string, long>::create(bench_name("insert"), capacity);
    for (long i = 0; i < n; ++i) map.set(key(2 * i), i);
    const std::string k = key(n + 1); // odd: absent, in the middle of the order
    for (auto _ : state) {
        map.set(k, 1);
        map.erase(k);
    }
}
BENCHMARK(mproc_map_insert_erase)->Name("mproc/SharedMap_insert_erase")->Arg(1000)->Arg(100000);

void boost_map_insert_erase(benchmark::State& state) {
    const long n = state.range(0);
    BoostSide side;
    Manager* sm = side.buffer.get_segment_manager();
    BoostMap* map = side.filled_map(n, 2);
    const std::string k = key(n + 1);
    for (auto _ : state) {
        side.lock.lock();
        map->emplace(BoostString(k.data(), k.size(), Alloc<char>(sm)), 1);
        side.lock.unlock();
        side.lock.lock();
        map->erase(map->find(std::string_view(k)));
        side.lock.unlock();
    }
}
BENCHMARK(boost_map_insert_erase)->Name("boost/SharedMap_insert_erase")->Arg(1000)->Arg(100000);

void mproc_vector_push_pop(benchmark::State& state) {
    auto vec = mproc::SharedVector<long>::create(bench_name("vector"), capacity);
    for (long i = 0; i < 1000; ++i) vec.push_back(i);
    for (auto _ : state) {
        vec.push_back(1);
        benchmark::DoNotOptimize(vec.pop_back());
    }
}
BENCHMARK(mproc_vector_push_pop)->Name("mproc/SharedVector_push_pop");

void boost_vector_push_pop(benchmark::State& state) {
    BoostSide side;
    BoostVector* vec = side.buffer.construct<BoostVector>(bip::anonymous_instance)(Alloc<long>(side.buffer.get_segment_manager()));
    for (long i = 0; i < 1000; ++i) vec->push_back(i);
    for (auto _ : state) {
        side.lock.lock();
        vec->push_back(1);
        side.lock.unlock();
        side.lock.lock();
        std::optional<long> v;
        if (!vec->empty()) {
            v = vec->back();
            vec->pop_back();
        }
        side.lock.unlock();
        benchmark::DoNotOptimize(v);
    }
}
BENCHMARK(boost_vector_push_pop)->Name("boost/SharedVector_push_pop");

void mproc_vector_at(benchmark::State& state) {
    auto vec = mproc::SharedVector<long>::create(bench_name("at"), capacity);
    for (long i = 0; i < 1000; ++i) vec.push_back(i);
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(vec.at(i));
        i = (i + 7) % 1000;
    }
}
BENCHMARK(mproc_vector_at)->Name("mproc/SharedVector_at");

void boost_vector_at(benchmark::State& state) {
    BoostSide side;
    BoostVector* vec = side.buffer.construct<BoostVector>(bip::anonymous_instance)(Alloc<long>(side.buffer.get_segment_manager()));
    for (long i = 0; i < 1000; ++i) vec->push_back(i);
    std::size_t i = 0;
    for (auto _ : state) {
        side.lock.lock();
        long v = (*vec)[i];
        side.lock.unlock();
        benchmark::DoNotOptimize(v);
        i = (i + 7) % 1000;
    }
}
BENCHMARK(boost_vector_at)->Name("boost/SharedVector_at");

} // namespace
