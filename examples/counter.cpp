// counter — lost updates on a shared counter, and how get_lock() prevents them.
//
// 5 processes each add 10, twenty times, every 0.1 s; 5 processes each subtract 50, twenty times,
// every 0.3 s. The total should be 5*20*10 - 5*20*50 = -4000. Each update is a read-modify-write done
// in visible steps (read, a short "compute" pause, write), so without the lock two processes can read
// the same value and one update overwrites the other. Python: multiprocessing.Value + get_lock().
//
//   ./counter [--quick]
#include <mutex>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

constexpr int processes_per_kind = 5;
constexpr int updates = 20;
constexpr int expected = processes_per_kind * updates * 10 - processes_per_kind * updates * 50; // -4000

// One update in three visible steps. `period` is the pause between updates; the compute step takes
// a hundredth of it, which is the window in which another process's update can be lost.
void update(mproc::SharedValue<int>& total, int delta, double period) {
    int seen = total.value();
    demo::pause(period / 100);
    total.value() = seen + delta;
}

void worker(mproc::SharedValue<int>& total, int delta, double period, bool locked) {
    for (int i = 0; i < updates; ++i) {
        if (locked) {
            std::lock_guard g(total.get_lock());
            update(total, delta, period);
        } else {
            update(total, delta, period);
        }
        demo::pause(period);
    }
}

bool run_phase(mproc::SharedValue<int>& total, bool locked) {
    std::vector<mproc::Process> procs;
    for (int i = 0; i < processes_per_kind; ++i)
        procs.emplace_back(worker, std::ref(total), +10, 0.1, locked);
    for (int i = 0; i < processes_per_kind; ++i)
        procs.emplace_back(worker, std::ref(total), -50, 0.3, locked);
    for (auto& p : procs) p.start();
    return demo::join_all(procs);
}

} // namespace

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        // Both counters exist before any fork, so every child shares them.
        mproc::SharedValue<int> racy(0);
        mproc::SharedValue<int> guarded(0);

        demo::say("%d processes add 10 and %d subtract 50, %d times each, on a counter starting at 0\n",
                  processes_per_kind, processes_per_kind, updates);

        if (!run_phase(racy, false)) return 1;
        int total = racy.load();
        demo::say("unsynchronised: total = %d (expected %d)%s\n", total, expected,
                  total == expected ? "" : " -- updates were lost in the race");

        if (!run_phase(guarded, true)) return 1;
        total = guarded.load();
        demo::say("with lock: total = %d\n", total);
        if (total != expected) {
            demo::say("FAIL: the locked total should be %d\n", expected);
            return 1;
        }
        return 0;
    });
}
