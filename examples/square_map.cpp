// square_map — Pool.map: a function applied to every item of a list by a pool of worker processes,
// the results coming back in the order of the inputs.
//
// square() prints which worker squared which number; the parent prints the list of results,
// [1, 4, 9, 16, 25], whichever worker did which item. Python: Pool().map(square, [1, 2, 3, 4, 5]).
//
//   ./square_map [--quick]      (nothing is simulated: --quick changes nothing)
#include <chrono>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

// Runs in a worker. A plain function: the pool copies the function pointer into the worker, and the
// worker (a fork of this program) finds the same code there.
int square(int x) {
    demo::say("worker %d squares %d\n", static_cast<int>(mproc::current_process().pid), x);
    return x * x;
}

std::string as_list(const std::vector<int>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
    return out + "]";
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        const std::vector<int> numbers{1, 2, 3, 4, 5};
        const std::vector<int> expected{1, 4, 9, 16, 25};

        mproc::Pool pool; // cpu_count() workers, as Python's Pool()
        demo::say("main %d: a pool of %d workers squares %s\n", static_cast<int>(mproc::current_process().pid),
                  pool.processes(), as_list(numbers).c_str());

        // map() itself would wait for good; the same call through its Future waits at most 60 s.
        auto squares = pool.map_async(square, numbers);
        if (!squares.wait_for(60s)) {
            demo::say("FAIL: the pool did not finish 5 squares within 60 s\n");
            pool.terminate();
            return 1;
        }
        const std::vector<int> result = squares.get();
        pool.close();
        pool.join();

        if (result != expected) {
            demo::say("FAIL: got %s, expected %s\n", as_list(result).c_str(), as_list(expected).c_str());
            return 1;
        }
        demo::say("%s\n", as_list(result).c_str());
        return 0;
    });
}
