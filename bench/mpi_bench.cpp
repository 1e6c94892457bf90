// mpi_bench — mpi::Pool::map beside the alternatives, on the same work, in the same run.
//
//   serial       rank 0 alone, a plain loop over the same function (through a function pointer, as
//                every pool calls it)
//   mpi::Pool    pool.map over every rank: dynamic guided chunks, rank 0 computing too
//   Scatterv     the hand-written MPI version: MPI_Scatterv of equal contiguous blocks, each rank
//                computes its block, MPI_Gatherv back to rank 0 (static: no load balancing)
//   local Pool   the fork-based mproc::Pool (a worker per core) on rank 0, in this same MPI run,
//                while the other ranks wait in a barrier that sleeps rather than spins: on one
//                machine it competes for the same cores as the ranks do, and none is left idle
// Workloads: `square` of 1M ints (next to no work per item: measures what moving items costs) and
// `sum_square` over n = 0..19999 (item n costs n steps: uneven, compute-bound).
//
// Timing is done on rank 0 by a self-timed loop, not Google Benchmark, because every rank must make
// the same collective calls in the same order: each case runs once to warm up, then --reps times
// (default 5), every rank starting together (MPI_Barrier), and the median is reported. Results are
// checked against the serial ones; a mismatch prints a FAIL: line and makes the exit code 1.
//
//   mpirun -n 2 build/bench/mproc_mpi_bench [--quick] [--reps K]
//   (--quick: 100k ints, n = 0..1999, 1 repetition: the ctest smoke run)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <stdlib.h>

#include <mproc/mpi.hpp>
#include <mproc/pool.hpp>

namespace {

namespace mpi = mproc::mpi;

int square(int x) { return x * x; }

std::uint64_t sum_square(int number) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(number); ++i) {
        asm volatile("" : "+r"(i)); // no closed form, no vectorisation: item n takes n steps
        s += i * i;
    }
    return s;
}

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<int>() {
    return MPI_INT;
}
template <>
MPI_Datatype mpi_type<std::uint64_t>() {
    return MPI_UINT64_T;
}

/// The hand-written baseline: equal contiguous blocks scattered from rank 0, computed, gathered.
template <class In, class Out>
std::vector<Out> scatter_gather(Out (*f)(In), const std::vector<In>& inputs, MPI_Comm comm) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int n = static_cast<int>(inputs.size());
    MPI_Bcast(&n, 1, MPI_INT, 0, comm);
    std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r) {
        counts[static_cast<std::size_t>(r)] = n / size + (r < n % size ? 1 : 0);
        displs[static_cast<std::size_t>(r)] = r == 0 ? 0 : displs[static_cast<std::size_t>(r - 1)] + counts[static_cast<std::size_t>(r - 1)];
    }
    const int mine = counts[static_cast<std::size_t>(rank)];
    std::vector<In> block(static_cast<std::size_t>(mine));
    MPI_Scatterv(rank == 0 ? inputs.data() : nullptr, counts.data(), displs.data(), mpi_type<In>(), block.data(), mine,
                 mpi_type<In>(), 0, comm);
    std::vector<Out> results(static_cast<std::size_t>(mine));
    for (int i = 0; i < mine; ++i) results[static_cast<std::size_t>(i)] = f(block[static_cast<std::size_t>(i)]);
    std::vector<Out> all(rank == 0 ? static_cast<std::size_t>(n) : 0);
    MPI_Gatherv(results.data(), mine, mpi_type<Out>(), all.data(), counts.data(), displs.data(), mpi_type<Out>(), 0, comm);
    return all;
}

struct Row {
    std::string workload;
    std::string method;
    double seconds = 0; // median
    std::size_t items = 0;
    std::string note;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

class Bench {
public:
    Bench(mpi::Pool& pool, int reps) : pool_(pool), reps_(reps) {}

    /// Runs `body` once to warm up and reps_ times timed, every rank together; `body` returns whether
    /// its result (on rank 0) is right. Returns the median seconds (meaningful on rank 0).
    double time(const std::string& what, const std::function<bool()>& body) {
        std::vector<double> times;
        for (int k = 0; k <= reps_; ++k) {
            pool_.barrier();                // sleeping: whoever finished first does not spin
            MPI_Barrier(MPI_COMM_WORLD);    // spinning, short: everyone starts together
            const double t0 = MPI_Wtime();
            const bool ok = body();
            const double t = MPI_Wtime() - t0;
            if (k > 0) times.push_back(t);
            if (pool_.is_root() && !ok) {
                std::printf("FAIL: %s: wrong results\n", what.c_str());
                failed_ = true;
            }
        }
        return median(times);
    }
    bool failed() const { return failed_; }

private:
    mpi::Pool& pool_;
    int reps_;
    bool failed_ = false;
};

template <class In, class Out>
void run_workload(const char* name, Out (*f)(In), const std::vector<In>& inputs, mpi::Pool& pool,
                  std::optional<mproc::Pool>& local, Bench& bench, std::vector<Row>& rows) {
    const bool root = pool.is_root();
    std::vector<Out> expected;
    Out (*volatile call)(In) = f; // the same indirect call every pool makes
    if (root)
        for (const In& x : inputs) expected.push_back(call(x));
    const std::size_t n = inputs.size();

    const double serial = bench.time(std::string(name) + " serial", [&] {
        if (!root) return true;
        std::vector<Out> out;
        out.reserve(n);
        for (const In& x : inputs) out.push_back(call(x));
        return out == expected;
    });
    rows.push_back({name, "serial (rank 0)", serial, n, ""});

    std::string chunks;
    const double pooled = bench.time(std::string(name) + " mpi::Pool", [&] {
        auto out = pool.map(f, inputs);
        return !root || out == expected;
    });
    for (auto c : pool.last_map_stats().chunks) chunks += (chunks.empty() ? "" : "/") + std::to_string(c);
    rows.push_back({name, "mpi::Pool::map", pooled, n, "chunks per rank " + chunks});

    const double scattered = bench.time(std::string(name) + " Scatterv", [&] {
        auto out = scatter_gather(f, inputs, MPI_COMM_WORLD);
        return !root || out == expected;
    });
    rows.push_back({name, "MPI_Scatterv/Gatherv", scattered, n, "equal blocks"});

    const double forked = bench.time(std::string(name) + " local Pool", [&] {
        if (!root) return true;
        auto out = local->map(f, inputs);
        return out == expected;
    });
    rows.push_back({name, "local mproc::Pool", forked, n,
                    root ? std::to_string(local->processes()) + " workers forked by rank 0" : std::string()});
}

/// The fork-based Pool on rank 0, one worker per core of the machine. Open MPI allows fork() in an
/// MPI process as long as the children make no MPI call, which Pool workers never do (they end with
/// _exit); its own threads (PMIx, event loop) hold nothing the workers need, so mproc's warning about
/// forking a threaded process is silenced. mpirun may have bound rank 0 to one core, and forked
/// workers would inherit that: they are forked with every core allowed, then rank 0's binding is
/// restored.
void start_local_pool(std::optional<mproc::Pool>& local) {
    ::setenv("MPROC_NO_FORK_WARNING", "1", 1);
    cpu_set_t bound, all;
    CPU_ZERO(&all);
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int c = 0; c < cores; ++c) CPU_SET(static_cast<std::size_t>(c), &all);
    const bool rebind = ::sched_getaffinity(0, sizeof bound, &bound) == 0 && ::sched_setaffinity(0, sizeof all, &all) == 0;
    local.emplace(cores);
    if (rebind) ::sched_setaffinity(0, sizeof bound, &bound);
}

} // namespace

int main(int argc, char** argv) {
    mpi::Environment env(argc, argv);
    bool quick = false;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
            reps = 1;
        } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = std::max(1, std::atoi(argv[++i]));
        } else {
            if (env.rank() == 0) std::fprintf(stderr, "usage: mpirun -n N %s [--quick] [--reps K]\n", argv[0]);
            return 2;
        }
    }

    int failed = 0;
    {
        mpi::Pool pool;
        std::optional<mproc::Pool> local;
        if (pool.is_root()) start_local_pool(local);

        std::vector<int> ints(quick ? 100'000 : 1'000'000);
        std::iota(ints.begin(), ints.end(), 0);
        std::vector<int> numbers(quick ? 2'000 : 20'000);
        std::iota(numbers.begin(), numbers.end(), 0);

        Bench bench(pool, reps);
        std::vector<Row> rows;
        run_workload("square, ints", square, ints, pool, local, bench, rows);
        run_workload("sum_square", sum_square, numbers, pool, local, bench, rows);

        if (pool.is_root()) {
            std::printf("\nmproc_mpi_bench: %d ranks on %s, median of %d runs after a warm-up\n\n", pool.size(),
                        mpi::Environment::processor_name().c_str(), reps);
            std::printf("%-13s %-22s %10s %14s %12s  %s\n", "workload", "method", "time (ms)", "items/s", "vs Scatterv", "");
            for (const Row& r : rows) {
                double baseline = 0;
                for (const Row& b : rows)
                    if (b.workload == r.workload && b.method == "MPI_Scatterv/Gatherv") baseline = b.seconds;
                std::printf("%-13s %-22s %10.2f %14.3g %11.2fx  %s\n", r.workload.c_str(), r.method.c_str(), r.seconds * 1e3,
                            r.seconds > 0 ? static_cast<double>(r.items) / r.seconds : 0.0,
                            r.seconds > 0 ? baseline / r.seconds : 0.0, r.note.c_str());
            }
            std::printf("\n(vs Scatterv: how many times faster than the hand-written MPI version; above 1 is faster)\n");
            std::fflush(stdout);
        }
        int mine = bench.failed() ? 1 : 0;
        MPI_Allreduce(&mine, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    }
    return failed;
}
