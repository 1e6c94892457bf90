// Fault injection: processes SIGKILLed at random moments, in loops, across locks, queues and pools.
// Afterwards every message or result either arrived exactly once or was reported failed, nothing is
// left locked, the objects keep working, and no process, zombie, descriptor or /dev/shm entry leaks.
#include "support.hpp"

#include <algorithm>
#include <cstring>
#include <dirent.h>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace mproc;
using test::bound;
using test::join_bounded;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int scale = 4; // sanitizers slow every process down: fewer rounds, same checks
#else
constexpr int scale = 1;
#endif

// Each test case counts its kills and checks its share; together they pass 1000 (the default build).
int kills = 0;

std::size_t count_entries(const char* dir) {
    std::size_t n = 0;
    if (DIR* d = ::opendir(dir)) {
        while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

/// Our children that are zombies (exited, not reaped).
int zombie_children() {
    int zombies = 0;
    std::string me = std::to_string(::getpid());
    if (DIR* d = ::opendir("/proc")) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            FILE* f = std::fopen(("/proc/" + std::string(e->d_name) + "/stat").c_str(), "re");
            if (!f) continue;
            char buf[512] = {};
            std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
            std::fclose(f);
            std::string stat(buf, n);
            auto close = stat.rfind(')');
            if (close == std::string::npos || close + 4 >= stat.size()) continue;
            char state = stat[close + 2];
            std::string rest = stat.substr(close + 4);
            std::string ppid = rest.substr(0, rest.find(' '));
            zombies += state == 'Z' && ppid == me;
        }
        ::closedir(d);
    }
    return zombies;
}

/// Mappings of this process backed by named shared memory (/dev/shm files). mproc's own objects live
/// in anonymous shared memory, so there must be none; counting mappings rather than /dev/shm entries
/// keeps the check exact while other tests (named memory, MPI) use /dev/shm at the same time.
std::size_t dev_shm_mappings() {
    std::size_t n = 0;
    if (FILE* f = std::fopen("/proc/self/maps", "re")) {
        char line[4096];
        while (std::fgets(line, sizeof line, f))
            if (std::strstr(line, " /dev/shm/")) ++n;
        std::fclose(f);
    }
    return n;
}

/// Checks, around a test body, that it leaked no descriptor, zombie, child or named shared memory.
struct LeakCheck {
    std::size_t fds = count_entries("/proc/self/fd");
    std::size_t shm = dev_shm_mappings();
    ~LeakCheck() {
        CHECK(count_entries("/proc/self/fd") == fds);
        CHECK(dev_shm_mappings() == shm);
        CHECK(zombie_children() == 0);
        CHECK(active_children().empty());
    }
};

/// test::kill_at, counting the kills each test case checks.
template <class Counter>
void kill_at(Process& victim, const Counter& counter, long mark) {
    kills += test::kill_at(victim, counter, mark);
}

/// In a consumer process: where the codec hook of Traced writes the sequence number (+1) of the
/// last message it decoded, so that the test knows which message a killed consumer was returning.
std::uint32_t* decoded_mark = nullptr;

struct Traced {
    std::uint32_t seq = 0;
    std::string body;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(seq, body);
        if constexpr (Archive::is_loading)
            if (decoded_mark) std::atomic_ref<std::uint32_t>(*decoded_mark).store(seq + 1);
    }
    static std::string body_for(std::uint32_t s) {
        return std::string(s % 3 == 1 ? 5000 + s % 100 : s % 40, static_cast<char>('a' + s % 26)); // a third fragmented
    }
};

} // namespace

TEST_CASE("lock holders killed at random moments never leave the lock held") {
    LeakCheck leaks;
    std::mt19937 rng(1);
    Lock lock;
    SharedValue<long> a(0), b(0), ops(0);
    int owner_died = 0;
    kills = 0;
    for (int round = 0; round < 500 / scale; ++round) {
        Process holder([&] {
            for (;;) {
                std::lock_guard g(lock);
                a.value() = a.value() + 1; // a and b move together under the lock
                b.value() = b.value() + 1;
                ops.fetch_add(1);
            }
        });
        long start = ops.load();
        holder.start();
        kill_at(holder, ops, start + static_cast<long>(rng() % 200));
        join_bounded(holder);
        try {
            lock.lock();
        } catch (const OwnerDied&) {
            ++owner_died;
            lock.lock(); // released by the failed attempt: usable at once
        }
        b.value() = a.value(); // repair a half-done update, as an OwnerDied handler would
        lock.unlock();
    }
    CHECK(kills >= 450 / scale);
    CHECK(owner_died > 0); // some kills did land while the lock was held
    CHECK(lock.try_lock_for(bound));
    lock.unlock();
}

TEST_CASE("producers and consumers killed mid-stream: exactly once or reported, queue keeps working") {
    LeakCheck leaks;
    std::mt19937 rng(2);
    constexpr std::uint32_t per_producer = 300;
    kills = 0;
    for (int round = 0; round < 180 / scale; ++round) {
        Queue<std::pair<std::uint32_t, std::string>> q(QueueOptions{.capacity_bytes = 4096});
        SharedArray<std::uint8_t> received(per_producer + 1, 0), done(per_producer, 0);
        SharedValue<long> produced(0), consumed(0);
        Process producer([&] {
            for (std::uint32_t s = 0; s < per_producer; ++s) {
                q.put({s, std::string(s % 7 == 3 ? 3000 : s % 50, static_cast<char>('a' + s % 26))});
                done[s] = 1;
                produced.fetch_add(1);
            }
        });
        auto consumer = [&] {
            try {
                while (auto m = q.get_for(bound)) {
                    const auto& [s, body] = *m;
                    if (body != std::string(s == per_producer ? 10 : (s % 7 == 3 ? 3000 : s % 50), static_cast<char>('a' + s % 26)))
                        mproc::exit(7); // a torn message
                    std::atomic_ref<std::uint8_t>(received[s]).fetch_add(1);
                    consumed.fetch_add(1);
                }
            } catch (const QueueClosed&) {
            }
        };
        Process victim(consumer), survivor(consumer);
        producer.start();
        victim.start();
        survivor.start();
        // The consumer first, while the producer still feeds it (so its mark is reached), then the producer.
        kill_at(victim, consumed, static_cast<long>(rng() % (per_producer / 2)));
        kill_at(producer, produced, static_cast<long>(rng() % per_producer));
        join_bounded(producer);
        join_bounded(victim);
        // Still works. Bounded: with no consumer left (the flake this case once had: the survivor's
        // get threw QueueClosed on the open queue and it left), an unbounded put into a full ring hangs.
        REQUIRE(q.put_for({per_producer, std::string(10, static_cast<char>('a' + per_producer % 26))}, bound));
        q.close();
        join_bounded(survivor);
        REQUIRE(survivor.exitcode() == 0);
        int duplicates = 0, lost = 0;
        for (std::uint32_t s = 0; s < per_producer; ++s) {
            duplicates += received[s] > 1;
            lost += done[s] && !received[s];
        }
        CHECK(duplicates == 0);
        CHECK(lost <= 1); // at most the one message the killed consumer had taken
        CHECK(received[per_producer] == 1);
    }
    CHECK(kills >= 200 / scale); // a producer that finished before its mark was not killed
}

TEST_CASE("consumers SIGKILLed inside get(): a message is lost only once get() had decoded it to return it") {
    // The guarantee of guide.md: a message counts as taken only once get() is about to return it, for
    // every message that fits in the ring's free room (here: maxsize 1 keeps the ring that free,
    // with messages of 1 to 3 fragments). A killed consumer may lose at most the one message whose
    // decoding it had finished (the codec hook of Traced marks it): killed after get() took it and
    // before the test marked it received. Any other loss is the defect (before: a consumer killed
    // between the fragments of a message lost it undecoded).
    LeakCheck leaks;
    std::mt19937 rng(4);
    constexpr std::uint32_t per_round = 300;
    int lost_total = 0, round_kills = 0;
    for (int round = 0; round < 60 / scale; ++round) {
        Queue<Traced> q(QueueOptions{.maxsize = 1, .capacity_bytes = 8192});
        SharedArray<std::uint8_t> received(per_round, 0);
        SharedArray<std::uint32_t> marks(2, 0);
        SharedValue<long> consumed(0);
        SharedValue<int> torn(0);
        Process producer([&] {
            for (std::uint32_t s = 0; s < per_round; ++s) q.put(Traced{s, Traced::body_for(s)});
        });
        auto consumer = [&](int me) {
            decoded_mark = &marks[static_cast<std::size_t>(me)];
            try {
                while (auto m = q.get_for(bound)) {
                    if (m->seq >= per_round || m->body != Traced::body_for(m->seq)) torn.store(1);
                    std::atomic_ref<std::uint8_t>(received[m->seq]).fetch_add(1);
                    consumed.fetch_add(1);
                }
            } catch (const QueueClosed&) {
            }
        };
        Process victim(consumer, 0), survivor(consumer, 1);
        producer.start();
        victim.start();
        survivor.start();
        const int kills_before = kills;
        kill_at(victim, consumed, static_cast<long>(rng() % (per_round - 20)));
        round_kills += kills - kills_before;
        join_bounded(producer);
        join_bounded(victim);
        q.close();
        join_bounded(survivor);
        REQUIRE(survivor.exitcode() == 0);
        CHECK(torn.load() == 0);
        const std::uint32_t victim_decoded = marks[0]; // seq + 1 of its last decoded message, 0: none
        for (std::uint32_t s = 0; s < per_round; ++s) {
            CHECK(received[s] <= 1);
            if (received[s] == 0) {
                ++lost_total;
                INFO("round " << round << ": message " << s << " lost; the killed consumer had last decoded "
                              << static_cast<long>(victim_decoded) - 1);
                CHECK(s + 1 == victim_decoded);
            }
        }
    }
    CHECK(round_kills >= 50 / scale);
    WARN(lost_total << " messages lost with a consumer killed after get() decoded them, in " << round_kills << " kills");
}

TEST_CASE("pool workers killed at random moments: every task succeeds or reports WorkerCrashed") {
    LeakCheck leaks;
    std::mt19937 rng(3);
    int crashed = 0, succeeded = 0;
    kills = 0;
    {
        Pool pool(2);
        for (int round = 0; round < 200 / scale; ++round) {
            std::vector<Future<long>> fs;
            for (long i = 0; i < 20; ++i)
                fs.push_back(pool.apply_async([](long x) {
                    volatile long spin = 0;
                    for (long k = 0; k < 20000; ++k) spin = spin + k; // some work to be killed in
                    return x * x;
                }, i));
            // Kill both workers, one after the other, at random moments of the batch.
            for (int victim = 0; victim < 2; ++victim) {
                std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400)); // fault timing, not synchronisation
                ::kill(pool.worker_pids()[static_cast<std::size_t>(victim)], SIGKILL);
                ++kills;
            }
            for (long i = 0; i < 20; ++i) {
                try {
                    long v = fs[static_cast<std::size_t>(i)].get();
                    CHECK(v == i * i);
                    ++succeeded;
                } catch (const WorkerCrashed& e) {
                    CHECK(e.signal() == SIGKILL);
                    ++crashed;
                }
            }
            REQUIRE(pool.apply([](int x) { return x + 1; }, 1) == 2); // replaced: the pool goes on
        }
    }
    CHECK(kills == 2 * (200 / scale));
    CHECK(crashed > 0);
    CHECK(succeeded > crashed);
}

TEST_CASE("a pool destroyed by an exception with hung workers returns in bounded time") {
    LeakCheck leaks;
    auto start = std::chrono::steady_clock::now();
    try {
        Pool pool(2);
        for (int i = 0; i < 4; ++i)
            pool.apply_async([](int) {
                std::this_thread::sleep_for(std::chrono::hours(1)); // a hung task (simulated)
                return 0;
            }, i);
        throw std::runtime_error("user code failed while tasks hang");
    } catch (const std::runtime_error&) {
    }
    CHECK(std::chrono::steady_clock::now() - start < bound);
}
