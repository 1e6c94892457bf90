// factorial — big-number work spread over a pool of 5: the factorials of 0..11999, with
// Boost.Multiprecision's cpp_int, serially and then by Pool(5).map, timed.
//
// n! of 0..11999 runs up to about 145,000 bits, and each is computed from scratch, so the later
// items cost far more than the first. A cpp_int cannot travel through mproc's codec (it is neither
// trivially copyable nor one of the supported types), and sending 12000 big numbers back would
// measure copying rather than computing, so each task returns the bit length of n! (msb + 1): a
// small number that can only be right if the factorial was really computed. Serial and pooled
// results must agree; the speedup is reported, not checked (a loaded machine may show little).
// Python: Pool(5).map(math.factorial, range(...)) against a plain loop.
//
//   ./factorial [--quick]      (--quick: 0..2999)
#include <chrono>
#include <cstddef>
#include <ranges>
#include <vector>

#include <boost/multiprecision/cpp_int.hpp>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

constexpr int workers = 5;

// The number of bits of n!, computed the plain way. 0! = 1 has 1 bit.
std::size_t factorial_bits(int n) {
    boost::multiprecision::cpp_int f = 1;
    for (int i = 2; i <= n; ++i) f *= i;
    return boost::multiprecision::msb(f) + 1;
}

} // namespace

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        const int count = demo::scale < 1.0 ? 3000 : 12000;
        const auto numbers = std::views::iota(0, count);

        demo::Stopwatch serial_clock;
        std::vector<std::size_t> serial;
        serial.reserve(static_cast<std::size_t>(count));
        for (int n : numbers) serial.push_back(factorial_bits(n));
        const double serial_time = serial_clock.seconds();
        demo::say("serial: %d factorials in %.2f s (%d! has %zu bits)\n", count, serial_time, count - 1, serial.back());

        // As in Python, the pooled time includes starting and joining the pool.
        demo::Stopwatch pooled_clock;
        mproc::Pool pool(workers);
        auto future = pool.map_async(factorial_bits, numbers);
        // map() would wait for good; its Future waits a bounded time, generous however slow the
        // machine is, since the serial run has just measured it.
        const auto bound = std::chrono::duration<double>(60 + 4 * serial_time);
        if (!future.wait_for(bound)) {
            demo::say("FAIL: the pool did not finish %d factorials within %.0f s\n", count, bound.count());
            pool.terminate();
            return 1;
        }
        const std::vector<std::size_t> pooled = future.get();
        pool.close();
        pool.join();
        const double pooled_time = pooled_clock.seconds();
        demo::say("pooled: %d factorials in %.2f s on %d workers (%d CPUs)\n", count, pooled_time, workers,
                  mproc::cpu_count());

        if (pooled != serial) {
            std::size_t first = 0;
            while (first < serial.size() && first < pooled.size() && pooled[first] == serial[first]) ++first;
            demo::say("FAIL: the results differ (%zu pooled, %zu serial; first difference at n = %zu)\n", pooled.size(),
                      serial.size(), first);
            return 1;
        }
        demo::say("bit lengths of %d factorials agree, speedup %.2fx on %d workers\n", count, serial_time / pooled_time,
                  workers);
        return 0;
    });
}
