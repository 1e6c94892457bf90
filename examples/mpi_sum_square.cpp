// mpi_sum_square — sum_square's CPU-bound work done serially on rank 0, then by every rank of an MPI
// job through mpi::Pool.map, timed.
//
// sum_square(n) adds i*i for every i < n, so item n costs n steps: the later items cost more, and the
// pool's dynamic chunks keep every rank busy to the end. Rank 0 runs the serial loop while the other
// ranks wait without spinning (Pool::barrier), then all ranks take part in the map. Both result lists
// must be equal; the speedup is reported, not checked (a loaded machine may show little). Only rank 0
// prints. Python: the "sum_square with and without multiprocessing" tutorial, over MPI ranks.
//
// The range is larger than the tutorial's range(10000), which is only 25-70 ms of work in C++ (a
// step costs ~0.5 ns, ~50 ns in Python): too little to show a speedup over the ranks' messages.
//
//   mpirun -n 4 ./mpi_sum_square [--quick]      (--quick: n = 0..29999, else 0..59999)
#include <cstdint>
#include <ranges>
#include <vector>

#include <mproc/mpi.hpp>

#include "demo_support.hpp"

namespace {

std::uint64_t sum_square(int number) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(number); ++i) {
        // The empty asm claims to change i, so the compiler cannot replace the loop by the closed form
        // (n-1)n(2n-1)/6 or vectorise it: item n really takes n steps, as it does in Python.
        asm volatile("" : "+r"(i));
        s += i * i;
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    mproc::mpi::Environment env(argc, argv);
    return demo::run(argc, argv, [] {
        const int count = demo::scale < 1.0 ? 30000 : 60000;
        const auto numbers = std::views::iota(0, count); // Python's range(count)
        mproc::mpi::Pool pool;

        // Serial, on rank 0 alone; the others wait in the barrier without taking a CPU from it.
        std::vector<std::uint64_t> serial;
        double serial_time = 0;
        if (pool.is_root()) {
            demo::Stopwatch clock;
            serial.reserve(static_cast<std::size_t>(count));
            for (int n : numbers) serial.push_back(sum_square(n));
            serial_time = clock.seconds();
            demo::say("Processing %d numbers took %.3f s serially on rank 0\n", count, serial_time);
        }
        pool.barrier();

        // Distributed: every rank makes the same call; rank 0 gets the results.
        demo::Stopwatch clock;
        const std::vector<std::uint64_t> distributed = pool.map(sum_square, numbers);
        const double distributed_time = clock.seconds();
        if (!pool.is_root()) return 0;

        const auto& stats = pool.last_map_stats();
        std::string spread;
        for (std::size_t r = 0; r < stats.items.size(); ++r)
            spread += (r ? ", " : "") + std::to_string(stats.chunks[r]) + "/" + std::to_string(stats.items[r]);
        demo::say("Processing %d numbers took %.3f s with mpi::Pool over %d ranks (chunks/items per rank: %s)\n", count,
                  distributed_time, pool.size(), spread.c_str());

        if (distributed != serial) {
            demo::say("FAIL: the results differ (%zu distributed, %zu serial)\n", distributed.size(), serial.size());
            return 1;
        }
        demo::say("results equal, speedup %.2fx on %d ranks\n", serial_time / distributed_time, pool.size());
        return 0;
    });
}
