#include "support.hpp"

#include <algorithm>
#include <mutex>
#include <numeric>
#include <fstream>
#include <sched.h>
#include <set>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace mproc;
using test::bound;
using test::join_bounded;
using test::run_processes;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- Lock and RLock

TEMPLATE_TEST_CASE("a lock makes read-modify-writes from several processes exact", "", Lock, RLock) {
    TestType lock;
    SharedValue<long> counter(0);
    run_processes(4, [&](int) {
        for (int i = 0; i < 20000; ++i) {
            std::lock_guard g(lock);
            counter.value() = counter.value() + 1; // not atomic: only the lock makes it exact
        }
    });
    CHECK(counter.value() == 80000);
}

TEMPLATE_TEST_CASE("try_lock and try_lock_for fail while another process holds the lock", "", Lock, RLock) {
    TestType lock;
    Event held, release;
    Process holder([&] {
        std::lock_guard g(lock);
        held.set();
        release.wait();
    });
    holder.start();
    REQUIRE(held.wait_for(bound));
    CHECK_FALSE(lock.try_lock());
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(lock.try_lock_for(50ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
    {
        std::unique_lock lk(lock, std::defer_lock);
        CHECK_FALSE(lk.try_lock_until(std::chrono::system_clock::now() + 10ms));
    }
    release.set();
    CHECK(lock.try_lock_for(bound));
    lock.unlock();
    join_bounded(holder);
}

TEMPLATE_TEST_CASE("a holder that dies makes the next locker get OwnerDied, and the lock stays usable", "", Lock,
                   RLock) {
    TestType lock;
    Event held, never;
    SECTION("holder killed by SIGKILL") {
        Process holder([&] {
            lock.lock();
            held.set();
            never.wait();
        });
        holder.start();
        REQUIRE(held.wait_for(bound));
        holder.kill();
        join_bounded(holder);
    }
    SECTION("holder exits without unlocking") {
        Process holder([&] {
            lock.lock();
            mproc::exit(0);
        });
        holder.start();
        join_bounded(holder);
    }
    CHECK_THROWS_AS(lock.lock(), OwnerDied);
    // Released and consistent again: usable at once, by us and by others.
    CHECK(lock.try_lock());
    lock.unlock();
    SharedValue<int> ok(0);
    run_processes(2, [&](int) {
        std::lock_guard g(lock);
        ok.fetch_add(1);
    });
    CHECK(ok.load() == 2);
}

TEMPLATE_TEST_CASE("locked() tells whether anyone holds the lock, without disturbing the holder", "", Lock, RLock) {
    TestType lock;
    CHECK_FALSE(lock.locked());
    lock.lock();
    CHECK(lock.locked()); // our own hold counts, as in Python
    lock.unlock();
    CHECK_FALSE(lock.locked());

    Event held, release, released;
    SharedValue<int> unlock_ok(0);
    Process holder([&] {
        lock.lock();
        held.set();
        release.wait();
        lock.unlock(); // throws if locked() had disturbed the hold
        unlock_ok.store(1);
        released.set();
    });
    holder.start();
    REQUIRE(held.wait_for(bound));
    for (int i = 0; i < 1000; ++i) REQUIRE(lock.locked());
    CHECK_FALSE(lock.try_lock());
    release.set();
    REQUIRE(released.wait_for(bound));
    CHECK_FALSE(lock.locked());
    join_bounded(holder);
    CHECK(unlock_ok.load() == 1);
}

TEST_CASE("locked() never takes a free lock: another process's try_lock always succeeds meanwhile") {
    Lock lock;
    SharedValue<int> failures(0), rounds(0);
    Event started;
    Process contender([&] {
        started.set();
        for (int i = 0; i < 200000; ++i) {
            if (!lock.try_lock()) {
                failures.fetch_add(1);
                continue;
            }
            lock.unlock();
            rounds.fetch_add(1);
        }
    });
    contender.start();
    REQUIRE(started.wait_for(bound));
    long looks = 0;
    while (contender.is_alive() && looks < 50'000'000) {
        (void)lock.locked();
        ++looks;
    }
    join_bounded(contender);
    CHECK(failures.load() == 0);
    CHECK(rounds.load() == 200000);
}

TEMPLATE_TEST_CASE("locked() is false once the holder died, and leaves OwnerDied to the next locker", "", Lock, RLock) {
    TestType lock;
    Event held, never;
    Process holder([&] {
        lock.lock();
        held.set();
        never.wait();
    });
    holder.start();
    REQUIRE(held.wait_for(bound));
    CHECK(lock.locked());
    holder.kill();
    join_bounded(holder);
    CHECK_FALSE(lock.locked());
    CHECK_THROWS_AS(lock.lock(), OwnerDied);
    CHECK(lock.try_lock());
    CHECK(lock.locked());
    lock.unlock();
}

TEST_CASE("a process blocked in lock() is woken with OwnerDied when the holder dies") {
    Lock lock;
    Event held, never;
    SharedValue<int> saw_owner_died(0);
    Process holder([&] {
        lock.lock();
        held.set();
        never.wait();
    });
    holder.start();
    REQUIRE(held.wait_for(bound));
    Process waiter([&] {
        try {
            lock.lock();
        } catch (const OwnerDied&) {
            saw_owner_died.value() = 1;
            lock.lock();
        }
        lock.unlock();
    });
    waiter.start();
    holder.kill();
    join_bounded(holder);
    join_bounded(waiter);
    CHECK(waiter.exitcode() == 0);
    CHECK(saw_owner_died.value() == 1);
}

namespace {

/// Pins this process (and so the children it forks) to one CPU for a scope.
struct OneCpu {
    cpu_set_t saved{};
    OneCpu() {
        REQUIRE(::sched_getaffinity(0, sizeof saved, &saved) == 0);
        cpu_set_t one;
        CPU_ZERO(&one);
        for (std::size_t c = 0; c < std::size_t{CPU_SETSIZE}; ++c)
            if (CPU_ISSET(c, &saved)) {
                CPU_SET(c, &one);
                break;
            }
        REQUIRE(::sched_setaffinity(0, sizeof one, &one) == 0);
    }
    ~OneCpu() { ::sched_setaffinity(0, sizeof saved, &saved); }
};

/// Waits (bounded, polling /proc) until process `pid` sleeps in the futex system call.
bool sleeps_in_futex(pid_t pid) {
    const std::string futex = std::to_string(SYS_futex) + " ";
    return test::poll_until(
        [&] {
            std::ifstream in("/proc/" + std::to_string(pid) + "/syscall");
            std::string line;
            return std::getline(in, line) && line.rfind(futex, 0) == 0;
        },
        1ms); // sleeping, not yielding, lets the idle-priority children run on the shared CPU
}

} // namespace

// glibc's robust mutex loses a wake-up when the waiter that unlock() woke is killed before it takes the
// mutex while another process takes it on the fast path (which does not mark it as having waiters):
// the kernel's robust-list cleanup wakes another waiter only when the mutex is free at that death.
// Here the parent makes exactly that happen, on one CPU with idle-priority waiters so that the woken
// one cannot run before it is killed. The other waiter must still get the lock.
TEST_CASE("a waiter killed just after being woken does not strand the other waiters") {
    OneCpu pinned;
    Lock lock;
    for (int round = 0; round < 5; ++round) {
        auto waiter = [&] {
            sched_param idle{};
            ::sched_setscheduler(0, SCHED_IDLE, &idle);
            lock.lock();
            lock.unlock();
        };
        lock.lock();
        Process woken(waiter), stranded(waiter);
        woken.start();
        REQUIRE(sleeps_in_futex(woken.pid()));
        stranded.start();
        REQUIRE(sleeps_in_futex(stranded.pid()));
        lock.unlock(); // wakes `woken`, first in the futex queue; it cannot run while we do
        lock.lock();   // the fast path: the mutex no longer says that someone waits
        woken.kill();
        join_bounded(woken); // dies while we hold the mutex: the kernel wakes nobody
        lock.unlock();       // nobody is marked as waiting: no wake-up
        join_bounded(stranded);
        CHECK(stranded.exitcode() == 0);
    }
}

TEST_CASE("Lock misuse raises StateError instead of deadlocking") {
    Lock lock;
    CHECK_THROWS_AS(lock.unlock(), StateError);
    CHECK_THROWS_WITH(lock.unlock(), Catch::Contains("does not hold"));
    lock.lock();
    CHECK_THROWS_AS(lock.lock(), StateError);
    CHECK_THROWS_WITH(lock.try_lock(), Catch::Contains("already holds"));
    lock.unlock();
}

TEST_CASE("RLock is re-entrant for its owner only") {
    RLock lock;
    lock.lock();
    lock.lock();
    CHECK(lock.try_lock());
    lock.unlock();
    lock.unlock();
    SharedValue<int> other_got_it(-1);
    Process other([&] { other_got_it.value() = lock.try_lock(); });
    other.start();
    join_bounded(other);
    CHECK(other_got_it.value() == 0); // still held once
    lock.unlock();
    CHECK_THROWS_AS(lock.unlock(), StateError);
}

TEST_CASE("locks work with std::scoped_lock over several at once") {
    Lock a;
    Lock b;
    SharedValue<long> n(0);
    run_processes(3, [&](int i) {
        for (int k = 0; k < 2000; ++k) {
            if (i % 2) {
                std::scoped_lock g(a, b);
                ++n.value();
            } else {
                std::scoped_lock g(b, a);
                ++n.value();
            }
        }
    });
    CHECK(n.value() == 6000);
}

// ---------------------------------------------------------------- Semaphore

TEST_CASE("a semaphore hands out exactly its permits") {
    Semaphore s(2);
    CHECK(s.value() == 2);
    CHECK(s.try_acquire());
    CHECK(s.try_acquire());
    CHECK_FALSE(s.try_acquire());
    CHECK_FALSE(s.try_acquire_for(20ms));
    s.release(2);
    CHECK(s.value() == 2);
}

TEST_CASE("a semaphore limits how many processes are inside at once") {
    Semaphore s(3);
    SharedValue<int> inside(0), most(0);
    run_processes(8, [&](int) {
        for (int k = 0; k < 200; ++k) {
            std::lock_guard g(s);
            int now = inside.fetch_add(1) + 1;
            int seen = most.load();
            while (now > seen && !std::atomic_ref<int>(most.value()).compare_exchange_weak(seen, now)) {
            }
            inside.fetch_sub(1);
        }
    });
    CHECK(most.load() >= 1);
    CHECK(most.load() <= 3);
    CHECK(s.value() == 3);
}

TEST_CASE("release(k) wakes k blocked processes") {
    Semaphore s(0);
    SharedValue<int> through(0);
    std::vector<Process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back([&] {
        if (s.try_acquire_for(bound)) through.fetch_add(1);
    });
    for (auto& p : ps) p.start();
    s.release(3);
    for (auto& p : ps) join_bounded(p);
    CHECK(through.load() == 3);
    CHECK(s.value() == 0);
}

TEST_CASE("semaphore arguments are checked") {
    CHECK_THROWS_AS(Semaphore(-1), ValueError);
    Semaphore s(1);
    CHECK_THROWS_AS(s.release(0), ValueError);
    CHECK_THROWS_WITH(s.release(-2), Catch::Contains("at least 1"));
}

TEST_CASE("BoundedSemaphore refuses a release past its initial value") {
    BoundedSemaphore s(2);
    CHECK_THROWS_AS(s.release(), ValueError);
    CHECK_THROWS_WITH(s.release(), Catch::Contains("past its limit 2"));
    s.acquire();
    s.release();
    CHECK(s.value() == 2);
    s.acquire();
    s.acquire();
    CHECK_THROWS_AS(s.release(3), ValueError);
    s.release(2);
    CHECK(s.value() == 2);
}

// ---------------------------------------------------------------- Event

TEST_CASE("an Event set in one process wakes waiters in others") {
    Event e;
    CHECK_FALSE(e.is_set());
    CHECK_FALSE(e.wait_for(20ms));
    SharedValue<int> woke(0);
    std::vector<Process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back([&] {
        if (e.wait_for(bound)) woke.fetch_add(1);
    });
    for (auto& p : ps) p.start();
    Process setter([&] { e.set(); });
    setter.start();
    join_bounded(setter);
    for (auto& p : ps) join_bounded(p);
    CHECK(woke.load() == 3);
    CHECK(e.is_set());
    e.wait(); // already set: returns at once
    e.clear();
    CHECK_FALSE(e.is_set());
    CHECK_FALSE(e.wait_for(1ms));
}

// ---------------------------------------------------------------- Condition

TEST_CASE("Condition: a consumer waits for a producer's predicate") {
    Condition cond;
    SharedValue<int> items(0);
    SharedValue<int> consumed(0);
    Process consumer([&] {
        for (int k = 0; k < 100; ++k) {
            std::unique_lock lk(cond.get_lock());
            if (!cond.wait_for(lk, bound, [&] { return items.value() > 0; })) return;
            --items.value();
            ++consumed.value();
        }
    });
    consumer.start();
    for (int k = 0; k < 100; ++k) {
        std::unique_lock lk(cond.get_lock());
        ++items.value();
        cond.notify_one();
    }
    join_bounded(consumer);
    CHECK(consumed.value() == 100);
    CHECK(items.value() == 0);
}

TEST_CASE("Condition: notify_all wakes every waiting process") {
    Lock lock;
    Condition cond(lock);
    SharedValue<int> go(0), waiting(0), woke(0);
    std::vector<Process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back([&] {
        std::unique_lock lk(lock);
        ++waiting.value();
        cond.notify_all(); // tell the parent one more is waiting
        if (cond.wait_for(lk, bound, [&] { return go.value() == 1; })) ++woke.value();
    });
    for (auto& p : ps) p.start();
    {
        std::unique_lock lk(lock);
        REQUIRE(cond.wait_for(lk, bound, [&] { return waiting.value() == 3; }));
        go.value() = 1;
        cond.notify_all();
    }
    for (auto& p : ps) join_bounded(p);
    CHECK(woke.value() == 3);
}

namespace {
/// `waiters` processes wait on `cond` (no predicate, `patience` each) round after round; each round
/// the parent, once all are inside wait, calls notify(n) (or notify_one() when n == 1). Returns, per
/// round, how many waits returned true (notified) rather than false (timed out).
std::vector<int> notified_per_round(int waiters, std::size_t n, int rounds, std::chrono::milliseconds patience) {
    Lock lock;
    Condition cond(lock);
    Barrier round_end(static_cast<std::size_t>(waiters) + 1);
    SharedValue<int> waiting(0);
    SharedArray<int> notified(static_cast<std::size_t>(rounds), 0);
    auto ps = test::start_all(waiters, [&](int) {
        for (int r = 0; r < rounds; ++r) {
            {
                std::unique_lock lk(lock);
                ++waiting.value();
                if (cond.wait_for(lk, patience)) ++notified[static_cast<std::size_t>(r)];
            }
            if (!round_end.wait_for(bound)) return;
        }
    });
    for (int r = 0; r < rounds; ++r) {
        // Notify in the critical section that sees every waiter inside wait (the lock is theirs
        // again only once they have released it in wait).
        REQUIRE(test::poll_until([&] {
            std::unique_lock lk(lock);
            if (waiting.value() != waiters) return false;
            waiting.value() = 0;
            if (n == 1)
                cond.notify_one();
            else
                cond.notify(n);
            return true;
        }));
        REQUIRE(round_end.wait_for(bound));
    }
    test::join_all(ps);
    return {notified.begin(), notified.end()};
}
} // namespace

TEST_CASE("Condition: notify_one right after two waiters started waiting wakes exactly one") {
    // The regression: both wait_fors returned true after one notify_one. A waiter may time out
    // before the notify on a loaded machine (then the other takes it), so a round may count 0 or
    // 1 notified, never 2; and the notify must reach someone in most rounds.
    auto counts = notified_per_round(2, 1, 12, 300ms);
    int total = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
        INFO("round " << r);
        CHECK(counts[r] <= 1);
        total += counts[r];
    }
    CHECK(total >= 6);
}

TEST_CASE("Condition: notify(n) wakes at most n of the waiters, notify(0) none") {
    auto two = notified_per_round(3, 2, 5, 300ms);
    int total = 0;
    for (int c : two) {
        CHECK(c <= 2);
        total += c;
    }
    CHECK(total >= 5);
    auto none = notified_per_round(2, 0, 2, 50ms);
    for (int c : none) CHECK(c == 0);
}

TEST_CASE("Condition: timeouts and misuse") {
    Condition cond;
    std::unique_lock lk(cond.get_lock());
    CHECK_FALSE(cond.wait_for(lk, 20ms, [] { return false; }));
    CHECK(lk.owns_lock());
    lk.unlock();
    CHECK_THROWS_AS(cond.wait(lk), StateError);
    CHECK_THROWS_WITH(cond.wait_for(lk, 1ms), Catch::Contains("does not hold"));
}

// ---------------------------------------------------------------- Barrier

namespace {
/// Waits (bounded) until `n` parties are inside the barrier's wait.
void wait_for_parties(Barrier& b, std::size_t n) {
    REQUIRE(test::poll_until([&] { return b.n_waiting() >= n; }));
}
} // namespace

TEST_CASE("a Barrier releases all parties together, with distinct indices, generation after generation") {
    Barrier b(4);
    CHECK(b.parties() == 4);
    SharedArray<int> indices(3 * 4, -1);
    SharedValue<int> arrived(0);
    SharedValue<int> order_ok(1);
    std::vector<Process> ps;
    for (int i = 0; i < 4; ++i) ps.emplace_back([&](int who) {
        for (int gen = 0; gen < 3; ++gen) {
            arrived.fetch_add(1);
            auto idx = b.wait_for(bound);
            if (!idx) return;
            // Everyone of this generation has arrived before anyone leaves.
            if (arrived.load() < 4 * (gen + 1)) order_ok.store(0);
            indices[static_cast<std::size_t>(gen * 4 + who)] = static_cast<int>(*idx);
        }
    }, i);
    for (auto& p : ps) p.start();
    for (auto& p : ps) join_bounded(p);
    CHECK(order_ok.load() == 1);
    for (int gen = 0; gen < 3; ++gen) {
        std::set<int> seen(indices.begin() + gen * 4, indices.begin() + gen * 4 + 4);
        CHECK(seen == std::set<int>{0, 1, 2, 3});
    }
    CHECK_FALSE(b.broken());
}

TEST_CASE("a party's timeout breaks the barrier for the others") {
    Barrier b(3);
    SharedValue<int> broken_seen(0);
    Process other([&] {
        try {
            b.wait_for(bound);
        } catch (const BrokenBarrier&) {
            broken_seen.value() = 1;
        }
    });
    other.start();
    // Wait until the other party is inside, then time out ourselves.
    wait_for_parties(b, 1);
    CHECK_FALSE(b.wait_for(20ms));
    join_bounded(other);
    CHECK(broken_seen.value() == 1);
    CHECK(b.broken());
    CHECK_THROWS_AS(b.wait(), BrokenBarrier);
    b.reset();
    CHECK_FALSE(b.broken());
}

TEST_CASE("abort breaks waiting parties and reset makes the barrier usable again") {
    Barrier b(2);
    SharedValue<int> broken_seen(0);
    Process waiter([&] {
        try {
            b.wait_for(bound);
        } catch (const BrokenBarrier&) {
            broken_seen.value() = 1;
        }
    });
    waiter.start();
    wait_for_parties(b, 1);
    b.abort();
    join_bounded(waiter);
    CHECK(broken_seen.value() == 1);
    CHECK(b.broken());
    b.reset();
    SharedValue<int> passed(0);
    Process partner([&] {
        if (b.wait_for(bound)) passed.fetch_add(1);
    });
    partner.start();
    REQUIRE(b.wait_for(bound));
    join_bounded(partner);
    CHECK(passed.load() == 1);
}

TEST_CASE("reset while parties wait breaks them, then the barrier works") {
    Barrier b(3);
    SharedValue<int> broken_seen(0);
    std::vector<Process> ps;
    for (int i = 0; i < 2; ++i) ps.emplace_back([&] {
        try {
            b.wait_for(bound);
        } catch (const BrokenBarrier&) {
            broken_seen.fetch_add(1);
        }
    });
    for (auto& p : ps) p.start();
    wait_for_parties(b, 2);
    b.reset();
    for (auto& p : ps) join_bounded(p);
    CHECK(broken_seen.load() == 2);
    CHECK_FALSE(b.broken());
    Barrier single(1);
    CHECK(single.wait() == 0);
}

TEST_CASE("a Barrier's action runs once per trip, in the last party to arrive, before anyone is released") {
    constexpr int parties = 3, generations = 4;
    SharedValue<int> actions(0);
    SharedArray<int> runner(generations, 0);          // pid of the process that ran each trip's action
    SharedArray<int> last_arriver(generations, 0);    // pid of the party that got index parties-1
    SharedValue<int> released_early(0);
    Barrier b(parties, [&] {
        int gen = actions.load();
        runner[static_cast<std::size_t>(gen)] = static_cast<int>(::getpid());
        actions.fetch_add(1);
    });
    test::run_processes(parties, [&](int) {
        for (int gen = 0; gen < generations; ++gen) {
            auto idx = b.wait_for(bound);
            if (!idx) return;
            if (actions.load() < gen + 1) released_early.fetch_add(1); // the action had not run yet
            if (*idx == parties - 1) last_arriver[static_cast<std::size_t>(gen)] = static_cast<int>(::getpid());
        }
    });
    CHECK(actions.load() == generations);
    CHECK(released_early.load() == 0);
    for (std::size_t gen = 0; gen < generations; ++gen) {
        CHECK(runner[gen] != 0);
        CHECK(runner[gen] == last_arriver[gen]);
    }
}

TEST_CASE("a Barrier action that throws breaks the barrier: its party gets the exception, the others BrokenBarrier") {
    Barrier b(2, [] { throw std::runtime_error("action failed on purpose"); });
    SharedValue<int> broken_seen(0);
    Process other([&] {
        try {
            b.wait_for(bound);
        } catch (const BrokenBarrier&) {
            broken_seen.store(1);
        }
    });
    other.start();
    wait_for_parties(b, 1);
    CHECK_THROWS_WITH(b.wait(), "action failed on purpose"); // we arrive last: we run the action
    join_bounded(other);
    CHECK(broken_seen.load() == 1);
    CHECK(b.broken());
    CHECK(b.n_waiting() == 0);
    CHECK_THROWS_AS(b.wait(), BrokenBarrier);
}

TEST_CASE("a Barrier action that uses its own barrier gets StateError, and the barrier breaks") {
    Barrier* self = nullptr;
    Barrier b(1, [&] { (void)self->n_waiting(); });
    self = &b;
    CHECK_THROWS_AS(b.wait(), StateError);
    CHECK(b.broken());
    b.reset();
    CHECK_FALSE(b.broken());
}

TEST_CASE("a Barrier's default timeout bounds wait() and its expiry breaks the barrier") {
    SECTION("expiry") {
        Barrier b(2, {}, 50ms);
        auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(b.wait(), BrokenBarrier);
        CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
        CHECK(b.broken());
        // wait_for's own duration still applies, and a broken barrier throws.
        CHECK_THROWS_AS(b.wait_for(1ms), BrokenBarrier);
        b.reset();
        CHECK_THROWS_WITH(b.wait(), Catch::Contains("default timeout"));
    }
    SECTION("parties that arrive in time pass") {
        Barrier b(2, {}, bound);
        SharedValue<int> passed(0);
        Process partner([&] {
            for (int i = 0; i < 3; ++i) b.wait();
            passed.store(1);
        });
        partner.start();
        for (int i = 0; i < 3; ++i) CHECK(b.wait() < 2);
        join_bounded(partner);
        CHECK(passed.load() == 1);
        CHECK_FALSE(b.broken());
    }
    SECTION("a negative default timeout is refused") {
        CHECK_THROWS_AS(Barrier(2, {}, -1ms), ValueError);
    }
}

TEST_CASE("a Barrier of zero parties is refused") {
    CHECK_THROWS_AS(Barrier(0), ValueError);
}
