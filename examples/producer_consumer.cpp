// producer_consumer — one Queue between a fast producer and slow consumers, with a second consumer
// joining half-way.
//
// The producer puts 0..19, one every 0.2 s; consumer 1 takes one item a second. Once it has taken
// 3, a second consumer starts on the same queue. Every item is still taken exactly once, and each
// consumer gets its items in increasing order: the queue is FIFO however many processes read it.
// When the producer is done, the main process close()s the queue; each consumer drains what is left
// and stops at QueueClosed (Python would send one None per consumer). Each consumer records what it
// took in shared arrays, which the main process checks at the end.
// Python: multiprocessing.Queue, put(), get().
//
//   ./producer_consumer [--quick]      (--quick: an item every 0.02 s, taken every 0.1 s)
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

constexpr int items = 20;
constexpr int consumers = 2;
constexpr int second_joins_after = 3; // items taken by consumer 1 before consumer 2 starts

// What the consumers did, for the main process to check. Consumer c (1-based) writes only its own
// row of `taken` and its own `count`; `times_taken` is shared, hence the atomic increment.
struct Ledger {
    mproc::SharedArray<int> times_taken = mproc::SharedArray<int>(items, 0);
    mproc::SharedArray<int> taken = mproc::SharedArray<int>(consumers * items, -1); // row c-1: items in order
    mproc::SharedArray<int> count = mproc::SharedArray<int>(consumers, 0);
    mproc::Event second_may_join; // consumer 1 has taken `second_joins_after` items
};

void produce(mproc::Queue<int>& queue) {
    for (int i = 0; i < items; ++i) {
        demo::say("producer put %d\n", i);
        queue.put(i);
        demo::pause(0.2);
    }
    demo::say("producer done\n");
}

void consume(mproc::Queue<int>& queue, Ledger& ledger, int id) {
    int n = 0;
    for (;;) {
        int item = 0;
        try {
            item = queue.get();
        } catch (const mproc::QueueClosed&) {
            break; // closed and drained: nothing more will come
        }
        demo::say("consumer %d took %d\n", id, item);
        if (item >= 0 && item < items) std::atomic_ref<int>(ledger.times_taken[demo::at(item)]).fetch_add(1);
        if (n < items) ledger.taken[demo::at((id - 1) * items + n)] = item;
        ledger.count[demo::at(id - 1)] = ++n;
        if (id == 1 && n == second_joins_after) ledger.second_may_join.set();
        demo::pause(1.0);
    }
    demo::say("consumer %d: queue closed and empty; stopping after %d items\n", id, n);
}

mproc::Process consumer_process(mproc::Queue<int>& queue, Ledger& ledger, int id) {
    return mproc::Process(mproc::ProcessOptions{.name = "consumer " + std::to_string(id)}, consume, std::ref(queue),
                          std::ref(ledger), id);
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        int mismatches = 0;
        auto check = [&](bool ok, const char* fmt, auto... args) {
            if (!ok) {
                demo::say(fmt, args...);
                ++mismatches;
            }
        };

        // Shared objects first, then the processes that use them.
        mproc::Queue<int> queue;
        Ledger ledger;
        demo::Stopwatch clock;

        std::vector<mproc::Process> producer;
        producer.emplace_back(mproc::ProcessOptions{.name = "producer"}, produce, std::ref(queue));
        std::vector<mproc::Process> readers;
        readers.reserve(consumers);
        readers.push_back(consumer_process(queue, ledger, 1));
        producer[0].start();
        readers[0].start();

        // Consumer 2 joins once consumer 1 has taken its third item: observed, not guessed by a sleep.
        if (ledger.second_may_join.wait_for(60s)) {
            demo::say("consumer 1 has taken %d items: starting consumer 2\n", second_joins_after);
            readers.push_back(consumer_process(queue, ledger, 2));
            readers[1].start();
        } else {
            check(false, "FAIL: consumer 1 did not take %d items within 60 s\n", second_joins_after);
        }

        // The producer is done, then no more puts: the consumers drain the queue and stop. Closed
        // even if the producer failed, so that no consumer waits for good.
        const bool producer_joined = demo::join_all(producer);
        queue.close();
        demo::say("main: producer finished, queue closed with %zu items left\n", queue.size());
        const bool readers_joined = demo::join_all(readers);
        if (!producer_joined || !readers_joined) return 1;
        const double elapsed = clock.seconds();

        check(producer[0].exitcode() == 0, "FAIL: the producer exited with code %d\n", producer[0].exitcode().value());
        for (auto& r : readers)
            check(r.exitcode() == 0, "FAIL: %s exited with code %d\n", r.name().c_str(), r.exitcode().value());

        for (int i = 0; i < items; ++i)
            check(ledger.times_taken[demo::at(i)] == 1, "FAIL: item %d was taken %d times\n", i, ledger.times_taken[demo::at(i)]);
        int total = 0;
        for (int c = 0; c < consumers; ++c) {
            const int n = ledger.count[demo::at(c)];
            total += n;
            for (int k = 1; k < n && k < items; ++k) {
                const int before = ledger.taken[demo::at(c * items + k - 1)], now = ledger.taken[demo::at(c * items + k)];
                check(before < now, "FAIL: consumer %d took %d after %d\n", c + 1, now, before);
            }
        }
        check(total == items, "FAIL: %d items taken in all, expected %d\n", total, items);

        if (mismatches != 0) {
            demo::say("FAIL: %d mismatches\n", mismatches);
            return 1;
        }
        demo::say("all %d items consumed once, in order (consumer 1: %d, consumer 2: %d) in %.1f s\n", items,
                  ledger.count[0], ledger.count[1], elapsed);
        return 0;
    });
}
