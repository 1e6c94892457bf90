// sum_square — the same CPU-bound work done serially and by a pool, timed.
//
// sum_square(n) adds i*i for every i < n, so item n costs n steps: the later items cost more. Over
// n = 0..59999, Pool() (one worker per CPU, default chunking) should beat the serial loop by up to
// the number of CPUs. Both result lists must be equal; the speedup is reported, not checked (a loaded
// machine may show little). As in Python, the pooled time includes starting and joining the pool.
// Python: the "sum_square with and without multiprocessing" tutorial, Pool().map(sum_square, range(10000)).
// A step costs ~0.5 ns here against ~50 ns in Python, so range(10000) is 25-70 ms of work in C++:
// barely more than starting a pool (~20 ms), and no speedup shows. The ranges below give the pool
// ~1 s (~0.25 s with --quick) of work on one CPU, as the tutorial's range does in Python.
//
//   ./sum_square [--quick]      (--quick: n = 0..29999)
#include <chrono>
#include <cstdint>
#include <ranges>
#include <vector>

#include <mproc/mproc.hpp>

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
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        const int count = demo::scale < 1.0 ? 30000 : 60000;
        const auto numbers = std::views::iota(0, count); // Python's range(count)

        // Pooled first, as in the tutorial.
        demo::Stopwatch pooled_clock;
        mproc::Pool pool; // cpu_count() workers
        const int workers = pool.processes();
        auto future = pool.map_async(sum_square, numbers);
        if (!future.wait_for(60s)) { // map() would wait for good; its Future waits at most 60 s
            demo::say("FAIL: the pool did not finish %d items within 60 s\n", count);
            pool.terminate();
            return 1;
        }
        const std::vector<std::uint64_t> pooled = future.get();
        pool.close();
        pool.join();
        const double pooled_time = pooled_clock.seconds();
        demo::say("Processing %d numbers took %.3f s using a pool of %d workers\n", count, pooled_time, workers);

        demo::Stopwatch serial_clock;
        std::vector<std::uint64_t> serial;
        serial.reserve(static_cast<std::size_t>(count));
        for (int n : numbers) serial.push_back(sum_square(n));
        const double serial_time = serial_clock.seconds();
        demo::say("Processing %d numbers took %.3f s using serial processing\n", count, serial_time);

        if (pooled != serial) {
            std::size_t first = 0;
            while (first < serial.size() && first < pooled.size() && pooled[first] == serial[first]) ++first;
            demo::say("FAIL: the results differ (%zu pooled, %zu serial; first difference at n = %zu)\n", pooled.size(),
                      serial.size(), first);
            return 1;
        }
        demo::say("results equal, speedup %.2fx on %d workers\n", serial_time / pooled_time, workers);
        return 0;
    });
}
