// bank_balance — a race condition on a shared balance, and the same work done under a lock.
//
// The balance starts at 100. One process withdraws 1 ten thousand times while another deposits 1
// ten thousand times, so it should end at 100. Ten rounds without synchronisation show it ending
// anywhere; ten rounds with get_lock() around every operation end at 100 each time.
// Python: multiprocessing.Value and its get_lock().
//
//   ./bank_balance [--quick]      (--quick changes nothing here: there is no simulated delay)
#include <mutex>
#include <optional>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

constexpr int start_balance = 100;
constexpr int operations = 10000;
constexpr int rounds = 10;

// Both processes of a round start here and leave together, so that their loops really overlap.
// The Barrier makes each wait for the other to exist. But 10000 plain operations take only
// microseconds, less than the kernel needs to wake a process sleeping in the barrier, so the last
// to arrive would be done before the other woke up; after the barrier both therefore spin (no
// sleeping) until both are awake and running.
struct StartLine {
    mproc::Barrier barrier{2};
    mproc::SharedValue<int> awake{0}; // reset to 0 before each round

    void wait() {
        barrier.wait();
        awake.fetch_add(1);
        while (awake.load() < 2) {
        }
    }
};

void racy_worker(mproc::SharedValue<int>& balance, StartLine& start, int delta) {
    // volatile: every iteration must really load and store the shared int. Without it the compiler
    // may keep the balance in a register and write it back once (balance += 10000 * delta), and
    // the two processes would hardly overlap at all.
    volatile int& b = balance.value();
    start.wait();
    for (int i = 0; i < operations; ++i) b = b + delta;
}

void locked_worker(mproc::SharedValue<int>& balance, StartLine& start, int delta) {
    start.wait();
    for (int i = 0; i < operations; ++i) {
        std::lock_guard g(balance.get_lock());
        balance.value() += delta;
    }
}

// One round: a withdrawer and a depositor; returns the final balance, or nullopt if they hung.
template <class Worker>
std::optional<int> play_round(mproc::SharedValue<int>& balance, StartLine& start, Worker worker) {
    balance.store(start_balance);
    start.awake.store(0);
    std::vector<mproc::Process> procs;
    procs.emplace_back(worker, std::ref(balance), std::ref(start), -1);
    procs.emplace_back(worker, std::ref(balance), std::ref(start), +1);
    for (auto& p : procs) p.start();
    if (!demo::join_all(procs)) return std::nullopt;
    for (auto& p : procs)
        if (p.exitcode() != 0) {
            demo::say("FAIL: %s exited with %d\n", p.name().c_str(), *p.exitcode());
            return std::nullopt;
        }
    return balance.load();
}

} // namespace

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        mproc::SharedValue<int> balance(start_balance);
        StartLine start; // reusable: its Barrier trips once per round

        demo::say("balance %d; one process withdraws 1 x %d, another deposits 1 x %d\n", start_balance, operations,
                  operations);

        int racy_wrong = 0;
        for (int r = 1; r <= rounds; ++r) {
            auto end = play_round(balance, start, racy_worker);
            if (!end) return 1;
            if (*end != start_balance) ++racy_wrong;
            demo::say("racy round %2d: balance = %d\n", r, *end);
        }
        demo::say("racy rounds: %d of %d did not end at %d\n", racy_wrong, rounds, start_balance);

        int locked_wrong = 0;
        for (int r = 1; r <= rounds; ++r) {
            auto end = play_round(balance, start, locked_worker);
            if (!end) return 1;
            if (*end != start_balance) ++locked_wrong;
            demo::say("locked round %2d: balance = %d\n", r, *end);
        }
        if (locked_wrong != 0) {
            demo::say("FAIL: %d locked rounds did not end at %d\n", locked_wrong, start_balance);
            return 1;
        }
        demo::say("locked rounds: all %d ended at %d\n", rounds, start_balance);
        return 0;
    });
}
