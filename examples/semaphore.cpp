// semaphore — a Semaphore(2) lets at most two of six workers into a section at once.
// Each worker counts itself in and out of an "inside" counter and records the largest value seen.
// Python: multiprocessing.Semaphore used as a context manager.
//
//   ./semaphore [--quick]      (--quick: each worker works 0.05 s instead of 0.5 s)
#include <algorithm>
#include <mutex>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        constexpr int workers = 6;
        constexpr int limit = 2;

        mproc::Semaphore slots(limit);
        mproc::SharedValue<int> inside(0);
        mproc::SharedValue<int> max_inside(0); // updated under its own get_lock()

        auto work = [&](int i) {
            std::lock_guard permit(slots); // Semaphore is Lockable: acquire here, release at scope exit
            const int now = inside.fetch_add(1) + 1;
            {
                std::lock_guard g(max_inside.get_lock());
                max_inside.value() = std::max(max_inside.value(), now);
            }
            demo::say("worker %d enters (inside: %d)\n", i, now);
            demo::pause(0.5);
            inside.fetch_sub(1);
            demo::say("worker %d leaves\n", i);
        };

        std::vector<mproc::Process> procs;
        for (int i = 0; i < workers; ++i) procs.emplace_back(work, i);
        for (auto& p : procs) p.start();
        if (!demo::join_all(procs)) return 1;

        const int seen = max_inside.load();
        demo::say("max inside at once: %d (limit %d)\n", seen, limit);
        if (seen > limit) {
            demo::say("FAIL: the semaphore let %d workers in at once\n", seen);
            return 1;
        }
        if (seen < 1) {
            demo::say("FAIL: no worker got in\n");
            return 1;
        }
        return 0;
    });
}
