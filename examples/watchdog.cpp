// watchdog — a daemon process: it prints a heartbeat in the background while the main process
// computes, and is stopped when the main process is done with it (a daemon Process is terminated,
// not waited for). Python: Process(daemon=True).
//
//   ./watchdog [--quick]      (--quick: a heartbeat every 0.05 s, 0.3 s of computing)
#include <chrono>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

bool is_prime(long n) {
    if (n < 2) return false;
    for (long d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        mproc::Event first_beat;
        mproc::SharedValue<int> beats(0);

        mproc::Process watchdog(mproc::ProcessOptions{.name = "watchdog", .daemon = true}, [&] {
            for (int n = 1;; ++n) {
                demo::say("[watchdog] heartbeat %d\n", n);
                beats.fetch_add(1);
                if (n == 1) first_beat.set();
                demo::pause(0.5);
            }
        });
        watchdog.start();
        demo::say("[main] started %s (pid %d, daemon)\n", watchdog.name().c_str(), static_cast<int>(watchdog.pid()));

        if (!first_beat.wait_for(std::chrono::seconds(10))) {
            demo::say("FAIL: no heartbeat within 10 s\n");
            return 1; // the daemon is terminated by ~Process
        }

        // CPU-bound work in the main process, in chunks, until its time is up.
        const double budget = demo::scaled(3.0);
        demo::say("[main] counting primes for %.1f s\n", budget);
        demo::Stopwatch clock;
        long next = 0, primes = 0;
        constexpr long chunk = 10000;
        while (clock.seconds() < budget) {
            for (long n = next; n < next + chunk; ++n) primes += is_prime(n);
            next += chunk;
        }
        demo::say("[main] %ld primes below %ld (%.2f s)\n", primes, next, clock.seconds());

        watchdog.terminate();
        if (!watchdog.join_for(std::chrono::seconds(10))) {
            demo::say("FAIL: the watchdog did not stop on SIGTERM\n");
            watchdog.kill();
            watchdog.join();
            return 1;
        }
        const int total = beats.load();
        demo::say("[main] watchdog stopped (exitcode %d); heartbeats: %d\n", *watchdog.exitcode(), total);
        if (total < 1) {
            demo::say("FAIL: no heartbeat was counted\n");
            return 1;
        }
        return 0;
    });
}
