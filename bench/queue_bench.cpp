// queue_bench.cpp — mproc::Queue<T> throughput between processes, against Boost.Interprocess
// message_queue (same shapes) and, for one producer and one consumer, a raw lock-free single-producer
// single-consumer ring in MAP_SHARED memory (the upper bound: no locks, no sleeping, no framing).
//
// Reference numbers on a 2-core VM of the kind this is developed on, 64-byte messages, 1 -> 1: a raw
// lock-free shared-memory ring ~33 M msg/s, Boost message_queue ~6.5 M msg/s, Python's
// multiprocessing.Queue ~0.18 M msg/s.
//
// Shape of every case: the benchmark thread is a consumer; forked helpers (a raw fork(), the same on
// every side) are the producers and, for 2 -> 2, the second consumer. An iteration is `batch`
// messages, so real time per iteration is time per batch and items_per_second is messages per second.
// Google Benchmark fixes the iteration count of a run before the run starts (state.max_iterations),
// so the producers are told exactly how many messages to send; they start when the first iteration
// starts (before that they spin on `go`), and every message is accounted for: a message carries its
// producer and sequence number, each consumer checks that a producer's numbers arrive in order, and
// the run fails (SkipWithError) unless every producer's messages arrived exactly once. Helpers are
// always reaped.
//
// The payload is std::array<std::byte, N>: trivially copyable, so the codec moves it with one memcpy
// of N bytes each way, like the baselines. Every side has room for at least `slots` messages.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <mproc/queue.hpp>

#include "bench_support.hpp"

namespace {

using mproc_bench::RawShared;

template <std::size_t N>
using Payload = std::array<std::byte, N>;

constexpr std::size_t slots = 1024; // messages of room in every queue (Boost's max_num_msg)
constexpr long batch = 1024;        // messages per iteration

// ---- the three queues, behind one interface -------------------------------------------------------
//
// Each is constructed before the fork and then used from both processes; only the benchmark process
// destroys it (helpers leave with _exit).

/// mproc::Queue with a ring of at least `slots` records (8-byte record header + payload).
template <std::size_t N>
class MprocQueue {
public:
    static constexpr const char* name = "mproc";
    void send(const Payload<N>& m) { q_.put(m); }
    void receive(Payload<N>& m) { m = q_.get(); }

private:
    mproc::Queue<Payload<N>> q_{mproc::QueueOptions{.maxsize = 0, .capacity_bytes = slots * (N + 8)}};
};

// The Boost queue lives in /dev/shm under a name. The watchdog (below) removes it if it fires.
char boost_shm_path[64] = "";

/// boost::interprocess::message_queue, `slots` messages of N bytes, all at priority 0.
template <std::size_t N>
class BoostQueue {
public:
    static constexpr const char* name = "boost";
    BoostQueue() {
        static int serial = 0;
        std::snprintf(name_, sizeof name_, "mproc_bench_%d_%d", static_cast<int>(::getpid()), serial++);
        boost::interprocess::message_queue::remove(name_);
        mq_.emplace(boost::interprocess::create_only, name_, slots, N);
        std::snprintf(boost_shm_path, sizeof boost_shm_path, "/dev/shm/%s", name_);
    }
    ~BoostQueue() {
        mq_.reset();
        boost::interprocess::message_queue::remove(name_);
        boost_shm_path[0] = '\0';
    }
    BoostQueue(const BoostQueue&) = delete;
    BoostQueue& operator=(const BoostQueue&) = delete;

    void send(const Payload<N>& m) { mq_->send(m.data(), N, 0); }
    void receive(Payload<N>& m) {
        boost::interprocess::message_queue::size_type got = 0;
        unsigned priority = 0;
        mq_->receive(m.data(), N, got, priority);
        if (got != N) throw std::runtime_error("boost message_queue: short message");
    }

private:
    char name_[48];
    std::optional<boost::interprocess::message_queue> mq_;
};

/// The raw upper bound: a lock-free single-producer single-consumer ring of `slots` fixed-size slots
/// in one mmap(MAP_SHARED | MAP_ANONYMOUS), head and tail on lines of their own, each side keeping a
/// private copy of the other's index (rigtorp/SPSCQueue) so that it reads the shared one only when the
/// ring looks full or empty. A waiting side spins (pause) and, after ~128 spins, yields the CPU at each
/// further look, so that on a loaded machine it does not sit on a core the other side needs.
template <std::size_t N>
class SpscRing {
public:
    static constexpr const char* name = "raw";
    SpscRing() {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        c_ = new (p) Control;
        slots_ = reinterpret_cast<std::byte*>(c_ + 1);
    }
    ~SpscRing() { ::munmap(c_, bytes); }
    SpscRing(const SpscRing&) = delete;
    SpscRing& operator=(const SpscRing&) = delete;

    void send(const Payload<N>& m) {
        const std::uint64_t tail = c_->tail.load(std::memory_order_relaxed);
        for (int spins = 0; tail - c_->head_cache == slots; ++spins) {
            c_->head_cache = c_->head.load(std::memory_order_acquire);
            relax(spins);
        }
        std::memcpy(slots_ + (tail % slots) * N, m.data(), N);
        c_->tail.store(tail + 1, std::memory_order_release);
    }
    void receive(Payload<N>& m) {
        const std::uint64_t head = c_->head.load(std::memory_order_relaxed);
        for (int spins = 0; head == c_->tail_cache; ++spins) {
            c_->tail_cache = c_->tail.load(std::memory_order_acquire);
            relax(spins);
        }
        std::memcpy(m.data(), slots_ + (head % slots) * N, N);
        c_->head.store(head + 1, std::memory_order_release);
    }

private:
    struct Control {
        alignas(64) std::atomic<std::uint64_t> tail{0}; // written by the producer
        alignas(64) std::uint64_t head_cache = 0;        // the producer's copy of head
        alignas(64) std::atomic<std::uint64_t> head{0}; // written by the consumer
        alignas(64) std::uint64_t tail_cache = 0;        // the consumer's copy of tail
    };
    static constexpr std::size_t bytes = (sizeof(Control) + slots * N + 4095) & ~std::size_t{4095};

    static void relax(int spins) noexcept {
        if (spins >= 128) {
            ::sched_yield();
        } else {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            asm volatile("yield");
#endif
        }
    }

    Control* c_;
    std::byte* slots_;
};

// ---- accounting -----------------------------------------------------------------------------------

constexpr int max_producers = 2;

/// What one consumer saw: per producer, how many messages and the sum of their sequence numbers, and
/// whether each producer's numbers arrived in increasing order.
struct Tally {
    std::uint64_t count[max_producers] = {};
    std::uint64_t sum[max_producers] = {};
    std::uint64_t next[max_producers] = {}; // the smallest sequence number still acceptable
    bool in_order = true;

    // Inlined into the receive loop of every side alike: two compares and three adds.
    void add(const std::byte* message) noexcept {
        std::uint64_t word;
        std::memcpy(&word, message, sizeof word);
        const std::uint64_t p = word >> 32, seq = word & 0xffffffffu;
        if (p >= max_producers || seq < next[p]) [[unlikely]] {
            in_order = false;
            return;
        }
        next[p] = seq + 1;
        ++count[p];
        sum[p] += seq;
    }
    void merge(const Tally& o) noexcept {
        for (int p = 0; p < max_producers; ++p) {
            count[p] += o.count[p];
            sum[p] += o.sum[p];
        }
        in_order = in_order && o.in_order;
    }
    /// Every producer's messages 0..per_producer-1 arrived exactly once.
    bool complete(int producers, std::uint64_t per_producer) const noexcept {
        if (!in_order) return false;
        for (int p = 0; p < max_producers; ++p) {
            const std::uint64_t n = p < producers ? per_producer : 0;
            if (count[p] != n || sum[p] != (n == 0 ? 0 : n * (n - 1) / 2)) return false;
        }
        return true;
    }
};

/// Shared by the benchmark process and its helpers; flags on lines of their own.
struct RunControl {
    alignas(64) std::atomic<int> ready{0}; // helpers that have started
    alignas(64) std::atomic<int> go{0};    // set when timing starts
    alignas(64) std::atomic<int> helper_consumer_done{0};
    Tally helper_consumer; // written by the helper consumer before it sets helper_consumer_done
};

template <std::size_t N>
void produce(auto& queue, RunControl& ctl, std::uint64_t producer, std::uint64_t messages) {
    Payload<N> m{};
    ctl.ready.fetch_add(1);
    while (ctl.go.load(std::memory_order_acquire) == 0) std::this_thread::yield();
    for (std::uint64_t i = 0; i < messages; ++i) {
        const std::uint64_t word = producer << 32 | i;
        std::memcpy(m.data(), &word, sizeof word);
        queue.send(m);
    }
}

// ---- helpers and watchdog -------------------------------------------------------------------------

/// Forked helpers of one run. Whatever happens, none outlives the run: the destructor kills and reaps
/// those not reaped yet.
class Helpers {
public:
    Helpers() = default;
    Helpers(const Helpers&) = delete;
    Helpers& operator=(const Helpers&) = delete;
    ~Helpers() {
        for (pid_t pid : pids_) {
            ::kill(pid, SIGKILL);
            mproc_bench::reap(pid);
        }
    }

    template <class Body>
    bool start(benchmark::State& state, Body&& body) {
        const pid_t pid = mproc_bench::fork_helper(std::forward<Body>(body));
        if (pid < 0) {
            state.SkipWithError(("fork failed: " + std::string(std::strerror(errno))).c_str());
            return false;
        }
        pids_.push_back(pid);
        return true;
    }

    /// Waits (up to 30 s) until `n` helpers have counted themselves in `ready`.
    bool await_ready(benchmark::State& state, const std::atomic<int>& ready, int n) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (ready.load(std::memory_order_acquire) < n) {
            if (std::chrono::steady_clock::now() > until) {
                state.SkipWithError("the helper processes did not start within 30 s");
                return false;
            }
            std::this_thread::yield();
        }
        return true;
    }

    /// Reaps every helper; false (and the run is failed) unless all exited with 0.
    bool reap_all(benchmark::State& state) {
        bool ok = true;
        for (pid_t pid : pids_) {
            const int status = mproc_bench::reap(pid);
            ok = ok && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        pids_.clear();
        if (!ok) state.SkipWithError("a helper process failed");
        return ok;
    }

private:
    std::vector<pid_t> pids_;
};

/// A helper that dies (or a queue bug) would leave the benchmark thread blocked in receive() for
/// ever. The watchdog ends the process instead, with a message, if a run makes no progress for
/// `limit_s` seconds; helpers die with it (PR_SET_PDEATHSIG) and the Boost queue's name is removed.
class Watchdog {
public:
    static constexpr unsigned limit_s = 60;
    Watchdog() {
        struct sigaction sa {};
        sa.sa_handler = &Watchdog::fire;
        ::sigaction(SIGALRM, &sa, nullptr);
        ::alarm(limit_s);
    }
    ~Watchdog() { ::alarm(0); }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    /// Called every 64 iterations: one cheap system call per 64 batches.
    static void progress(long iteration) noexcept {
        if (iteration % 64 == 0) ::alarm(limit_s);
    }

private:
    static void fire(int) {
        static constexpr char msg[] = "mproc_bench: a queue benchmark made no progress for 60 s; giving up\n";
        [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, msg, sizeof msg - 1);
        if (boost_shm_path[0] != '\0') ::unlink(boost_shm_path);
        ::_exit(2);
    }
};

/// Where the processes of a run execute. Unpinned, the scheduler sometimes runs producer and consumer
/// on one CPU, taking turns (a full ring, then an empty one), and sometimes on two, in parallel; the
/// two regimes differ by up to 10x, differently for each queue, and the regime changes from one
/// repetition to the next. So every process is pinned: the benchmark thread (a consumer) to the
/// first CPU it may use, helper k to the (k+1)-th, round robin. On 2 CPUs, 1 -> 1 runs producer and
/// consumer in parallel, and 2 -> 2 puts one producer and one consumer on each CPU. The benchmark
/// thread's affinity is restored afterwards.
class CpuPlan {
public:
    CpuPlan() {
        if (::sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
        for (std::size_t c = 0; c < CPU_SETSIZE; ++c) // glibc's CPU_ macros take size_t
            if (CPU_ISSET(c, &saved_)) cpus_.push_back(c);
        if (!cpus_.empty()) pinned_ = pin(0);
    }
    ~CpuPlan() {
        if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
    }
    CpuPlan(const CpuPlan&) = delete;
    CpuPlan& operator=(const CpuPlan&) = delete;

    /// Called first thing in helper `k` (0, 1, ...).
    void pin_helper(int k) const noexcept {
        if (pinned_) pin(k + 1);
    }

private:
    bool pin(int slot) const noexcept {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus_[static_cast<std::size_t>(slot) % cpus_.size()], &one);
        return ::sched_setaffinity(0, sizeof one, &one) == 0;
    }

    cpu_set_t saved_{};
    std::vector<std::size_t> cpus_;
    bool pinned_ = false;
};

// ---- the cases --------------------------------------------------------------------------------------

void report(benchmark::State& state) {
    state.SetItemsProcessed(state.iterations() * batch);
}

/// One producer process -> the benchmark thread.
template <class Queue, std::size_t N>
void one_to_one(benchmark::State& state) {
    static_assert(N >= 8, "the message carries an 8-byte sequence word");
    Watchdog watchdog;
    const CpuPlan cpus;
    try {
        Queue queue;
        RawShared<RunControl> ctl;
        const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations) * batch;
        Helpers helpers;
        if (!helpers.start(state, [&] {
                cpus.pin_helper(0);
                produce<N>(queue, *ctl, 0, total);
            }))
            return;
        if (!helpers.await_ready(state, ctl->ready, 1)) return;

        Tally tally;
        Payload<N> m;
        long iteration = 0;
        for (auto _ : state) {
            ctl->go.store(1, std::memory_order_release);
            for (long i = 0; i < batch; ++i) {
                queue.receive(m);
                benchmark::DoNotOptimize(m);
                tally.add(m.data());
            }
            Watchdog::progress(++iteration);
        }
        if (!helpers.reap_all(state)) return;
        if (!tally.complete(1, total)) {
            state.SkipWithError("messages were lost, duplicated or reordered");
            return;
        }
        report(state);
    } catch (const std::exception& e) {
        state.SkipWithError((std::string(Queue::name) + " queue: " + e.what()).c_str());
    }
}

/// Two producer processes -> two consumers: the benchmark thread and a helper process. Each consumer
/// takes exactly half the messages (so neither can be left waiting for a message the other took),
/// the benchmark thread batch/2 per iteration; the last iteration also waits for the helper consumer,
/// so the run's real time covers every message.
template <class Queue, std::size_t N>
void two_to_two(benchmark::State& state) {
    static_assert(N >= 8, "the message carries an 8-byte sequence word");
    Watchdog watchdog;
    const CpuPlan cpus;
    try {
        Queue queue;
        RawShared<RunControl> ctl;
        const std::uint64_t total = static_cast<std::uint64_t>(state.max_iterations) * batch;
        const std::uint64_t half = total / 2;
        Helpers helpers;
        for (std::uint64_t p = 0; p < 2; ++p)
            if (!helpers.start(state, [&] {
                    cpus.pin_helper(static_cast<int>(p));
                    produce<N>(queue, *ctl, p, half);
                }))
                return;
        if (!helpers.start(state, [&] {
                cpus.pin_helper(2);
                Tally tally;
                Payload<N> m;
                ctl->ready.fetch_add(1);
                for (std::uint64_t i = 0; i < half; ++i) {
                    queue.receive(m);
                    benchmark::DoNotOptimize(m);
                    tally.add(m.data());
                }
                ctl->helper_consumer = tally;
                ctl->helper_consumer_done.store(1, std::memory_order_release);
            }))
            return;
        if (!helpers.await_ready(state, ctl->ready, 3)) return;

        Tally tally;
        Payload<N> m;
        long iteration = 0;
        for (auto _ : state) {
            ctl->go.store(1, std::memory_order_release);
            for (long i = 0; i < batch / 2; ++i) {
                queue.receive(m);
                benchmark::DoNotOptimize(m);
                tally.add(m.data());
            }
            if (++iteration == state.max_iterations)
                while (ctl->helper_consumer_done.load(std::memory_order_acquire) == 0) std::this_thread::yield();
            Watchdog::progress(iteration);
        }
        if (!helpers.reap_all(state)) return;
        tally.merge(ctl->helper_consumer);
        if (!tally.complete(2, half)) {
            state.SkipWithError("messages were lost or duplicated");
            return;
        }
        report(state);
    } catch (const std::exception& e) {
        state.SkipWithError((std::string(Queue::name) + " queue: " + e.what()).c_str());
    }
}

#define MPROC_QUEUE_CASE(shape, Queue, n, label)                                                      \
    BENCHMARK_TEMPLATE(shape, Queue<n>, n)->Name(label)->UseRealTime()->Unit(benchmark::kMicrosecond)

MPROC_QUEUE_CASE(one_to_one, MprocQueue, 8, "mproc/Queue_1to1/8");
MPROC_QUEUE_CASE(one_to_one, BoostQueue, 8, "boost/Queue_1to1/8");
MPROC_QUEUE_CASE(one_to_one, SpscRing, 8, "raw/Queue_1to1/8");
MPROC_QUEUE_CASE(one_to_one, MprocQueue, 64, "mproc/Queue_1to1/64");
MPROC_QUEUE_CASE(one_to_one, BoostQueue, 64, "boost/Queue_1to1/64");
MPROC_QUEUE_CASE(one_to_one, SpscRing, 64, "raw/Queue_1to1/64");
MPROC_QUEUE_CASE(one_to_one, MprocQueue, 4096, "mproc/Queue_1to1/4096");
MPROC_QUEUE_CASE(one_to_one, BoostQueue, 4096, "boost/Queue_1to1/4096");
MPROC_QUEUE_CASE(one_to_one, SpscRing, 4096, "raw/Queue_1to1/4096");
MPROC_QUEUE_CASE(two_to_two, MprocQueue, 64, "mproc/Queue_2to2/64");
MPROC_QUEUE_CASE(two_to_two, BoostQueue, 64, "boost/Queue_2to2/64");

} // namespace
