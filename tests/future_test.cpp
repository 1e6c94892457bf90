#include "support.hpp"

#include <mproc/pool.hpp>
#include <mproc/spawn.hpp>

#include <csignal>
#include <algorithm>
#include <atomic>
#include <map>
#include <numeric>
#include <thread>
#include <optional>
#include <string>
#include <vector>
#include <unistd.h>

using namespace mproc;
using test::bound;
using namespace std::chrono_literals;

namespace {
struct Stats {
    long sum;
    double mean;
    pid_t pid;
};
long triangle(long n) { return n * (n + 1) / 2; }
} // namespace

TEST_CASE("spawn returns the function's value from another process") {
    auto f = spawn(triangle, 100L);
    CHECK(f.get() == 5050);
    CHECK(f.get() == 5050); // get() may be called again
    auto g = spawn([](int a, int b) { return Stats{a + b, (a + b) / 2.0, ::getpid()}; }, 3, 4);
    Stats s = g.get();
    CHECK(s.sum == 7);
    CHECK(s.mean == 3.5);
    CHECK(s.pid != ::getpid());
}

TEST_CASE("spawn returns any serializable value, large ones too") {
    auto f = spawn([](int n) { return std::vector<std::string>(static_cast<std::size_t>(n), std::string(1000, 'z')); }, 2000);
    auto v = f.get(); // 2 MB: more than the socket buffer, read before the child is reaped
    CHECK(v.size() == 2000);
    CHECK(v.back() == std::string(1000, 'z'));
    auto g = spawn([] { return std::map<std::string, std::optional<int>>{{"a", 1}, {"b", std::nullopt}}; });
    CHECK(g.get() == std::map<std::string, std::optional<int>>{{"a", 1}, {"b", std::nullopt}});
}

TEST_CASE("spawn of a void function settles when it returns") {
    SharedValue<int> ran(0);
    auto f = spawn([&] { ran.value() = 1; });
    f.get();
    CHECK(ran.value() == 1);
}

TEST_CASE("wait_for, ready and wait follow the child") {
    Event go;
    auto f = spawn([&] {
        go.wait();
        return 11;
    });
    CHECK_FALSE(f.ready());
    CHECK_FALSE(f.wait_for(30ms));
    go.set();
    CHECK(f.wait_for(bound));
    CHECK(f.ready());
    f.wait();
    CHECK(f.get() == 11);
}

TEST_CASE("an exception in the spawned function comes back as RemoteError") {
    auto f = spawn([]() -> int { throw std::out_of_range("index 12 of 3"); });
    try {
        f.get();
        FAIL("get() should throw");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "std::out_of_range");
        CHECK(std::string(e.what()) == "index 12 of 3");
        CHECK(e.pid() > 0);
    }
}

TEST_CASE("a spawned process that dies without a result gives WorkerCrashed") {
    SECTION("killed by a signal") {
        auto f = spawn([]() -> int {
            std::raise(SIGKILL);
            return 0;
        });
        try {
            f.get();
            FAIL("get() should throw");
        } catch (const WorkerCrashed& e) {
            CHECK(e.signal() == SIGKILL);
            CHECK_THAT(e.what(), Catch::Contains("SIGKILL") && Catch::Contains("before returning a result"));
        }
    }
    SECTION("exited early") {
        auto f = spawn([]() -> int { mproc::exit(3); });
        try {
            f.get();
            FAIL("get() should throw");
        } catch (const WorkerCrashed& e) {
            CHECK(e.signal() == 0);
            CHECK(e.exit_code() == 3);
            CHECK_THAT(e.what(), Catch::Contains("exited with code 3"));
        }
    }
}

TEST_CASE("a moved-from Future refuses to be used") {
    auto f = spawn(triangle, 3L);
    auto g = std::move(f);
    CHECK(g.get() == 6);
    CHECK_THROWS_AS(f.get(), StateError); // NOLINT(bugprone-use-after-move): the point of the test
}

// ---------------------------------------------------------------- futures issue: cancel, callbacks, wait, as_completed

namespace {

Event* g_gate = nullptr;    // tasks that must not finish until the test says so wait on it
Event* g_started = nullptr; // set by a task once it runs
int* g_ran = nullptr;       // counts of runs, per task number

int held(int x) { // starts, then waits for the gate (bounded: a broken test fails, it does not hang)
    g_started->set();
    if (!g_gate->wait_for(test::bound)) return -1;
    return x;
}
int counted(int x) {
    std::atomic_ref<int>(g_ran[x]).fetch_add(1);
    return x * 10;
}
int thrower(int x) { throw std::invalid_argument("thrower " + std::to_string(x)); }
int stuck(int) { // never finishes unless killed (bounded, see above)
    g_started->set();
    Event never;
    never.wait_for(test::bound);
    return -1;
}

// Shared state built before any pool forks, for capture-less tasks to reach.
struct Fixture {
    Event gate, started;
    SharedArray<int> ran = SharedArray<int>(64, 0);
    Fixture() {
        g_gate = &gate;
        g_started = &started;
        g_ran = ran.data();
    }
};

} // namespace

TEST_CASE("cancel drops a task that has not started: it never runs, get throws CancelledError") {
    Fixture fx;
    Pool pool(1);
    auto first = pool.submit(held, 1);
    REQUIRE(fx.started.wait_for(bound)); // the only worker is busy
    auto second = pool.submit(counted, 2);
    CHECK(!second.done());
    CHECK(second.cancel());
    CHECK(second.cancelled());
    CHECK(second.done());
    CHECK_THROWS_AS(second.get(), CancelledError);
    CHECK(second.exception() != nullptr);
    CHECK(!second.cancel()); // settled: nothing changes
    fx.gate.set();
    CHECK(first.get() == 1);
    CHECK(pool.apply(counted, 3) == 30);
    CHECK(fx.ran[2] == 0); // dropped unrun
    CHECK(!first.cancel());
    CHECK(!first.cancelled());
}

TEST_CASE("cancel of a running task kills and replaces its worker, the pool carries on") {
    Fixture fx;
    Pool pool(1);
    auto before = pool.worker_pids();
    auto f = pool.submit(stuck, 0);
    REQUIRE(fx.started.wait_for(bound));
    CHECK(f.cancel());
    CHECK_THROWS_AS(f.get(), CancelledError);
    CHECK(pool.apply(counted, 4) == 40);
    CHECK(pool.worker_pids() != before);
}

TEST_CASE("cancel racing with the task's start: exactly one outcome, never both") {
    Fixture fx;
    Pool pool(2);
    for (int round = 0; round < 30; ++round) {
        auto f = pool.submit(counted, round % 64);
        bool cancelled = f.cancel();
        if (cancelled) {
            CHECK_THROWS_AS(f.get(), CancelledError);
        } else {
            CHECK(f.get() == (round % 64) * 10);
        }
    }
    CHECK(pool.apply(counted, 5) == 50);
}

TEST_CASE("done callbacks: run once after settling, at once if settled, with the value, the error or the cancellation") {
    Fixture fx;
    Pool pool(2);
    int calls = 0, value = 0;
    auto f = pool.submit(counted, 7);
    f.add_done_callback([&](Future<int>& done) {
        ++calls;
        value = done.get();
    });
    CHECK(f.get() == 70);
    CHECK(calls == 1);
    CHECK(value == 70);
    int late = 0;
    f.add_done_callback([&](Future<int>& done) { late = done.get(); }); // settled: runs now
    CHECK(late == 70);
    auto g = pool.submit(thrower, 1);
    std::string what;
    g.add_done_callback([&](Future<int>& done) {
        try {
            std::rethrow_exception(done.exception());
        } catch (const RemoteError& e) {
            what = e.what();
        }
    });
    g.wait();
    CHECK(what == "thrower 1");
    // A callback that throws is reported, the next one still runs, and the pool is unharmed.
    auto h = pool.submit(counted, 8);
    int after = 0;
    h.add_done_callback([](Future<int>&) { throw std::runtime_error("callback failure"); });
    h.add_done_callback([&](Future<int>&) { ++after; });
    CHECK(h.get() == 80);
    CHECK(after == 1);
    // Cancellation runs the callbacks too.
    auto first = pool.submit(held, 1), second = pool.submit(held, 2);
    REQUIRE(fx.started.wait_for(bound));
    auto third = pool.submit(counted, 9);
    bool saw_cancel = false;
    third.add_done_callback([&](Future<int>& done) { saw_cancel = done.cancelled() || done.exception() != nullptr; });
    CHECK(third.cancel());
    CHECK(saw_cancel);
    fx.gate.set();
    CHECK(first.get() == 1);
    CHECK(second.get() == 2);
}

TEST_CASE("a callback registered while its task settles runs exactly once") {
    Fixture fx;
    Pool pool(2);
    for (int round = 0; round < 50; ++round) {
        std::atomic<int> calls{0};
        auto f = pool.submit(counted, round % 64);
        std::thread waiter([&] { f.wait(); });
        f.add_done_callback([&](Future<int>&) { ++calls; });
        waiter.join();
        f.wait();
        CHECK(calls.load() == 1);
    }
}

TEST_CASE("mproc::wait over futures of two pools and a spawn: all_completed, first_completed, first_exception, timeout") {
    Fixture fx;
    Pool a(1), b(1);
    std::vector<Future<int>> fs;
    fs.push_back(a.submit(counted, 1));
    fs.push_back(b.submit(counted, 2));
    fs.push_back(spawn([] { return 30; }));
    auto all = mproc::wait(fs, bound);
    CHECK(all.done.size() == 3);
    CHECK(all.not_done.empty());
    CHECK(fs[0].get() == 10);
    CHECK(fs[1].get() == 20);
    CHECK(fs[2].get() == 30);

    std::vector<Future<int>> gs;
    gs.push_back(a.submit(held, 1));
    REQUIRE(fx.started.wait_for(bound));
    gs.push_back(b.submit(counted, 3));
    auto first = mproc::wait(gs, bound, ReturnWhen::first_completed);
    CHECK(first.done == std::vector<std::size_t>{1});
    CHECK(first.not_done == std::vector<std::size_t>{0});
    auto timed = mproc::wait(gs, 50ms);
    CHECK(timed.not_done == std::vector<std::size_t>{0});

    std::vector<Future<int>> hs;
    hs.push_back(b.submit(thrower, 4));
    hs.push_back(spawn([] { return 5; }));
    auto failed = mproc::wait(hs, bound, ReturnWhen::first_exception);
    CHECK(std::find(failed.done.begin(), failed.done.end(), 0u) != failed.done.end());
    fx.gate.set();
    CHECK(gs[0].get() == 1);
    CHECK_THROWS_AS(mproc::wait(hs, -1s), ValueError);
}

TEST_CASE("as_completed yields futures as they settle, and TimeoutError when its time runs out") {
    Fixture fx;
    Pool pool(2);
    std::vector<Future<int>> fs;
    fs.push_back(pool.submit(held, 1));
    REQUIRE(fx.started.wait_for(bound));
    fs.push_back(pool.submit(counted, 2));
    fs.push_back(spawn([] { return 3; }));
    std::vector<int> order;
    auto completed = mproc::as_completed(fs, 300ms);
    bool timed_out = false;
    try {
        for (Future<int>& f : completed) order.push_back(f.get());
    } catch (const TimeoutError& e) {
        timed_out = true;
        CHECK_THAT(e.what(), Catch::Contains("1 future"));
    }
    CHECK(timed_out);
    std::sort(order.begin(), order.end());
    CHECK(order == std::vector<int>{3, 20});
    fx.gate.set();
    std::vector<int> all;
    for (Future<int>& f : mproc::as_completed(fs, bound)) all.push_back(f.get());
    std::sort(all.begin(), all.end());
    CHECK(all == std::vector<int>{1, 3, 20});
}

TEST_CASE("AsCompleted is built as as_completed is: with or without a timeout, a negative one refused") {
    std::vector<Future<int>> fs;
    fs.push_back(spawn([] { return 7; }));
    fs.push_back(spawn([] { return 8; }));
    std::vector<int> got;
    for (Future<int>& f : mproc::AsCompleted(fs, bound)) got.push_back(f.get());
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<int>{7, 8});
    got.clear();
    for (Future<int>& f : mproc::AsCompleted(fs)) got.push_back(f.get()); // settled already: all at once
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<int>{7, 8});
    CHECK_THROWS_AS(mproc::AsCompleted(fs, -1ms), ValueError);
    CHECK_THROWS_WITH(mproc::as_completed(fs, -1s), Catch::Contains("as_completed: the timeout must not be negative"));
}

TEST_CASE("per-task and per-item timeouts fail only the overrunning work") {
    Fixture fx;
    Pool pool(2);
    auto slow = pool.apply_async(TaskOptions{.timeout = 200ms}, stuck, 0);
    auto fast = pool.submit(counted, 6);
    CHECK_THROWS_AS(slow.get(), TimeoutError);
    CHECK(fast.get() == 60);
    CHECK_THROWS_AS(pool.apply_async(TaskOptions{.timeout = -1s}, counted, 1), ValueError);
    // map: the item that overruns fails, its chunk's other items keep their results.
    auto rs = pool.map_results([](int x) { return x == 3 ? stuck(x) : x * 2; }, std::vector<int>{0, 1, 2, 3, 4, 5},
                               MapOptions{.chunksize = 6, .timeout = 300ms});
    REQUIRE(rs.size() == 6);
    for (int i = 0; i < 6; ++i) {
        if (i == 3) {
            CHECK(!rs[3].ok());
            CHECK_THROWS_AS(rs[3].value(), TimeoutError);
        } else {
            CHECK(rs[static_cast<std::size_t>(i)].value() == i * 2);
        }
    }
}

TEST_CASE("map_results and imap_results keep every good result of a crash-prone function") {
    Fixture fx;
    Pool pool(2);
    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 0);
    auto crashy = [](int x) {
        if (x % 25 == 7) std::raise(SIGSEGV);
        if (x % 25 == 9) throw std::domain_error("nine");
        return x + 1;
    };
    auto rs = pool.map_results(crashy, xs, MapOptions{.chunksize = 10});
    int ok = 0, crashed = 0, thrown = 0;
    for (int i = 0; i < 100; ++i) {
        auto& r = rs[static_cast<std::size_t>(i)];
        if (r.ok()) {
            ++ok;
            CHECK(r.value() == i + 1);
        } else {
            try {
                std::rethrow_exception(r.error());
            } catch (const WorkerCrashed& e) {
                ++crashed;
                CHECK(i % 25 == 7);
            } catch (const RemoteError& e) {
                ++thrown;
                CHECK(i % 25 == 9);
            }
        }
    }
    CHECK(ok == 92);
    CHECK(crashed == 4);
    CHECK(thrown == 4);
    int i = 0, good = 0;
    for (const Result<int>& r : pool.imap_results(crashy, xs, MapOptions{.chunksize = 7})) {
        if (r.ok()) {
            CHECK(r.value() == i + 1);
            ++good;
        }
        ++i;
    }
    CHECK(i == 100);
    CHECK(good == 92);
}

TEST_CASE("imap's next_for bounds each wait") {
    Fixture fx;
    Pool pool(1);
    auto results = pool.imap(held, std::vector<int>{4, 5}, 1);
    CHECK_THROWS_AS(results.next_for(50ms), TimeoutError);
    fx.gate.set();
    CHECK(results.next_for(bound) == std::optional<int>(4));
    CHECK(results.next_for(bound) == std::optional<int>(5));
    CHECK(results.next_for(bound) == std::nullopt);
}

TEST_CASE("join_for returns false while tasks run, true once they settled") {
    Fixture fx;
    Pool pool(1);
    auto f = pool.submit(held, 1);
    REQUIRE(fx.started.wait_for(bound));
    CHECK_THROWS_AS(pool.join_for(10ms), StateError); // not closed
    pool.close();
    CHECK(!pool.join_for(50ms));
    fx.gate.set();
    CHECK(pool.join_for(bound));
    CHECK(f.get() == 1);
}

TEST_CASE("spawn with a timeout kills the child, cancel kills it, destroying an unsettled Future terminates it") {
    auto slow = spawn(SpawnOptions{.timeout = 200ms}, [] {
        Event never;
        never.wait_for(test::bound);
        return 1;
    });
    CHECK_THROWS_AS(slow.get(), TimeoutError);
    Event started;
    auto f = spawn([&started] {
        started.set();
        Event never;
        never.wait_for(test::bound);
        return 2;
    });
    REQUIRE(started.wait_for(bound));
    CHECK(f.cancel());
    CHECK(f.cancelled());
    CHECK_THROWS_AS(f.get(), CancelledError);
    CHECK(!f.cancel());
    pid_t child = 0;
    {
        Event up;
        SharedValue<pid_t> pid(0);
        auto g = spawn([&] {
            pid.store(::getpid());
            up.set();
            Event never;
            never.wait_for(test::bound);
            return 3;
        });
        REQUIRE(up.wait_for(bound));
        child = pid.load();
        auto t0 = std::chrono::steady_clock::now();
        (void)t0;
    } // the destructor terminates the child instead of waiting for it
    CHECK(test::reaped(child));
    CHECK_THROWS_AS(spawn(SpawnOptions{.timeout = -1s}, [] { return 1; }), ValueError);
}
