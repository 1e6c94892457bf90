// sleepers — processes run in parallel: ten processes that each sleep 1 s finish in about 1 s,
// not 10 s. Python: the classic "start them all, then join them all" loop.
//
//   ./sleepers [--quick]      (--quick: each sleeps 0.1 s)
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        constexpr int count = 10;
        const double nap = demo::scaled(1.0);

        demo::Stopwatch clock;
        std::vector<mproc::Process> procs;
        for (int i = 0; i < count; ++i)
            procs.emplace_back([] { demo::pause(1.0); });
        for (auto& p : procs) p.start();
        if (!demo::join_all(procs)) return 1;
        const double elapsed = clock.seconds();

        demo::say("%d processes slept %.2f s each; all done in %.2f s\n", count, nap, elapsed);
        if (elapsed >= 5 * nap) {
            demo::say("FAIL: that is not parallel (sequential would take %.2f s)\n", count * nap);
            return 1;
        }
        demo::say("they ran in parallel\n");
        return 0;
    });
}
