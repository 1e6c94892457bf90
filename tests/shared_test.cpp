#include "support.hpp"

#include <mproc/detail/arena.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <vector>

using namespace mproc;
using test::join_bounded;
using test::run_processes;

namespace {

struct Point {
    double x, y, z;
    long tag;
};

} // namespace

TEST_CASE("SharedValue starts at its initial value and a child's writes are seen by the parent") {
    SharedValue<int> zero;
    CHECK(zero.value() == 0);
    SharedValue<double> v(2.5);
    CHECK(v.value() == 2.5);
    run_processes(1, [&](int) { v.value() *= 4; });
    CHECK(v.value() == 10.0);
}

TEST_CASE("fetch_add and fetch_sub are atomic across processes") {
    SharedValue<long> v(0);
    run_processes(4, [&](int i) {
        for (int k = 0; k < 50000; ++k) (i % 2 ? v.fetch_sub(1) : v.fetch_add(3));
    });
    CHECK(v.load() == 2 * 50000 * 3 - 2 * 50000);
    CHECK(v.fetch_add(5) == 200000);
    CHECK(v.fetch_sub(5) == 200005);
    v.store(-7);
    CHECK(v.load() == -7);
}

TEST_CASE("get_lock makes compound updates of a SharedValue exact") {
    SharedValue<int> v(0);
    run_processes(4, [&](int) {
        for (int k = 0; k < 10000; ++k) {
            std::lock_guard g(v.get_lock());
            v.value() = v.value() + 1;
        }
    });
    CHECK(v.value() == 40000);
}

TEST_CASE("load and store of a struct too large for lock-free atomics never tear") {
    SharedValue<Point> p(Point{0, 0, 0, 0});
    run_processes(3, [&](int i) {
        for (long k = 0; k < 3000; ++k) {
            double d = static_cast<double>(k * 10 + i);
            p.store(Point{d, d, d, k * 10 + i});
            Point seen = p.load();
            if (!(seen.x == seen.y && seen.y == seen.z && seen.z == static_cast<double>(seen.tag))) mproc::exit(9);
        }
    });
    Point last = p.load();
    CHECK(last.x == static_cast<double>(last.tag));
}

TEST_CASE("SharedArray: construction, access, iteration and span") {
    SharedArray<int> a(5, 7);
    CHECK(a.size() == 5);
    CHECK_FALSE(a.empty());
    CHECK(std::all_of(a.begin(), a.end(), [](int x) { return x == 7; }));
    SharedArray<double> b{1.0, 2.0, 3.0};
    CHECK(std::accumulate(b.begin(), b.end(), 0.0) == 6.0);
    CHECK(b.span().size() == 3);
    CHECK(b.data()[2] == 3.0);
    SharedArray<char> empty(0);
    CHECK(empty.empty());
    CHECK(empty.begin() == empty.end());
    const SharedArray<int>& ca = a;
    CHECK(ca[4] == 7);
    CHECK(ca.span()[0] == 7);
}

TEST_CASE("SharedArray: children fill disjoint parts and the parent sees them all") {
    SharedArray<long> a(4000, -1);
    run_processes(4, [&](int i) {
        for (std::size_t k = static_cast<std::size_t>(i); k < a.size(); k += 4) a[k] = static_cast<long>(k * k);
    });
    bool all = true;
    for (std::size_t k = 0; k < a.size(); ++k) all = all && a[k] == static_cast<long>(k * k);
    CHECK(all);
}

TEST_CASE("SharedArray: get_lock guards a whole-array update") {
    SharedArray<int> a(8, 0);
    run_processes(4, [&](int) {
        for (int k = 0; k < 2000; ++k) {
            std::lock_guard g(a.get_lock());
            for (int& x : a) x = x + 1;
        }
    });
    CHECK(std::all_of(a.begin(), a.end(), [](int x) { return x == 8000; }));
}

TEST_CASE("SharedArray: bad sizes and indices are ValueErrors") {
    SharedArray<int> a(3);
    CHECK_THROWS_AS(a.at(3), ValueError);
    CHECK_THROWS_WITH(a.at(10), Catch::Contains("index 10") && Catch::Contains("size 3"));
    a.at(2) = 5;
    CHECK(a[2] == 5);
    volatile std::size_t huge = std::size_t(-1) / 2; // opaque to the optimiser, which would warn about the fill
    CHECK_THROWS_AS(SharedArray<double>(huge), ValueError);
}

TEST_CASE("many shared objects can be created and destroyed (the arena reuses and grows)") {
    for (int round = 0; round < 3; ++round) {
        std::vector<std::unique_ptr<SharedArray<char>>> arrays;
        for (int i = 0; i < 200; ++i) arrays.push_back(std::make_unique<SharedArray<char>>(16 * 1024, 'x'));
        CHECK((*arrays.back())[16 * 1024 - 1] == 'x');
    }
    SharedArray<char> big(8 << 20, 'y'); // larger than one arena chunk
    CHECK(big[(8 << 20) - 1] == 'y');
}

namespace {

// A ChunkHeap over a mapping of its own, so that a test sees exactly what it allocated.
struct TestHeap {
    std::size_t size;
    void* mem;
    detail::ChunkHeap* heap;
    explicit TestHeap(std::size_t bytes)
        : size(bytes), mem(detail::posix::map_shared_anonymous(bytes)), heap(detail::ChunkHeap::create(mem, bytes)) {}
    ~TestHeap() { detail::posix::unmap(mem, size); }
    TestHeap(const TestHeap&) = delete;
    TestHeap& operator=(const TestHeap&) = delete;
};

} // namespace

TEST_CASE("arena: many allocations and frees of mixed sizes keep every live block intact and apart") {
    TestHeap t(std::size_t{16} << 20);
    struct Live {
        std::size_t bytes;
        unsigned char fill;
    };
    std::map<char*, Live> live; // the model: what must be allocated, and what it must hold
    std::uint64_t rng = 12345;
    auto next = [&rng](std::uint64_t below) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        return (rng >> 33) % below;
    };
    const std::size_t aligns[] = {1, 8, 16, 64, 256, 4096};
    auto check_all = [&] {
        char* end = nullptr;
        for (auto& [p, l] : live) {
            REQUIRE(p >= end); // no two blocks overlap
            REQUIRE(static_cast<unsigned char>(p[0]) == l.fill);
            REQUIRE(static_cast<unsigned char>(p[l.bytes - 1]) == l.fill);
            end = p + l.bytes;
        }
    };
    for (int step = 0; step < 20000; ++step) {
        if (live.empty() || next(100) < 55) {
            const std::uint64_t kind = next(10);
            const std::size_t bytes = kind < 6   ? 1 + next(200)
                                      : kind < 9 ? 1 + next(40 << 10)
                                                 : (64 << 10) + next(256 << 10);
            const std::size_t align = aligns[next(6)];
            auto* p = static_cast<char*>(t.heap->allocate(bytes, align));
            if (!p) { // full: free half of what lives, the model does too
                for (auto it = live.begin(); it != live.end();)
                    if (next(2)) {
                        t.heap->deallocate(it->first);
                        it = live.erase(it);
                    } else {
                        ++it;
                    }
                continue;
            }
            REQUIRE(reinterpret_cast<std::uintptr_t>(p) % align == 0);
            REQUIRE(t.heap->contains(p));
            REQUIRE(t.heap->contains(p + bytes - 1));
            REQUIRE(t.heap->block_size(p) >= bytes);
            const auto fill = static_cast<unsigned char>(1 + next(250));
            std::memset(p, fill, bytes);
            live.emplace(p, Live{bytes, fill});
        } else {
            auto it = live.begin();
            std::advance(it, static_cast<long>(next(live.size())));
            REQUIRE(static_cast<unsigned char>(it->first[it->second.bytes - 1]) == it->second.fill);
            t.heap->deallocate(it->first);
            live.erase(it);
        }
        if (step % 1000 == 0) check_all();
    }
    check_all();
    for (auto& [p, l] : live) t.heap->deallocate(p);
    // Every large block is free and merged again: the largest still fits, at the lowest address.
    auto* first = static_cast<char*>(t.heap->allocate(std::size_t{4} << 20, 16));
    REQUIRE(first);
    CHECK(first == static_cast<char*>(t.mem) + detail::ChunkHeap::header_bytes + 16);
}

TEST_CASE("arena: a freed block is reused, and a second free of it is ignored") {
    TestHeap t(std::size_t{1} << 20);
    void* small = t.heap->allocate(100, 16);
    t.heap->deallocate(small);
    CHECK(t.heap->allocate(100, 16) == small);
    void* large = t.heap->allocate(100 << 10, 64);
    t.heap->deallocate(large);
    CHECK(t.heap->allocate(100 << 10, 64) == large);
    t.heap->deallocate(small);
    t.heap->deallocate(small); // ignored: the block is not on its free list twice
    void* a = t.heap->allocate(100, 16);
    void* b = t.heap->allocate(100, 16);
    CHECK(a == small);
    CHECK(b != small);
}

TEST_CASE("arena: a full chunk says so, and the arena throws OSError for what no mapping can hold") {
    TestHeap t(std::size_t{64} << 10);
    int blocks = 0;
    while (t.heap->allocate(1000, 64)) ++blocks;
    CHECK(blocks > 20);
    CHECK(t.heap->allocate(1 << 20, 16) == nullptr);
    CHECK_THROWS_AS(detail::Arena::instance().allocate(std::size_t(-1) / 2, 64), OSError);
    CHECK_THROWS_WITH(detail::Arena::instance().allocate(std::size_t(-1) - 8, 64),
                      Catch::Contains("mproc arena: cannot place"));
}

TEST_CASE("arena: a freed large block's pages go back to the system") {
    TestHeap t(std::size_t{4} << 20);
    const std::size_t bytes = std::size_t{1} << 20;
    auto* p = static_cast<char*>(t.heap->allocate(bytes, 64));
    REQUIRE(p);
    std::memset(p, 0xab, bytes);
    t.heap->deallocate(p);
    // MADV_REMOVE punched a hole: the block's pages past its head read as zeros again.
    CHECK(p[8192] == 0);
    CHECK(p[bytes / 2] == 0);
    CHECK(p[bytes - 1] == 0);
}

TEST_CASE("arena: a corrupt offset in the shared lists is a SerializationError, not a crash") {
    TestHeap t(std::size_t{1} << 20);
    void* p = t.heap->allocate(100, 16); // class 1 (128 bytes with its head)
    t.heap->deallocate(p);
    t.heap->small_head_for_testing(1) = 12345;
    CHECK_THROWS_AS(t.heap->allocate(100, 16), SerializationError);
    t.heap->small_head_for_testing(1) = std::uint64_t(-64);
    CHECK_THROWS_WITH(t.heap->allocate(100, 16), Catch::Contains("mproc arena: corrupt"));
    t.heap->small_head_for_testing(1) = 0;
    t.heap->deallocate(reinterpret_cast<char*>(t.mem) + 9000); // not a block: left alone
    CHECK(t.heap->allocate(100, 16) != nullptr);
}

TEST_CASE("a child may create and free shared objects of its own") {
    SharedValue<int> ok(0);
    run_processes(2, [&](int) {
        SharedValue<int> mine(5);
        Lock lock;
        std::lock_guard g(lock);
        ok.fetch_add(mine.value());
    });
    CHECK(ok.load() == 10);
}
