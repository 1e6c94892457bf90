#include "support.hpp"

#include <algorithm>
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
