// A program written against the installed mproc's mpi component, as a user would write it: linked
// with mproc::mpi only. Run under mpirun; rank 0 gets the squares and prints them.
#include <mproc/mpi.hpp>

#include <cstdio>
#include <vector>

int square(int x) { return x * x; }

int main(int argc, char** argv) {
    mproc::mpi::Environment env(argc, argv);
    mproc::mpi::Pool pool;
    const std::vector<int> squares = pool.map(square, std::vector<int>{1, 2, 3, 4, 5});
    if (!pool.is_root()) return 0; // the other ranks get an empty vector
    const bool ok = squares == std::vector<int>{1, 4, 9, 16, 25};
    std::printf("mpi consumer on %d ranks: %s\n", pool.size(), ok ? "squares agree" : "FAIL: wrong squares");
    return ok ? 0 : 1;
}
