// mpi_square_map — mpi::Pool.map: square_map's map, across the ranks of an MPI job.
//
// Every rank runs main (SPMD, as MPI programs are) and makes the same pool call. Rank 0 hands the
// numbers out, every rank squares some, and rank 0 prints [1, 4, 9, 16, 25] whatever the number of
// ranks, after a line saying which rank squared how many. Only rank 0 prints.
// Python: Pool().map(square, [1, 2, 3, 4, 5]), with the pool made of MPI ranks.
//
//   mpirun -n 3 ./mpi_square_map                         one machine
//   mpirun -n 8 --hostfile hosts ./mpi_square_map        several machines (see docs/mpi.md)
//   srun -n 8 ./mpi_square_map                           under Slurm
//   (--quick is accepted and changes nothing: nothing is simulated)
#include <string>
#include <vector>

#include <mproc/mpi.hpp>

#include "demo_support.hpp"

namespace {

// The same function on every rank: nothing of it travels, each rank calls its own copy.
int square(int x) { return x * x; }

std::string as_list(const std::vector<int>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
    return out + "]";
}

} // namespace

int main(int argc, char** argv) {
    // MPI from here to the end of main, around everything else (so an error is reported by
    // demo::run, then MPI is finalised normally on every rank).
    mproc::mpi::Environment env(argc, argv);
    return demo::run(argc, argv, [] {
        const std::vector<int> numbers{1, 2, 3, 4, 5};
        const std::vector<int> expected{1, 4, 9, 16, 25};

        mproc::mpi::Pool pool; // every rank of MPI_COMM_WORLD
        // Collective: every rank calls map with the same function. Rank 0's numbers are the ones
        // used; the results come back to rank 0 in input order (the other ranks get an empty vector).
        const std::vector<int> result = pool.map(square, numbers, 1);
        if (!pool.is_root()) return 0;

        const auto& stats = pool.last_map_stats();
        std::string spread;
        for (std::size_t r = 0; r < stats.items.size(); ++r)
            spread += (r ? ", " : "") + std::string("rank ") + std::to_string(r) + ": " + std::to_string(stats.items[r]);
        demo::say("%d ranks squared %s (items per rank: %s)\n", pool.size(), as_list(numbers).c_str(), spread.c_str());

        if (result != expected) {
            demo::say("FAIL: got %s, expected %s\n", as_list(result).c_str(), as_list(expected).c_str());
            return 1;
        }
        demo::say("%s\n", as_list(result).c_str());
        return 0;
    });
}
