#include "support.hpp"

#include <mproc/pool.hpp>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <list>
#include <mutex>
#include <numeric>
#include <random>
#include <poll.h>
#include <ranges>
#include <set>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace mproc;
using test::bound;
using test::join_bounded;
using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
pid_t worker_pid(int) { return ::getpid(); }
std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}
int fail_at_30_and_70(int x) {
    if (x == 30 || x == 70) throw std::domain_error("bad item " + std::to_string(x));
    return x;
}
int crash_at_50_throw_at_80(int x) {
    if (x == 50) std::raise(SIGSEGV);
    if (x == 80) throw std::runtime_error("eighty");
    return x;
}
int die(int how) {
    switch (how) {
    case 0: std::raise(SIGSEGV); break;
    case 1: std::abort();
    case 2: std::exit(3);
    case 3: std::raise(SIGKILL); break;
    }
    return how;
}

int hang(int) { // a task that never finishes (simulated)
    std::this_thread::sleep_for(std::chrono::hours(1));
    return 0;
}

struct Point {
    double x, y;
};

std::size_t open_fds() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

bool pid_exits_within(pid_t pid, std::chrono::milliseconds limit) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return errno == ESRCH; // already gone
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(limit.count()));
    ::close(fd);
    return n == 1;
}

} // namespace

// ---------------------------------------------------------------- map, starmap, apply

TEST_CASE("map returns f(x) for every input, in order") {
    Pool pool(2);
    CHECK(pool.processes() == 2);
    CHECK(pool.map(square, std::vector<int>{1, 2, 3, 4, 5}) == std::vector<int>{1, 4, 9, 16, 25});
    CHECK(pool.map(square, std::vector<int>{}).empty());
    std::list<int> l{3, 1, 2};
    CHECK(pool.map(square, l) == std::vector<int>{9, 1, 4});
    CHECK(pool.map(square, std::views::iota(0, 1000)).at(999) == 999 * 999);
    std::vector<int> big(80000);
    std::iota(big.begin(), big.end(), -40000); // squares stay within int
    auto r = pool.map(square, big);
    bool all = true;
    for (std::size_t i = 0; i < big.size(); ++i) all = all && r[i] == big[i] * big[i];
    CHECK(all);
}

TEST_CASE("map carries any serializable arguments and results") {
    Pool pool(2);
    auto r = pool.map([](const std::string& s) { return Point{static_cast<double>(s.size()), 1.5}; },
                      std::vector<std::string>{"a", "bb", std::string(100000, 'c')});
    REQUIRE(r.size() == 3);
    CHECK(r[2].x == 100000.0);
    auto words = pool.starmap(repeat, std::vector<std::tuple<std::string, int>>{{"ab", 3}, {"x", 0}});
    CHECK(words == std::vector<std::string>{"ababab", ""});
}

TEST_CASE("an explicit chunksize is honoured: each chunk runs in one worker") {
    Pool pool(2);
    std::vector<int> xs(60);
    auto pids = pool.map(worker_pid, xs, 6);
    for (std::size_t c = 0; c < 60; c += 6)
        CHECK(std::all_of(pids.begin() + static_cast<long>(c), pids.begin() + static_cast<long>(c + 6), [&](pid_t p) { return p == pids[c]; }));
}

TEST_CASE("map_async, starmap, apply and apply_async") {
    Pool pool(3);
    auto fm = pool.map_async(square, std::vector<int>{2, 3});
    auto fs = pool.starmap_async([](int a, int b) { return a * b; }, std::vector<std::pair<int, int>>{{2, 5}, {3, 7}});
    std::vector<Future<long>> many;
    for (long i = 0; i < 50; ++i) many.push_back(pool.apply_async([](long a, long b) { return a * b; }, i, i));
    CHECK(fm.get() == std::vector<int>{4, 9});
    CHECK(fs.get() == std::vector<int>{10, 21});
    for (long i = 0; i < 50; ++i) CHECK(many[static_cast<std::size_t>(i)].get() == i * i);
    CHECK(pool.apply([](std::string s) { return s + "!"; }, std::string("hi")) == "hi!");
    auto fv = pool.apply_async([] {});
    CHECK(fv.wait_for(bound));
    fv.get();
    auto slow = pool.apply_async([] { return 1; });
    CHECK(slow.get() == 1);
    CHECK(slow.ready());
}

// ---------------------------------------------------------------- imap

TEST_CASE("imap yields in order and imap_unordered yields everything") {
    Pool pool(2);
    std::vector<int> xs(500);
    std::iota(xs.begin(), xs.end(), 0);
    std::vector<int> in_order;
    for (int v : pool.imap(square, xs)) in_order.push_back(v);
    CHECK(in_order == pool.map(square, xs));
    std::multiset<int> any;
    for (int v : pool.imap_unordered(square, xs, 7)) any.insert(v);
    CHECK(any == std::multiset<int>(in_order.begin(), in_order.end()));
}

TEST_CASE("imap keeps a temporary input alive for the whole loop") {
    Pool pool(2);
    int sum = 0;
    for (int v : pool.imap(square, std::vector<int>{1, 2, 3, 4, 5})) sum += v;
    CHECK(sum == 55);
}

TEST_CASE("imap is lazy: a huge input is not materialised and leaving early is cheap") {
    Pool pool(2);
    long pulled = 0;
    auto counted = std::views::iota(0L, 10'000'000L) | std::views::transform([&pulled](long x) {
                       ++pulled;
                       return x;
                   });
    long sum = 0;
    int taken = 0;
    for (long v : pool.imap([](long x) { return x + 1; }, counted)) {
        sum += v;
        if (++taken == 1000) break;
    }
    CHECK(sum == 1000L * 1001 / 2);
    CHECK(pulled < 1'000'000); // bounded chunks in flight, not ten million
    CHECK(pool.apply(square, 4) == 16); // the pool is fine after leaving the loop early
}

TEST_CASE("imap raises a failed chunk's error in its place and goes on") {
    Pool pool(2);
    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 0);
    std::vector<int> got;
    int errors = 0;
    auto results = pool.imap(fail_at_30_and_70, xs, 1);
    for (auto it = results.begin(); it != results.end(); ++it) {
        try {
            got.push_back(*it);
        } catch (const RemoteError& e) {
            ++errors;
            CHECK_THAT(e.what(), Catch::StartsWith("bad item"));
        }
    }
    CHECK(errors == 2);
    CHECK(got.size() == 98);
}

// ---------------------------------------------------------------- failure isolation

TEST_CASE("a task that throws fails alone with RemoteError: the pool carries on") {
    Pool pool(2);
    auto f = pool.apply_async([](int x) -> int { throw std::invalid_argument("no " + std::to_string(x)); }, 7);
    try {
        f.get();
        FAIL("get() should throw");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "std::invalid_argument");
        CHECK(std::string(e.what()) == "no 7");
        CHECK(e.pid() > 0);
    }
    CHECK(pool.apply(square, 3) == 9);
}

TEST_CASE("a worker that dies mid-task fails that task with WorkerCrashed: the others complete") {
    Pool pool(2);
    const char* names[] = {"SIGSEGV", "SIGABRT", "exited with code 3", "SIGKILL"};
    for (int how = 0; how < 4; ++how) {
        auto before = pool.worker_pids();
        std::vector<Future<int>> others;
        for (int i = 0; i < 20; ++i) others.push_back(pool.apply_async(square, i));
        auto bad = pool.apply_async(die, how);
        try {
            bad.get();
            FAIL("get() should throw");
        } catch (const WorkerCrashed& e) {
            CHECK_THAT(e.what(), Catch::Contains(names[how]) && Catch::Contains("(apply)"));
            if (how == 2) CHECK(e.exit_code() == 3);
            else CHECK(e.signal() == (how == 0 ? SIGSEGV : how == 1 ? SIGABRT : SIGKILL));
        }
        for (int i = 0; i < 20; ++i) CHECK(others[static_cast<std::size_t>(i)].get() == i * i);
        CHECK(pool.apply(square, 5) == 25);
        CHECK(pool.worker_pids() != before); // the dead worker was replaced
    }
}

TEST_CASE("map waits for every chunk, then throws the lowest failing index's error") {
    Pool pool(2);
    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 0);
    try {
        pool.map(fail_at_30_and_70, xs, 1);
        FAIL("map should throw");
    } catch (const RemoteError& e) {
        CHECK(std::string(e.what()) == "bad item 30");
    }
    try {
        pool.map(crash_at_50_throw_at_80, xs, 3);
        FAIL("map should throw");
    } catch (const WorkerCrashed& e) {
        CHECK(e.signal() == SIGSEGV);
        CHECK_THAT(e.what(), Catch::Contains("map items 48..50"));
    }
    CHECK(pool.map(square, std::vector<int>{6}) == std::vector<int>{36});
}

TEST_CASE("task_timeout kills the overrunning worker, fails its task with TimeoutError, replaces it") {
    Pool pool(PoolOptions{.processes = 2, .task_timeout = 200ms});
    auto hung = pool.apply_async(hang, 0);
    std::vector<Future<int>> others;
    for (int i = 0; i < 10; ++i) others.push_back(pool.apply_async(square, i));
    try {
        hung.get();
        FAIL("get() should throw");
    } catch (const TimeoutError& e) {
        CHECK_THAT(e.what(), Catch::Contains("task_timeout") && Catch::Contains("killed"));
    }
    for (int i = 0; i < 10; ++i) CHECK(others[static_cast<std::size_t>(i)].get() == i * i);
    CHECK(pool.apply(square, 8) == 64);
}

TEST_CASE("maxtasksperchild recycles workers") {
    Pool pool(PoolOptions{.processes = 2, .maxtasksperchild = 2});
    std::set<pid_t> pids;
    for (int i = 0; i < 12; ++i) pids.insert(pool.apply(worker_pid, i));
    CHECK(pids.size() >= 6);
}

TEST_CASE("the initializer runs once in every worker, replacements included") {
    SharedValue<int> inits(0);
    {
        Pool pool(PoolOptions{.processes = 2, .initializer = [&inits] { inits.fetch_add(1); }});
        CHECK(pool.map(square, std::vector<int>{1, 2, 3}).size() == 3);
        CHECK_THROWS_AS(pool.apply(die, 3), WorkerCrashed);
        CHECK(pool.apply(square, 2) == 4);
    }
    CHECK(inits.load() == 3);
}

TEST_CASE("a failing initializer fails the tasks instead of respawning forever") {
    Pool pool(PoolOptions{.processes = 2, .initializer = [] { throw std::runtime_error("no database"); }});
    try {
        pool.apply(square, 1);
        FAIL("apply should throw");
    } catch (const RemoteError& e) {
        CHECK_THAT(e.what(), Catch::Contains("initializer failed") && Catch::Contains("no database"));
    }
    CHECK_THROWS_AS(pool.apply(square, 1), RemoteError);
}

// ---------------------------------------------------------------- lifecycle and misuse

TEST_CASE("pool misuse gets clear errors") {
    CHECK_THROWS_AS(Pool(0), ValueError);
    CHECK_THROWS_WITH(Pool(-2), Catch::Contains("at least 1"));
    CHECK_THROWS_AS(Pool(PoolOptions{.processes = 1, .task_timeout = -1s}), ValueError);
    Pool pool(1);
    CHECK_THROWS_AS(pool.join(), StateError);
    pool.close();
    CHECK_THROWS_AS(pool.apply(square, 1), StateError);
    CHECK_THROWS_WITH(pool.map(square, std::vector<int>{1}), Catch::Contains("closed"));
    pool.join();
}

TEST_CASE("the destructor finishes queued work: futures stay readable") {
    std::vector<Future<int>> fs;
    std::vector<pid_t> workers;
    {
        Pool pool(2);
        workers = pool.worker_pids();
        for (int i = 0; i < 30; ++i) fs.push_back(pool.apply_async(square, i));
    }
    for (int i = 0; i < 30; ++i) CHECK(fs[static_cast<std::size_t>(i)].get() == i * i);
    for (pid_t p : workers) CHECK(test::reaped(p));
    CHECK(active_children().empty());
}

TEST_CASE("terminate stops the workers at once and fails what was unsettled") {
    Pool pool(1);
    auto hung = pool.apply_async(hang, 0);
    auto queued = pool.apply_async(square, 2);
    pool.terminate();
    CHECK_THROWS_AS(hung.get(), StateError);
    CHECK_THROWS_AS(queued.get(), StateError);
    CHECK(active_children().empty());
}

TEST_CASE("a pool leaves no process or file descriptor behind") {
    auto fds_before = open_fds();
    {
        Pool pool(3);
        CHECK(pool.map(square, std::vector<int>(1000, 3)).back() == 9);
        CHECK_THROWS_AS(pool.apply(die, 0), WorkerCrashed);
    }
    CHECK(open_fds() == fds_before);
    CHECK(active_children().empty());
}

TEST_CASE("the parent's death takes the workers with it: Ctrl-C stops the parent alone") {
    for (int sig : {SIGKILL, SIGINT}) {
        SharedArray<pid_t> pids(2, 0);
        Event ready, never;
        Process owner([&] {
            Pool pool(2);
            auto p = pool.worker_pids();
            std::copy(p.begin(), p.end(), pids.begin());
            ready.set();
            never.wait();
        });
        owner.start();
        REQUIRE(ready.wait_for(bound));
        // Ctrl-C reaches the whole foreground process group: the workers ignore it.
        if (sig == SIGINT)
            for (pid_t w : pids) ::kill(w, SIGINT);
        ::kill(owner.pid(), sig);
        join_bounded(owner);
        CHECK(owner.exitcode() == -sig);
        for (pid_t w : pids) CHECK(pid_exits_within(w, std::chrono::duration_cast<std::chrono::milliseconds>(bound)));
    }
}

TEST_CASE("progress prints count, rate and ETA lines on a non-terminal stderr") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    Process child([&] {
        ::dup2(fds[1], STDERR_FILENO);
        ::close(fds[0]);
        Pool pool(PoolOptions{.processes = 2, .progress = true});
        pool.map(square, std::vector<int>(5000, 2));
    });
    child.start();
    ::close(fds[1]);
    join_bounded(child);
    std::string out;
    char buf[4096];
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    CHECK_THAT(out, Catch::Contains("map [") && Catch::Contains("5000/5000 100%") && Catch::Contains("it/s"));
    CHECK(out.find('\r') == std::string::npos); // plain lines, no in-place redraw
}

// ---------------------------------------------------------------- the engine (pool engine issue)

namespace {

pid_t g_test_pid = ::getpid(); // the test process: decoding anywhere else is a worker's

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

// Arguments whose decoding, in a worker, crashes it (a poison task) or throws.
template <int How>
struct Poison {
    int value = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(value);
        if constexpr (std::is_same_v<Archive, mproc::detail::codec::ReadArchive>) {
            if (::getpid() != g_test_pid) {
                if (How == 0) std::raise(SIGSEGV);
                throw std::invalid_argument("Poison: refuses to decode " + std::to_string(value));
            }
        }
    }
};
template <int How>
int poison_value(Poison<How> p) { return p.value; }

std::string echo(const std::string& s) { return s; }

// Shared counters the storm's tasks write (set before any pool is forked).
int* g_runs = nullptr;
pid_t* g_ran_by = nullptr;

long storm_item(long i) {
    std::atomic_ref<pid_t>(g_ran_by[i]).store(::getpid()); // first: a counted run always names its runner
    std::atomic_ref<int>(g_runs[i]).fetch_add(1);
    long s = 0;
    for (long k = 0; k < 30000; ++k) s += k ^ i; // some work, so that kills land mid-item
    return s >= 0 ? i * 3 + 1 : -1;
}

int segv_at_500(int x) {
    std::atomic_ref<int>(g_runs[x]).fetch_add(1);
    if (x == 500) std::raise(SIGSEGV);
    return x + 1;
}

// An input range whose reading throws at element 5.
struct ThrowingInput {
    struct iterator {
        using value_type = int;
        using difference_type = std::ptrdiff_t;
        int i = 0;
        int operator*() const {
            if (i == 5) throw std::out_of_range("input 5 cannot be read");
            return i;
        }
        iterator& operator++() {
            ++i;
            return *this;
        }
        void operator++(int) { ++i; }
        bool operator==(std::default_sentinel_t) const { return i == 10; }
    };
    iterator begin() const { return {}; }
    std::default_sentinel_t end() const { return {}; }
};

int forking_task(int x) {
    std::fflush(nullptr);
    ::fork(); // both copies return: the copy must leave the pool alone
    std::atomic_ref<pid_t>(g_ran_by[x]).store(::getpid());
    return x * 2;
}

} // namespace

TEST_CASE("arguments and results of any size complete with default options (no stall)") {
    Pool pool(2);
    // The observed stalls: 100 strings of 2 MB, 50 of 1.1 MB. Under a sanitizer, which makes every
    // copy of these megabytes many times slower, a fifth of them still overfills both rings.
    const int scale = sanitized ? 5 : 1;
    for (std::size_t size : {std::size_t{2} << 20, std::size_t{1100} << 10}) {
        std::vector<std::string> inputs;
        const int count = (size == (std::size_t{2} << 20) ? 100 : 50) / scale;
        for (int i = 0; i < count; ++i) inputs.push_back(std::string(size, static_cast<char>('a' + i % 26)));
        auto f = pool.map_async(echo, inputs, 1);
        REQUIRE(f.wait_for(bound));
        CHECK(f.get() == inputs);
    }
    // A mix: big arguments with small results, small arguments with big results, at once.
    std::vector<std::string> mixed = {std::string(3 << 20, 'x'), "y", std::string(5 << 20, 'z'), ""};
    std::vector<Future<std::string>> fs;
    for (int round = 0; round < 4; ++round)
        for (auto& s : mixed) fs.push_back(pool.apply_async(echo, s));
    for (std::size_t i = 0; i < fs.size(); ++i) {
        REQUIRE(fs[i].wait_for(bound));
        CHECK(fs[i].get() == mixed[i % mixed.size()]);
    }
}

TEST_CASE("a task whose decoding kills its worker fails alone: it does not poison the pool") {
    Pool pool(2);
    auto poisoned = pool.apply_async(poison_value<0>, Poison<0>{7});
    auto fine = pool.map_async(square, std::vector<int>{1, 2, 3, 4});
    REQUIRE(poisoned.wait_for(bound));
    try {
        poisoned.get();
        FAIL("a poison task returned");
    } catch (const WorkerCrashed& e) {
        CHECK(e.signal() == SIGSEGV);
        CHECK_THAT(e.what(), Catch::Contains("decoding its arguments") && Catch::Contains("SIGSEGV"));
    }
    REQUIRE(fine.wait_for(bound));
    CHECK(fine.get() == std::vector<int>{1, 4, 9, 16});
    CHECK(pool.apply(square, 9) == 81);
}

TEST_CASE("an exception while decoding a task's arguments comes back as RemoteError with its type and message") {
    Pool pool(1);
    try {
        pool.apply(poison_value<1>, Poison<1>{3});
        FAIL("decoding did not throw");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "std::invalid_argument");
        CHECK_THAT(e.what(), Catch::Contains("refuses to decode 3"));
    }
    CHECK(pool.apply(square, 5) == 25);
}

TEST_CASE("a crash in the middle of a chunk fails that item only: the others keep their results, nothing runs twice") {
    SharedArray<int> runs(1000, 0);
    g_runs = runs.data();
    Pool pool(2);
    std::vector<int> xs(1000);
    std::iota(xs.begin(), xs.end(), 0);
    int crashed = 0, ok = 0;
    auto results = pool.imap(segv_at_500, xs, 100);
    int i = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) {
        try {
            int v = *it;
            CHECK(v == i + 1);
            ++ok;
        } catch (const WorkerCrashed& e) {
            ++crashed;
            CHECK(i == 500);
            CHECK(e.signal() == SIGSEGV);
            CHECK_THAT(e.what(), Catch::Contains("item 500,") && Catch::Contains("SIGSEGV"));
        }
    }
    CHECK(ok == 999);
    CHECK(crashed == 1);
    for (int k = 0; k < 1000; ++k) CHECK(runs[static_cast<std::size_t>(k)] == 1);
    // map: the crash is the error it throws, after every other item settled.
    CHECK_THROWS_AS(pool.map(segv_at_500, xs, 100), WorkerCrashed);
}

TEST_CASE("imap delivers the results before a failing input element, then its exception") {
    Pool pool(2);
    std::vector<int> got;
    bool raised = false;
    auto results = pool.imap(square, ThrowingInput{}, 2);
    try {
        for (int r : results) got.push_back(r);
    } catch (const std::out_of_range& e) {
        raised = true;
        CHECK_THAT(e.what(), Catch::Contains("input 5"));
    }
    CHECK(raised);
    CHECK(got == std::vector<int>{0, 1, 4, 9, 16});
}

TEST_CASE("a pool used from a forked child throws StateError there and leaves the parent's pool alone") {
    Pool pool(2);
    CHECK(pool.apply(square, 2) == 4);
    Process child([&pool] {
        try {
            pool.apply(square, 3);
        } catch (const StateError& e) {
            mproc::exit(std::string(e.what()).find("forked child") != std::string::npos ? 42 : 2);
        }
        mproc::exit(1);
    });
    child.start();
    join_bounded(child);
    CHECK(child.exitcode() == 42);
    std::vector<int> xs(200);
    std::iota(xs.begin(), xs.end(), 0);
    auto f = pool.map_async(square, xs, 1);
    REQUIRE(f.wait_for(bound));
    auto r = f.get();
    for (int i = 0; i < 200; ++i) CHECK(r[static_cast<std::size_t>(i)] == i * i);
}

TEST_CASE("a task that forks: the copy never takes tasks or reports, the pool settles") {
    SharedArray<pid_t> ran_by(64, 0);
    g_ran_by = ran_by.data();
    Pool pool(2);
    auto workers = pool.worker_pids();
    std::vector<int> xs(64);
    std::iota(xs.begin(), xs.end(), 0);
    auto f = pool.map_async(forking_task, xs, 4);
    REQUIRE(f.wait_for(bound));
    auto r = f.get();
    for (int i = 0; i < 64; ++i) CHECK(r[static_cast<std::size_t>(i)] == 2 * i);
    CHECK(pool.worker_pids() == workers); // no worker died, none was replaced
    CHECK(pool.apply(square, 6) == 36);
}

TEST_CASE("a pool may be used from several threads at once") {
    Pool pool(2);
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 20; ++round) {
                if (pool.apply(square, t * 100 + round) != (t * 100 + round) * (t * 100 + round)) ++wrong;
                std::vector<int> xs(50, t + round);
                for (int v : pool.map(square, xs)) wrong += v != (t + round) * (t + round);
                auto f = pool.apply_async(square, round);
                if (!f.wait_for(bound) || f.get() != round * round) ++wrong;
            }
        });
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
}

TEST_CASE("on_progress counts items as they complete, inside a chunk too") {
    Event reached; // set once progress reports 100 items while the chunk is still running
    static Event* gate = nullptr;
    gate = &reached;
    std::vector<std::pair<std::size_t, std::size_t>> seen;
    Pool pool(PoolOptions{.processes = 1, .on_progress = [&](std::size_t done, std::size_t total) {
                              seen.emplace_back(done, total);
                              if (done >= 100) reached.set();
                          }});
    std::vector<int> xs(200);
    std::iota(xs.begin(), xs.end(), 0);
    auto r = pool.map([](int x) { return x == 100 && !gate->wait_for(test::bound) ? -1 : x; }, xs, 200); // one chunk
    CHECK(r[100] == 100); // item 100 saw progress report 100 items done before its chunk ended
    REQUIRE(!seen.empty());
    CHECK(seen.back() == std::pair<std::size_t, std::size_t>{200, 200});
    for (std::size_t k = 1; k < seen.size(); ++k) CHECK(seen[k].first >= seen[k - 1].first);
}

TEST_CASE("kill storm: every item gets its result or a typed error naming its death, none lost, none run twice, no false blame") {
    const char* env = std::getenv("MPROC_STORM_KILLS");
    const int target = env ? std::atoi(env) : 150;
    constexpr long n_items = 3500;
    SharedArray<int> runs(n_items, 0);
    SharedArray<pid_t> ran_by(n_items, 0);
    g_runs = runs.data();
    g_ran_by = ran_by.data();
    Pool pool(4);
    std::atomic<bool> stop{false};
    std::atomic<int> kills{0};
    std::thread killer([&] {
        std::mt19937 rng(12345);
        while (!stop.load()) {
            auto pids = pool.worker_pids();
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500)); // a random moment, not synchronisation (simulated faults)
            if (::kill(pids[rng() % pids.size()], SIGKILL) == 0) ++kills;
        }
    });
    long results = 0, crashed = 0;
    auto check_item = [&](long i, auto&& get) {
        try {
            long v = get();
            CHECK(v == i * 3 + 1);
            CHECK(runs[static_cast<std::size_t>(i)] == 1);
            ++results;
        } catch (const WorkerCrashed& e) {
            ++crashed;
            int r = runs[static_cast<std::size_t>(i)];
            CHECK(r <= 1);
            pid_t runner = ran_by[static_cast<std::size_t>(i)];
            if (runner != 0) CHECK(runner == e.pid()); // blamed on the worker that ran it, never another
            CHECK(e.signal() == SIGKILL);
        }
    };
    int rounds = 0;
    while (kills.load() < target && rounds < 200) {
        ++rounds;
        std::fill(runs.begin(), runs.end(), 0);
        std::fill(ran_by.begin(), ran_by.end(), 0);
        std::vector<Future<long>> fs;
        for (long i = 0; i < 200; ++i) fs.push_back(pool.apply_async(storm_item, i));
        std::vector<long> a(300), b(1000), c(2000);
        std::iota(a.begin(), a.end(), 200L);
        std::iota(b.begin(), b.end(), 500L);
        std::iota(c.begin(), c.end(), 1500L);
        long at = 200;
        {
            auto r = pool.imap(storm_item, a, 1);
            for (auto it = r.begin(); it != r.end(); ++it, ++at) check_item(at, [&] { return *it; });
        }
        {
            auto r = pool.imap_unordered(storm_item, b, 10);
            std::size_t seen = 0;
            for (auto it = r.begin(); it != r.end(); ++it, ++seen) {
                try {
                    long v = *it;
                    CHECK(runs[static_cast<std::size_t>((v - 1) / 3)] == 1);
                    ++results;
                } catch (const WorkerCrashed& e) {
                    ++crashed;
                    CHECK(e.signal() == SIGKILL);
                }
            }
            CHECK(seen == b.size());
        }
        auto m = pool.map_async(storm_item, c);
        REQUIRE(m.wait_for(bound));
        try {
            auto r = m.get();
            for (std::size_t k = 0; k < c.size(); ++k) CHECK(r[k] == c[k] * 3 + 1);
        } catch (const WorkerCrashed& e) {
            CHECK(e.signal() == SIGKILL);
        }
        for (long i = 0; i < 200; ++i) {
            REQUIRE(fs[static_cast<std::size_t>(i)].wait_for(bound));
            check_item(i, [&] { return fs[static_cast<std::size_t>(i)].get(); });
        }
        for (long i = 0; i < n_items; ++i) CHECK(runs[static_cast<std::size_t>(i)] <= 1); // nothing ran twice
    }
    stop = true;
    killer.join();
    INFO("kills " << kills.load() << ", rounds " << rounds << ", results " << results << ", crashed " << crashed);
    CHECK(kills.load() >= target);
    CHECK(pool.apply(storm_item, 7L) == 22); // still usable
}

// ---------------------------------------------------------------- clean replacement workers (the zygote)

namespace {

int g_generation = 1; // changed by the parent after it built a pool: no worker of that pool may see it
int generation(int) { return g_generation; }
pid_t parent_of_worker(int) { return ::getppid(); }

// The virtual size of the calling process, in bytes.
long virtual_bytes(int) {
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    return pages * ::sysconf(_SC_PAGESIZE);
}

std::mutex g_resource; // a process-local lock that the workers' initializer takes (a logging or database client's)

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// True once the process behind `pidfd` has been reaped by its parent (a zombie still takes signal 0).
bool reaped_pidfd(int pidfd) { return ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == -1 && errno == ESRCH; }

} // namespace

TEST_CASE("every worker, replacements included, starts from the parent as it was when the pool was built") {
    g_generation = 1;
    Pool pool(1);
    g_generation = 2;
    std::vector<char> later(128 << 20, 1); // memory the parent allocated (and touched) after the pool
    const pid_t first = pool.apply(worker_pid, 0);
    CHECK(pool.apply(generation, 0) == 1);
    CHECK_THROWS_AS(pool.apply(die, 3), WorkerCrashed);
    CHECK(pool.apply(worker_pid, 0) != first); // a replacement runs now
    CHECK(pool.apply(generation, 0) == 1);     // a fork of the parent now would see 2
    CHECK(virtual_bytes(0) - pool.apply(virtual_bytes, 0) > (64 << 20)); // and would map `later` too
    const pid_t zygote = pool.apply(parent_of_worker, 0);
    CHECK(zygote != ::getpid()); // the workers are the zygote's children, not ours
    CHECK(!test::reaped(zygote)); // the zygote is ours
    ::kill(zygote, SIGINT);       // Ctrl-C is the parent's: the zygote ignores it, as the workers do
    CHECK_THROWS_AS(pool.apply(die, 3), WorkerCrashed);
    CHECK(pool.apply(generation, 0) == 1);
    CHECK(pool.apply(parent_of_worker, 0) == zygote);
    g_generation = 1;
    CHECK(later.back() == 1);
}

TEST_CASE("a lock held by one of the parent's threads while a worker is replaced does not deadlock the replacement") {
    Pool pool(PoolOptions{.processes = 1, .initializer = [] { std::lock_guard g(g_resource); }});
    CHECK(pool.apply(square, 2) == 4);
    std::mutex m;
    std::condition_variable cv;
    bool held = false, release = false;
    std::thread holder([&] {
        std::lock_guard hold(g_resource);
        {
            std::lock_guard g(m);
            held = true;
        }
        cv.notify_all();
        std::unique_lock lk(m);
        cv.wait_for(lk, bound, [&] { return release; });
    });
    {
        std::unique_lock lk(m);
        CHECK(cv.wait_for(lk, bound, [&] { return held; }));
    }
    // The worker dies while another thread holds g_resource: a fork of this process now would copy
    // the lock held, and the replacement's initializer would wait for it forever.
    CHECK_THROWS_AS(pool.apply(die, 3), WorkerCrashed);
    auto f = pool.apply_async(square, 5);
    const bool ran = f.wait_for(bound);
    {
        std::lock_guard g(m);
        release = true;
    }
    cv.notify_all();
    holder.join();
    CHECK(ran);
    if (ran)
        CHECK(f.get() == 25);
    else
        pool.terminate();
}

TEST_CASE("the zygote's death fails the pool cleanly: unsettled tasks get WorkerCrashed, later calls StateError") {
    const auto fds_before = open_fds();
    for (bool busy : {true, false}) {
        Pool pool(2);
        const pid_t zygote = pool.apply(parent_of_worker, 0);
        REQUIRE(zygote != ::getpid());
        const auto workers = pool.worker_pids();
        std::vector<Future<int>> unsettled;
        if (busy)
            for (int i = 0; i < 3; ++i) unsettled.push_back(pool.apply_async(hang, i)); // two run, one waits
        REQUIRE(::kill(zygote, SIGKILL) == 0);
        for (pid_t w : workers) CHECK(pid_exits_within(w, std::chrono::duration_cast<std::chrono::milliseconds>(bound)));
        if (!busy) unsettled.push_back(pool.apply_async(square, 3)); // taken before the pool knows
        for (auto& f : unsettled) {
            REQUIRE(f.wait_for(bound));
            try {
                f.get();
                FAIL("a task of a pool whose zygote died should fail");
            } catch (const WorkerCrashed& e) {
                CHECK(e.pid() == zygote);
                CHECK(e.signal() == SIGKILL);
                CHECK_THAT(e.what(), Catch::Contains("forks the pool's workers") && Catch::Contains("SIGKILL") &&
                                         Catch::Contains("create a new Pool"));
            }
        }
        if (busy) {
            CHECK_THROWS_AS(pool.apply_async(square, 1), StateError);
            CHECK_THROWS_WITH(pool.map(square, std::vector<int>{1, 2}), Catch::Contains("broken") && Catch::Contains("SIGKILL"));
        }
        if (busy) {
            pool.close();
            pool.join(); // returns: nothing is left to wait for
        }
        CHECK(test::reaped(zygote)); // the pool reaped it as it found it dead
    }
    CHECK(open_fds() == fds_before);
    CHECK(active_children().empty());
}

TEST_CASE("join and terminate stop the zygote: no process, zombie or file descriptor is left") {
    for (bool terminate : {false, true}) {
        const auto fds_before = open_fds();
        std::vector<int> pidfds; // opened on every process the pool ran, before it stops
        pid_t zygote = 0;
        {
            Pool pool(2);
            zygote = pool.apply(parent_of_worker, 0);
            for (pid_t w : pool.worker_pids()) pidfds.push_back(open_pidfd(w));
            CHECK_THROWS_AS(pool.apply(die, 0), WorkerCrashed);
            CHECK(pool.apply(square, 3) == 9);
            for (pid_t w : pool.worker_pids()) pidfds.push_back(open_pidfd(w)); // the replacement
            pidfds.push_back(open_pidfd(zygote));
            if (terminate) {
                auto hung = pool.apply_async(hang, 0);
                pool.terminate();
                CHECK_THROWS_AS(hung.get(), StateError);
            } else {
                auto last = pool.apply_async(square, 4);
                pool.close();
                pool.join();
                CHECK(last.get() == 16);
            }
            for (int fd : pidfds) {
                CHECK(fd >= 0);
                CHECK(reaped_pidfd(fd)); // every worker was reaped by the zygote, the zygote by us
            }
        }
        for (int fd : pidfds) ::close(fd);
        CHECK(open_fds() == fds_before);
        CHECK(active_children().empty());
        CHECK(test::reaped(zygote));
    }
}

TEST_CASE("the pool's task table finds, erases and walks tasks by id, and drops the slots that pile up behind a long task") {
    detail::TaskTable<int> table;
    for (std::uint64_t id = 1; id <= 1000; ++id) table.insert(id, std::make_shared<int>(static_cast<int>(id)));
    CHECK(table.size() == 1000);
    REQUIRE(table.find(500) != nullptr);
    CHECK(**table.find(500) == 500);
    CHECK(table.find(1001) == nullptr);
    for (std::uint64_t id = 2; id <= 1000; ++id) table.erase(id); // the first, long task stays
    CHECK(table.size() == 1);
    CHECK(table.find(500) == nullptr);
    table.erase(500); // erasing what is gone is a no-op
    CHECK(table.size() == 1);
    std::vector<std::uint64_t> walked;
    std::size_t slots = 0;
    table.for_each([&](std::uint64_t id, const std::shared_ptr<int>&) { walked.push_back(id); });
    CHECK(walked == std::vector<std::uint64_t>{1});
    table.insert(1001, std::make_shared<int>(1001)); // still sorted after the empty slots went
    REQUIRE(table.find(1001) != nullptr);
    REQUIRE(table.find(1) != nullptr);
    auto all = table.take();
    CHECK(table.empty());
    all.for_each([&](std::uint64_t, const std::shared_ptr<int>&) { ++slots; });
    CHECK(slots == 2);
}
