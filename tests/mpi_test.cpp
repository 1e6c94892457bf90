// mpi_test — mproc::mpi::Environment and mpi::Pool, run by ctest under `mpirun -n 2` and `-n 3`.
//
// A small self-checking main rather than Catch2: every pool call is collective, so every rank must
// run the same cases in the same order, which a test framework's selection and filtering would not
// guarantee. Each case runs on every rank; after each one the ranks add up their failures, and rank 0
// prints "PASS <case>" or "FAIL: <case>", then "<N> passed, <M> failed". Every rank exits non-zero if
// any check failed on any rank. A watchdog ends a rank that spends over 60 s in one case (a hang in
// a collective call), which mpirun turns into the end of the job. With an argument, it runs one of
// the broken programs below instead.
#include <mproc/mproc.hpp>

// The component is opt-in: the umbrella header must not pull MPI in.
#if defined(MPI_VERSION) || defined(OMPI_MPI_H) || defined(MPICH_VERSION)
#error "<mproc/mproc.hpp> includes <mpi.h>: mproc::mpi must stay opt-in"
#endif

#include <mproc/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace mpi = mproc::mpi;
using namespace std::chrono_literals;

namespace {

// ------------------------------------------------------------------ harness

int g_rank = 0;
int g_size = 1;
int g_failures = 0; // this rank's, over all cases
const char* g_case = "";

void report(bool ok, const char* file, int line, const char* expr) {
    if (ok) return;
    ++g_failures;
    std::fprintf(stderr, "FAIL: rank %d, case %s, %s:%d: %s\n", g_rank, g_case, file, line, expr);
    std::fflush(stderr);
}
#define CHECK(...) report(static_cast<bool>(__VA_ARGS__), __FILE__, __LINE__, #__VA_ARGS__)

void on_alarm(int) {
    const char msg[] = "FAIL: watchdog: a case took over 60 s on this rank (a collective call out of step?)\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(124);
}

/// Every rank's value of x, as rank 0 sees them... and every other: true if all ranks hold the same.
bool same_on_all_ranks(long long x) {
    long long lo = 0, hi = 0;
    MPI_Allreduce(&x, &lo, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&x, &hi, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

bool same_on_all_ranks(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return same_on_all_ranks(static_cast<long long>(h >> 1)) && same_on_all_ranks(static_cast<long long>(s.size()));
}

std::vector<int> iota_vector(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}

// ------------------------------------------------------------------ functions the ranks run

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int rank_of_caller() { return g_rank; }

int fail_on_13_and_57(int x) {
    if (x == 13 || x == 57) throw std::runtime_error("bad " + std::to_string(x) + " on " + std::to_string(g_rank));
    return x;
}

// Fails wherever it runs on the last rank, so the lowest failing index is that rank's first item.
int fail_on_last_rank(int x) {
    if (g_rank == g_size - 1) throw std::invalid_argument("rank " + std::to_string(g_rank) + " refuses " + std::to_string(x));
    return x;
}

// Rank 1 is slow by a wide margin (20 ms an item, the others nearly nothing), so that the load
// balancing checks hold even on a loaded machine where the fast ranks lose the CPU for a while.
int slow_on_rank_1(int x) {
    if (g_rank == 1) std::this_thread::sleep_for(20ms);
    return x;
}

struct Point { // a plain aggregate: travels without any user code
    int x = 0;
    double y = 0;
    std::string label;
};

// ------------------------------------------------------------------ cases

void environment_reports_itself(mpi::Environment& env) {
    CHECK(env.owns_mpi());
    CHECK(env.rank() == g_rank);
    CHECK(env.size() == g_size);
    CHECK(env.thread_level() >= mpi::ThreadLevel::funneled);
    CHECK(!mpi::Environment::processor_name().empty());
}

void map_many_items_in_order(mpi::Pool& pool) {
    const auto in = iota_vector(10000);
    const auto out = pool.map(square, in);
    if (pool.is_root()) {
        CHECK(out.size() == in.size());
        bool ok = out.size() == in.size();
        for (std::size_t i = 0; ok && i < in.size(); ++i) ok = out[i] == in[i] * in[i];
        CHECK(ok);
    } else {
        CHECK(out.empty()); // results come back to rank 0 only
    }
    const auto& st = pool.last_map_stats();
    CHECK(st.items.size() == static_cast<std::size_t>(g_size));
    CHECK(std::accumulate(st.items.begin(), st.items.end(), std::size_t{0}) == in.size());
    CHECK(same_on_all_ranks(static_cast<long long>(st.items[0])));
}

void map_one_item(mpi::Pool& pool) {
    const auto out = pool.map(square, std::vector<int>{7});
    if (pool.is_root()) CHECK(out == std::vector<int>{49});
}

void map_empty_input(mpi::Pool& pool) {
    const auto out = pool.map(square, std::vector<int>{});
    CHECK(out.empty());
    const auto& st = pool.last_map_stats();
    CHECK(std::accumulate(st.chunks.begin(), st.chunks.end(), std::size_t{0}) == 0);
}

void map_inputs_read_on_root_only(mpi::Pool& pool) {
    // The other ranks pass an empty range of the same element type: only rank 0's inputs count.
    const auto in = pool.is_root() ? iota_vector(500) : std::vector<int>{};
    const auto out = pool.map(square, in, 7);
    if (pool.is_root()) {
        CHECK(out.size() == 500);
        CHECK(out[499] == 499 * 499);
    }
}

void map_explicit_chunksizes(mpi::Pool& pool) {
    const auto in = iota_vector(100);
    for (std::size_t cs : {std::size_t{1}, std::size_t{7}, std::size_t{1000}}) {
        const auto out = pool.map(square, in, cs);
        if (pool.is_root()) {
            CHECK(out.size() == 100);
            CHECK(out[37] == 37 * 37);
        }
        const auto& st = pool.last_map_stats();
        const std::size_t chunks = std::accumulate(st.chunks.begin(), st.chunks.end(), std::size_t{0});
        CHECK(chunks == (100 + cs - 1) / cs);
    }
}

void map_strings_vectors_and_aggregates(mpi::Pool& pool) {
    std::vector<std::string> words{"alpha", "", "gamma", std::string(100000, 'x'), "epsilon"};
    auto reversed = pool.map([](const std::string& s) { return std::string(s.rbegin(), s.rend()); }, words, 1);
    auto lengths = pool.map([](const std::string& s) { return std::vector<int>(s.size() % 5, static_cast<int>(s.size())); }, words);
    std::vector<Point> points{{1, 0.5, "a"}, {2, 1.5, "bb"}, {3, 2.5, "ccc"}};
    auto moved = pool.map([](const Point& p) { return Point{p.x * 10, p.y * 2, p.label + "!"}; }, points, 1);
    if (pool.is_root()) {
        CHECK(reversed == std::vector<std::string>{"ahpla", "", "ammag", std::string(100000, 'x'), "nolispe"});
        CHECK(lengths.size() == 5);
        CHECK(lengths[0] == std::vector<int>{});
        CHECK(lengths[2] == std::vector<int>{});
        CHECK(lengths[4] == std::vector<int>{7, 7});
        CHECK(moved.size() == 3);
        CHECK(moved[2].x == 30);
        CHECK(moved[2].y == 5.0);
        CHECK(moved[2].label == "ccc!");
    }
}

void map_with_capturing_lambda(mpi::Pool& pool) {
    // Nothing of the function travels: every rank calls its own copy, so it may own data.
    const std::string prefix = "item-";
    const auto out = pool.map([prefix](int x) { return prefix + std::to_string(x); }, iota_vector(50), 3);
    if (pool.is_root()) {
        CHECK(out.size() == 50);
        CHECK(out[42] == "item-42");
    }
}

void starmap_pairs_and_tuples(mpi::Pool& pool) {
    std::vector<std::pair<int, int>> pairs;
    for (int i = 0; i < 200; ++i) pairs.emplace_back(i, 2 * i);
    const auto sums = pool.starmap(add, pairs);
    std::vector<std::tuple<std::string, int, double>> triples{{"a", 2, 0.5}, {"bc", 3, 1.0}};
    const auto joined = pool.starmap([](const std::string& s, int n, double d) {
        std::string out;
        for (int i = 0; i < n; ++i) out += s;
        return out + std::to_string(static_cast<int>(d * 10));
    }, triples);
    if (pool.is_root()) {
        CHECK(sums.size() == 200);
        CHECK(sums[150] == 450);
        CHECK(joined == std::vector<std::string>{"aa5", "bcbcbc10"});
    }
}

void apply_runs_elsewhere_and_returns(mpi::Pool& pool) {
    const int five = pool.apply(add, 2, 3);
    const int where = pool.apply(rank_of_caller);
    if (pool.is_root()) {
        CHECK(five == 5);
        CHECK(where == (g_size > 1 ? 1 : 0)); // on another rank when there is one
    } else {
        CHECK(five == 0); // a default-constructed value off the root
    }
    static int calls = 0;
    pool.apply([](int k) { calls += k; }, 4); // void
    const auto& st = pool.last_map_stats();
    CHECK(st.items[g_size > 1 ? 1 : 0] == 1);
    CHECK(calls == (g_rank == (g_size > 1 ? 1 : 0) ? 4 : 0));
}

void map_error_is_the_lowest_index_on_every_rank(mpi::Pool& pool) {
    const auto in = iota_vector(100);
    for (std::size_t cs : {std::size_t{0}, std::size_t{1}, std::size_t{10}}) {
        bool thrown = false;
        try {
            pool.map(fail_on_13_and_57, in, cs);
        } catch (const mpi::RemoteError& e) {
            thrown = true;
            CHECK(e.index() == 13);
            CHECK(e.type_name() == "std::runtime_error");
            CHECK(e.message() == "bad 13 on " + std::to_string(e.rank())); // the rank is the one that ran it
            CHECK(std::string(e.what()).find("on rank " + std::to_string(e.rank())) != std::string::npos);
            CHECK(std::string(e.what()).find("item 13") != std::string::npos);
            CHECK(e.rank() >= 0 && e.rank() < g_size);
            CHECK(!e.host().empty());
            CHECK(e.pid() > 0);
            CHECK(same_on_all_ranks(std::string(e.what()))); // every rank throws the same error
        }
        CHECK(thrown);
    }
    // Caught as the base type too; and the pool carries on.
    bool base = false;
    try {
        pool.map(fail_on_13_and_57, in);
    } catch (const mproc::RemoteError&) {
        base = true;
    }
    CHECK(base);
    const auto out = pool.map(square, in);
    if (pool.is_root()) CHECK(out.size() == 100 && out[99] == 99 * 99);
}

void map_error_names_the_failing_rank(mpi::Pool& pool) {
    bool thrown = false;
    try {
        pool.map(fail_on_last_rank, iota_vector(60), 1);
    } catch (const mpi::RemoteError& e) {
        thrown = true;
        CHECK(e.rank() == g_size - 1);
        CHECK(e.type_name() == "std::invalid_argument");
        CHECK(std::string(e.what()).find("rank " + std::to_string(g_size - 1)) != std::string::npos);
        CHECK(same_on_all_ranks(static_cast<long long>(e.index())));
    }
    CHECK(thrown);
}

void apply_error_on_every_rank(mpi::Pool& pool) {
    bool thrown = false;
    try {
        pool.apply([](int x) -> int { throw std::out_of_range("no " + std::to_string(x)); }, 9);
    } catch (const mpi::RemoteError& e) {
        thrown = true;
        CHECK(e.message() == "no 9");
        CHECK(e.rank() == (g_size > 1 ? 1 : 0));
        CHECK(std::string(e.what()).find("mpi::Pool::apply") != std::string::npos);
    }
    CHECK(thrown);
}

void results_on_all_ranks(mpi::Environment&) {
    mpi::Pool all(mpi::PoolOptions{.results = mpi::ResultsOn::all_ranks});
    const auto in = iota_vector(1000);
    const auto out = all.map(square, in);
    CHECK(out.size() == 1000);
    CHECK(out[999] == 999 * 999);
    CHECK(all.apply(add, 20, 22) == 42);
    const auto words = all.map([](int x) { return std::to_string(x); }, iota_vector(30));
    CHECK(words.size() == 30 && words[29] == "29");
    bool thrown = false;
    try {
        all.map(fail_on_13_and_57, in);
    } catch (const mpi::RemoteError& e) {
        thrown = e.index() == 13;
    }
    CHECK(thrown);
    // imap yields the same sequence on every rank.
    std::vector<int> seen;
    for (int r : all.imap(square, in)) seen.push_back(r);
    CHECK(seen.size() == 1000);
    CHECK(seen[500] == 250000);
    // ... errors included, in the same place.
    std::vector<long long> trace;
    auto lazy = all.imap(fail_on_13_and_57, in, 5);
    for (auto it = lazy.begin(); it != lazy.end(); ++it) {
        try {
            trace.push_back(*it);
        } catch (const mpi::RemoteError& e) {
            trace.push_back(-static_cast<long long>(e.index()));
        }
    }
    CHECK(trace.size() == 1000 - 2 * 4); // two chunks of 5 yield their error once each
    CHECK(std::find(trace.begin(), trace.end(), -13) != trace.end());
    CHECK(same_on_all_ranks(static_cast<long long>(std::accumulate(trace.begin(), trace.end(), 0LL))));
}

void imap_in_order(mpi::Pool& pool) {
    const auto in = iota_vector(3000);
    std::vector<int> seen;
    for (int r : pool.imap(square, in)) seen.push_back(r);
    if (pool.is_root()) {
        CHECK(seen.size() == 3000);
        bool ok = seen.size() == 3000;
        for (std::size_t i = 0; ok && i < seen.size(); ++i) ok = seen[i] == static_cast<int>(i * i);
        CHECK(ok);
    } else {
        CHECK(seen.empty()); // the other ranks served chunks
    }
    const auto& st = pool.last_map_stats();
    CHECK(std::accumulate(st.items.begin(), st.items.end(), std::size_t{0}) == 3000);
}

void imap_unordered_has_every_result(mpi::Pool& pool) {
    const auto in = iota_vector(777);
    std::vector<int> seen;
    for (int r : pool.imap_unordered(square, in, 10)) seen.push_back(r);
    if (pool.is_root()) {
        std::sort(seen.begin(), seen.end());
        std::vector<int> expected;
        for (int x : in) expected.push_back(x * x);
        CHECK(seen == expected);
    }
}

void imap_of_a_lazy_range(mpi::Pool& pool) {
    // Not sized, never materialised; read by rank 0 as the loop advances.
    auto evens = std::views::iota(0, 2000) | std::views::filter([](int x) { return x % 2 == 0; });
    long long sum = 0;
    std::size_t count = 0;
    for (int r : pool.imap(square, evens)) {
        sum += r;
        ++count;
    }
    if (pool.is_root()) {
        long long expected = 0;
        for (int x = 0; x < 2000; x += 2) expected += static_cast<long long>(x) * x;
        CHECK(count == 1000);
        CHECK(sum == expected);
    }
}

void imap_left_early_keeps_ranks_in_step(mpi::Pool& pool) {
    const auto in = iota_vector(100000);
    int taken = 0;
    for (int r : pool.imap(square, in)) {
        (void)r;
        if (++taken == 10) break; // rank 0 leaves early; the others are told when it does
    }
    if (pool.is_root()) CHECK(taken == 10);
    // A range destroyed without being iterated ends the call as well.
    { auto unused = pool.imap(square, in); }
    const auto out = pool.map(square, std::vector<int>{3, 4});
    if (pool.is_root()) CHECK(out == (std::vector<int>{9, 16}));
}

void imap_error_yields_once_in_place(mpi::Pool& pool) {
    const auto in = iota_vector(100);
    std::vector<int> seen;
    int errors = 0;
    auto lazy = pool.imap(fail_on_13_and_57, in, 1);
    for (auto it = lazy.begin(); it != lazy.end(); ++it) {
        try {
            seen.push_back(*it);
        } catch (const mpi::RemoteError& e) {
            ++errors;
            CHECK(e.index() == 13 || e.index() == 57);
            CHECK(std::string(e.what()).find("mpi::Pool::imap") != std::string::npos);
        }
    }
    if (pool.is_root()) {
        CHECK(errors == 2);
        CHECK(seen.size() == 98);
    }
}

void slow_rank_gets_fewer_chunks(mpi::Pool& pool) {
    if (g_size < 2) return;
    const auto in = iota_vector(200);
    for (std::size_t cs : {std::size_t{1}, std::size_t{0}}) {
        const auto out = pool.map(slow_on_rank_1, in, cs);
        if (pool.is_root()) CHECK(out == in);
        const auto& st = pool.last_map_stats();
        if (pool.is_root()) {
            std::string chunks, items;
            for (auto c : st.chunks) chunks += " " + std::to_string(c);
            for (auto c : st.items) items += " " + std::to_string(c);
            std::printf("  chunksize %zu: chunks per rank%s; items per rank%s; %.3f s\n", cs, chunks.c_str(), items.c_str(), st.seconds);
            std::fflush(stdout);
        }
        // The slow rank computes less than the others do on average. With one item per chunk it
        // holds one chunk until its first answer and two at most after, so it takes fewer chunks than
        // rank 0, which computes one whenever it has nothing to hand out.
        const std::size_t others = in.size() - st.items[1];
        CHECK(st.items[1] * static_cast<std::size_t>(g_size - 1) < others);
        if (cs == 1) CHECK(st.chunks[1] < st.chunks[0]);
    }
}

void root_only_coordinates(mpi::Environment&) {
    mpi::Pool pool(mpi::PoolOptions{.root_computes = false});
    const auto out = pool.map(square, iota_vector(1000));
    if (pool.is_root()) CHECK(out.size() == 1000 && out[10] == 100);
    const auto& st = pool.last_map_stats();
    if (g_size > 1)
        CHECK(st.items[0] == 0);
    else
        CHECK(st.items[0] == 1000); // alone, rank 0 computes regardless
    std::size_t n = 0;
    for (int r : pool.imap(square, iota_vector(100))) n += r >= 0;
    if (pool.is_root()) CHECK(n == 100);
}

void user_traffic_never_mixes_with_the_pool(mpi::Pool& pool) {
    if (g_size < 2) return;
    // A wildcard receive posted on MPI_COMM_WORLD during a map must not catch a pool message.
    int got = -1;
    MPI_Request req = MPI_REQUEST_NULL;
    if (g_rank == 0) MPI_Irecv(&got, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &req);
    const auto out = pool.map(square, iota_vector(2000), 10);
    if (g_rank == 1) {
        int v = 4242;
        MPI_Send(&v, 1, MPI_INT, 0, 7, MPI_COMM_WORLD);
    }
    if (g_rank == 0) {
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        CHECK(got == 4242);
        CHECK(out.size() == 2000);
    }
}

void pool_over_a_sub_communicator(mpi::Environment&) {
    // Two pools side by side: even and odd world ranks, each with its own root.
    MPI_Comm half = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_rank, &half);
    {
        mpi::Pool pool(mpi::PoolOptions{.comm = half});
        const auto out = pool.map([](int x) { return x + g_rank % 2; }, iota_vector(100));
        if (pool.is_root()) {
            CHECK(out.size() == 100);
            CHECK(out[10] == 10 + g_rank % 2);
        }
        CHECK(pool.is_root() == (g_rank < 2));
    }
    MPI_Comm_free(&half);
}

void progress_counts_items_on_rank_0(mpi::Environment&) {
    // on_progress, as the fork-based Pool's: called on rank 0 only, as chunks come back (not only
    // at the end), with done never going back and the last call saying all items are done.
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    mpi::Pool pool(mpi::PoolOptions{.on_progress = [&](std::size_t done, std::size_t total) { calls.emplace_back(done, total); }});
    auto check_calls = [&](std::size_t done, std::size_t total) {
        if (!pool.is_root()) {
            CHECK(calls.empty());
            return;
        }
        CHECK(calls.size() > 1);
        CHECK(!calls.empty() && calls.back() == std::make_pair(done, total));
        bool ok = true;
        for (std::size_t i = 0; i < calls.size(); ++i) {
            ok = ok && calls[i].second == total && calls[i].first <= done;
            if (i > 0) ok = ok && calls[i].first >= calls[i - 1].first;
        }
        CHECK(ok);
    };
    const auto in = iota_vector(2000);
    const auto out = pool.map(square, in, 10);
    if (pool.is_root()) CHECK(out.size() == 2000);
    check_calls(2000, 2000);
    calls.clear();
    std::size_t n = 0;
    for (int r : pool.imap(square, in, 10)) n += r >= 0;
    check_calls(2000, 2000);
    calls.clear();
    auto evens = std::views::iota(0, 2000) | std::views::filter([](int x) { return x % 2 == 0; });
    for (int r : pool.imap_unordered(square, evens, 10)) n += r >= 0;
    check_calls(1000, 0); // an unsized range: the total is not known
    if (pool.is_root()) CHECK(n == 3000);
    calls.clear();
    pool.apply(add, 1, 2); // apply shows no progress, as the fork-based Pool's
    CHECK(calls.empty());

    // A callback that throws is reported and ignored: the call completes on every rank.
    mpi::Pool throwing(mpi::PoolOptions{.on_progress = [](std::size_t, std::size_t) { throw std::runtime_error("from on_progress"); }});
    const auto again = throwing.map(square, in, 1000);
    if (throwing.is_root()) CHECK(again.size() == 2000 && again[1999] == 1999 * 1999);
}

void barrier_returns_on_every_rank(mpi::Pool& pool) {
    // Rank 0 arrives late; no rank may leave before it arrived. The ranks share one host, so one
    // monotonic clock: comparing rank 0's arrival with each rank's departure needs no timing margin.
    if (g_rank == 0) std::this_thread::sleep_for(50ms); // a late arrival (simulated work)
    const std::int64_t arrived = std::chrono::steady_clock::now().time_since_epoch().count();
    pool.barrier();
    const std::int64_t left = std::chrono::steady_clock::now().time_since_epoch().count();
    std::int64_t root_arrived = arrived;
    MPI_Bcast(&root_arrived, 1, MPI_INT64_T, 0, pool.comm());
    CHECK(left >= root_arrived);
}

} // namespace

// What MPI and the pool do with a broken program, run as separate ctest tests that expect the job to
// end (not hang) with the message checked by their PASS_REGULAR_EXPRESSION:
//   --out-of-step  rank 1 makes a map that rank 0 does not: the pool aborts the job, saying so;
//   --rank-dies    rank 1 is killed by SIGKILL in the middle of a map: mpirun ends the whole job.
int broken_program(const std::string& mode) {
    ::alarm(60);
    {
        mpi::Pool pool;
        const auto in = iota_vector(100);
        if (mode == "--out-of-step") {
            if (g_rank == 1) pool.map(square, in);
            pool.map(square, in); // rank 0 is done after this one, and destroys its pool
        } else if (mode == "--rank-dies") {
            pool.map([](int x) {
                if (g_rank == 1) std::raise(SIGKILL);
                return x;
            }, in, 1);
        }
    }
    // Only if the job was not ended does every rank get past this barrier.
    MPI_Barrier(MPI_COMM_WORLD);
    std::printf("FAIL: rank %d: %s did not end the job\n", g_rank, mode.c_str());
    return 1;
}

int main(int argc, char** argv) {
    mpi::Environment env(argc, argv);
    g_rank = env.rank();
    g_size = env.size();
    std::signal(SIGALRM, on_alarm);
    if (argc > 1) return broken_program(argv[1]);

    mpi::Pool pool;
    struct Case {
        const char* name;
        std::function<void()> body;
    };
    const std::vector<Case> cases{
        {"Environment reports itself", [&] { environment_reports_itself(env); }},
        {"map: many items, in order", [&] { map_many_items_in_order(pool); }},
        {"map: one item", [&] { map_one_item(pool); }},
        {"map: empty input", [&] { map_empty_input(pool); }},
        {"map: inputs are read on rank 0 only", [&] { map_inputs_read_on_root_only(pool); }},
        {"map: explicit chunksizes", [&] { map_explicit_chunksizes(pool); }},
        {"map: strings, vectors, aggregates", [&] { map_strings_vectors_and_aggregates(pool); }},
        {"map: capturing lambda", [&] { map_with_capturing_lambda(pool); }},
        {"starmap: pairs and tuples", [&] { starmap_pairs_and_tuples(pool); }},
        {"apply: runs on another rank, returns", [&] { apply_runs_elsewhere_and_returns(pool); }},
        {"map: error of the lowest index, on every rank", [&] { map_error_is_the_lowest_index_on_every_rank(pool); }},
        {"map: error names the failing rank", [&] { map_error_names_the_failing_rank(pool); }},
        {"apply: error on every rank", [&] { apply_error_on_every_rank(pool); }},
        {"ResultsOn::all_ranks", [&] { results_on_all_ranks(env); }},
        {"imap: in order", [&] { imap_in_order(pool); }},
        {"imap_unordered: every result", [&] { imap_unordered_has_every_result(pool); }},
        {"imap: lazy, unsized range", [&] { imap_of_a_lazy_range(pool); }},
        {"imap: left early, ranks stay in step", [&] { imap_left_early_keeps_ranks_in_step(pool); }},
        {"imap: a failed chunk yields its error once", [&] { imap_error_yields_once_in_place(pool); }},
        {"load balancing: a slow rank gets fewer chunks", [&] { slow_rank_gets_fewer_chunks(pool); }},
        {"root_computes = false", [&] { root_only_coordinates(env); }},
        {"user MPI traffic never mixes with the pool's", [&] { user_traffic_never_mixes_with_the_pool(pool); }},
        {"pools over sub-communicators", [&] { pool_over_a_sub_communicator(env); }},
        {"progress: on_progress counts items on rank 0", [&] { progress_counts_items_on_rank_0(env); }},
        {"barrier", [&] { barrier_returns_on_every_rank(pool); }},
    };

    int passed = 0, failed = 0;
    for (const Case& c : cases) {
        g_case = c.name;
        const int before = g_failures;
        ::alarm(60);
        try {
            c.body();
        } catch (const std::exception& e) {
            report(false, __FILE__, __LINE__, (std::string("unexpected exception: ") + e.what()).c_str());
        }
        ::alarm(0);
        int mine = g_failures - before, all = 0;
        MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        (all == 0 ? passed : failed) += 1;
        if (g_rank == 0) {
            std::printf(all == 0 ? "PASS %s\n" : "FAIL: %s\n", c.name);
            std::fflush(stdout);
        }
    }
    if (g_rank == 0) {
        std::printf("%d passed, %d failed (%d ranks)\n", passed, failed, g_size);
        std::fflush(stdout);
    }
    return failed == 0 ? 0 : 1;
}
