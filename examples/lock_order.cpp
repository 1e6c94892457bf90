// lock_order — a Lock makes processes take turns: ten processes each hold one shared Lock for a
// random time; every "has the lock" line is followed by the same process's "releases" line.
// The program checks this itself: each holder appends its index to a shared log on entering and on
// leaving, so the log must read in pairs (a a b b c c ...). Python: multiprocessing.Lock.
//
//   ./lock_order [--quick]      (--quick: holds of up to 0.1 s instead of up to 1 s)
#include <mutex>
#include <random>
#include <unistd.h>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        constexpr int count = 10;

        mproc::Lock lock;
        mproc::SharedArray<int> log(2 * count, -1); // written only while holding `lock`
        mproc::SharedValue<int> used(0);            // entries of `log` written so far, ditto

        auto holder = [&](int i) {
            // Seeded per process: a forked child starts from its parent's state of any generator.
            std::mt19937 rng(static_cast<unsigned>(::getpid()) * 2654435761u);
            std::uniform_real_distribution<double> hold(0.0, 1.0);

            std::lock_guard g(lock);
            demo::say("process %d (pid %d) has the lock\n", i, static_cast<int>(::getpid()));
            log[demo::at(used.value()++)] = i;
            demo::pause(hold(rng));
            log[demo::at(used.value()++)] = i;
            demo::say("process %d releases the lock\n", i);
        };

        std::vector<mproc::Process> procs;
        for (int i = 0; i < count; ++i) procs.emplace_back(holder, i);
        for (auto& p : procs) p.start();
        if (!demo::join_all(procs)) return 1;

        // Each index exactly once, as an adjacent pair.
        bool ok = used.load() == 2 * count;
        std::vector<int> times(count, 0);
        for (int k = 0; ok && k < count; ++k) {
            const int a = log[demo::at(2 * k)], b = log[demo::at(2 * k + 1)];
            ok = a == b && a >= 0 && a < count && ++times[demo::at(a)] == 1;
        }
        demo::say("order of holders:");
        for (int k = 0; k < used.load() && k < 2 * count; k += 2) demo::say(" %d", log[demo::at(k)]);
        demo::say("\n");
        if (!ok) {
            demo::say("FAIL: the log is not %d distinct adjacent pairs:", count);
            for (int x : log) demo::say(" %d", x);
            demo::say("\n");
            return 1;
        }
        demo::say("%d processes took the lock one at a time\n", count);
        return 0;
    });
}
