// bench_support.hpp — the raw OS side of every benchmark pair, and the fork/reap plumbing that the
// two-process cases share. Everything here is deliberately plain POSIX: it is the baseline mproc is
// measured against, so it must not use mproc itself.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <new>
#include <pthread.h>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include <benchmark/benchmark.h>

namespace mproc_bench {

/// One T in its own mmap(MAP_SHARED | MAP_ANONYMOUS) mapping, so it is shared with every child forked
/// after construction. Page-aligned, hence alone on its cache line(s): the best case a careful raw
/// programmer gets.
template <class T>
class RawShared {
public:
    template <class... Args>
    explicit RawShared(Args&&... args) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        p_ = new (p) T(std::forward<Args>(args)...);
    }
    ~RawShared() {
        p_->~T();
        ::munmap(p_, bytes);
    }
    RawShared(const RawShared&) = delete;
    RawShared& operator=(const RawShared&) = delete;
    T* operator->() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    T* get() const noexcept { return p_; }

private:
    static constexpr std::size_t bytes = (sizeof(T) + 4095) & ~std::size_t{4095};
    T* p_;
};

/// The raw baseline of mproc::Lock: a robust, process-shared pthread mutex of the default type,
/// in its own MAP_SHARED page.
class RawRobustMutex {
public:
    RawRobustMutex() {
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(m_.get(), &attr);
        pthread_mutexattr_destroy(&attr);
    }
    ~RawRobustMutex() { pthread_mutex_destroy(m_.get()); }
    RawRobustMutex(const RawRobustMutex&) = delete;
    RawRobustMutex& operator=(const RawRobustMutex&) = delete;

    // Return codes are not checked: this is the floor. A holder's death cannot happen in these
    // benchmarks, but a robust mutex must still be consistent()-ed if it ever did.
    void lock() noexcept {
        if (pthread_mutex_lock(m_.get()) == EOWNERDEAD) pthread_mutex_consistent(m_.get());
    }
    void unlock() noexcept { pthread_mutex_unlock(m_.get()); }

private:
    RawShared<pthread_mutex_t> m_;
};

/// Flags and counters that a benchmark thread and its forked helper share. Each on its own cache
/// line so the plumbing does not disturb what is measured.
struct HelperControl {
    alignas(64) std::atomic<int> ready{0};
    alignas(64) std::atomic<int> stop{0};
    alignas(64) std::atomic<long> ops{0};
};

/// Raw fork of a helper process that runs `body()` and leaves with _exit (0, or 1 if it threw).
/// The helper is SIGKILLed if the benchmark process dies, so a crash never leaves it spinning.
template <class Body>
pid_t fork_helper(Body&& body) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid != 0) return pid; // parent, or -1
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(3);
    int code = 0;
    try {
        body();
    } catch (...) {
        code = 1;
    }
    ::_exit(code);
}

/// waitpid, retried on EINTR. Returns the wait status, or -1 on failure.
inline int reap(pid_t pid) noexcept {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return status;
}

/// Spins (with sleeps) until `flag` is non-zero; false after `limit`.
inline bool await_flag(const std::atomic<int>& flag, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (flag.load(std::memory_order_acquire) == 0) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::yield();
    }
    return true;
}

/// Starts a helper that calls `step()` until told to stop, counting its steps in ctl.ops.
/// Reports through `state` and returns -1 if it could not be started.
template <class Step>
pid_t start_hammer(benchmark::State& state, HelperControl& ctl, Step step) {
    ctl.ready.store(0);
    ctl.stop.store(0);
    ctl.ops.store(0);
    const pid_t pid = fork_helper([&] {
        ctl.ready.store(1, std::memory_order_release);
        long n = 0;
        while (ctl.stop.load(std::memory_order_relaxed) == 0) {
            step();
            ++n;
        }
        ctl.ops.store(n);
    });
    if (pid < 0) {
        state.SkipWithError(("fork failed: " + std::string(std::strerror(errno))).c_str());
        return -1;
    }
    // The helper must be running before timing starts, or the first part of the run is uncontended.
    if (!await_flag(ctl.ready, std::chrono::seconds(30))) {
        ::kill(pid, SIGKILL);
        reap(pid);
        state.SkipWithError("the helper process did not start within 30 s");
        return -1;
    }
    return pid;
}

/// Stops and reaps the helper (no zombies), and reports its share of the work as a counter.
inline void stop_hammer(benchmark::State& state, HelperControl& ctl, pid_t pid) {
    ctl.stop.store(1, std::memory_order_relaxed);
    const int status = reap(pid);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        state.SkipWithError("the helper process failed");
        return;
    }
    const double helper = static_cast<double>(ctl.ops.load());
    const double mine = static_cast<double>(state.iterations());
    // Fraction of all operations done by the helper: ~0.5 means both sides really competed.
    state.counters["helper_share"] = helper / (helper + mine);
}

} // namespace mproc_bench
