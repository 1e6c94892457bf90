// mproc/sync.hpp — process-shared Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier.
//
// Every object here keeps its state in the shared arena (detail/arena.hpp), so it must be constructed
// before the fork of the processes that use it; they reach it by reference. None is copyable or
// movable. All calls are safe from several processes and several threads at once.
//
// Holder death. Lock and RLock sit on robust pthread mutexes: when a process (or thread) dies holding
// one, the next locker is told by the kernel. mproc then marks the mutex consistent, releases it and
// throws OwnerDied from that lock call; the lock is usable again at once (retry), and the exception
// warns that the data it guarded may be half-updated. Internal mutexes of Condition and Barrier are
// robust too, so no mproc call ever hangs because a process died inside it. A Semaphore has no owner
// (any process may release it, as in Python and POSIX), so permits held by a process that dies are
// not returned: bound such waits with try_acquire_for, or guard critical sections with a Lock.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <string>

#include "detail/algorithm.hpp"
#include "detail/chrono.hpp"
#include "detail/functional.hpp"
#include "detail/placement.hpp"
#include "detail/deadline.hpp"
#include "detail/wait.hpp"
#include "detail/posix/mutex.hpp"
#include "detail/shared_layout.hpp"
#include "detail/shared_mutex.hpp"
#include "errors.hpp"

namespace mproc {

/// A non-recursive process-shared mutex (Python's multiprocessing.Lock). Meets the standard
/// TimedLockable requirements, so std::lock_guard, std::unique_lock and std::scoped_lock work:
/// lock(), try_lock(), try_lock_for(d), try_lock_until(t), unlock(), as documented on SharedMutex.
class Lock : public detail::SharedMutex {
public:
    /// Throws OSError if the arena cannot grow.
    Lock() : SharedMutex(detail::Placement::arena(), false, "Lock") {}

protected:
    /// Over a mutex placed elsewhere (NamedLock); `kind` names the class in error messages.
    Lock(detail::Placement p, const char* kind) : SharedMutex(p, false, kind) {}
};

/// A re-entrant process-shared mutex (Python's RLock): its owner may lock it again and must unlock
/// it as many times. Same calls and errors as Lock, except that relocking by the owner is allowed.
class RLock : public detail::SharedMutex {
public:
    RLock() : SharedMutex(detail::Placement::arena(), true, "RLock") {}
};

/// A counting semaphore (Python's multiprocessing.Semaphore). Lock-free when a permit is free; sleeps
/// on a futex otherwise. It has no owner: any process may release.
class Semaphore {
public:
    /// Throws ValueError if `initial` is negative or too large.
    explicit Semaphore(std::ptrdiff_t initial = 1) : Semaphore(initial, "Semaphore") {}
    Semaphore(const Semaphore&) = delete;
    Semaphore& operator=(const Semaphore&) = delete;

    /// Blocks until a permit is free and takes it.
    void acquire() { acquire_until(detail::Deadline::never()); }
    /// Takes a permit if one is free; never blocks.
    bool try_acquire() {
        std::uint32_t v = s_->count.load();
        while (v != 0)
            if (s_->count.compare_exchange_weak(v, v - 1)) return true;
        return false;
    }
    /// Blocks up to `d`; false if no permit came free in time.
    template <class Rep, class Period>
    bool try_acquire_for(std::chrono::duration<Rep, Period> d) { return acquire_until(detail::Deadline::after(d)); }
    template <class C, class D>
    bool try_acquire_until(std::chrono::time_point<C, D> t) { return acquire_until(detail::Deadline::until(t)); }

    /// Returns `k` permits, waking up to `k` waiters. Throws ValueError if k < 1.
    void release(std::ptrdiff_t k = 1) {
        if (k < 1) throw ValueError(std::string(kind_) + "::release: count must be at least 1, got " + std::to_string(k));
        std::uint32_t v = s_->count.load();
        for (;;) {
            if (static_cast<std::uint64_t>(v) + static_cast<std::uint64_t>(k) > limit_)
                throw ValueError(std::string(kind_) + "::release: releasing " + std::to_string(k) + " would raise the value " +
                                 std::to_string(v) + " past its limit " + std::to_string(limit_));
            if (s_->count.compare_exchange_weak(v, v + static_cast<std::uint32_t>(k))) break;
        }
        detail::notify(s_->q, static_cast<int>(std::min<std::ptrdiff_t>(k, INT32_MAX)));
    }

    /// The number of free permits now (a snapshot).
    std::ptrdiff_t value() const noexcept { return s_->count.load(); }

    // Lockable, so std::lock_guard and std::scoped_lock take a permit for a scope.
    void lock() { acquire(); }
    bool try_lock() { return try_acquire(); }
    void unlock() { release(); }

protected:
    Semaphore(std::ptrdiff_t initial, const char* kind, std::uint64_t limit = max_value)
        : Semaphore(detail::Placement::arena(), initial, kind, limit) {}
    /// Placed as `p` says (NamedSemaphore: state_size() bytes aligned to state_alignment() in its
    /// segment); `initial` is checked and used only where the state is built.
    Semaphore(detail::Placement p, std::ptrdiff_t initial, const char* kind, std::uint64_t limit = max_value)
        : s_(p, p.builds() ? check_initial(initial, kind) : 0), limit_(limit), kind_(kind) {}
    static constexpr std::size_t state_size() noexcept { return sizeof(State); }
    static constexpr std::size_t state_alignment() noexcept { return alignof(State); }

private:
    static constexpr std::uint64_t max_value = INT32_MAX;
    struct State {
        explicit State(std::uint32_t v) : count(v) {}
        std::atomic<std::uint32_t> count;
        detail::WaitQueue q;
    };
    // Placed in the arena, or in a named segment (state_size(), state_alignment()) that programs built
    // apart map as well: a fixed layout, no stricter alignment than a segment's payload (64 bytes).
    static_assert(detail::shareable_layout<State> && alignof(State) <= 64 && offsetof(State, q) == 4 && sizeof(State) == 12);

    static std::uint32_t check_initial(std::ptrdiff_t initial, const char* kind) {
        if (initial < 0 || static_cast<std::uint64_t>(initial) > max_value)
            throw ValueError(std::string(kind) + ": initial value must be in [0, " + std::to_string(max_value) + "], got " +
                             std::to_string(initial));
        return static_cast<std::uint32_t>(initial);
    }

    bool acquire_until(detail::Deadline d) {
        for (;;) {
            if (try_acquire()) return true;
            if (!detail::await([this] { return s_->count.load() != 0; }, s_->q, d)) return try_acquire();
        }
    }

    detail::SharedBlock<State> s_;
    std::uint64_t limit_;
    const char* kind_;
};

/// A Semaphore whose release() past the initial value throws ValueError (Python's BoundedSemaphore).
class BoundedSemaphore : public Semaphore {
public:
    explicit BoundedSemaphore(std::ptrdiff_t initial = 1)
        : Semaphore(initial, "BoundedSemaphore", static_cast<std::uint64_t>(initial < 0 ? 0 : initial)) {}
};

/// A flag that processes can wait for (Python's multiprocessing.Event).
class Event {
public:
    Event() = default;
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;

    /// Sets the flag and wakes every waiter.
    void set() {
        s_->flag.store(1);
        detail::notify(s_->q);
    }
    void clear() noexcept { s_->flag.store(0); }
    bool is_set() const noexcept { return s_->flag.load() != 0; }
    /// Blocks until the flag is set.
    void wait() const { wait_until(detail::Deadline::never()); }
    /// Blocks up to `d`; returns whether the flag is set.
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> d) const { return wait_until(detail::Deadline::after(d)); }

private:
    struct State {
        std::atomic<std::uint32_t> flag{0};
        detail::WaitQueue q;
    };
    static_assert(detail::shareable_layout<State> && offsetof(State, q) == 4 && sizeof(State) == 12);
    bool wait_until(detail::Deadline d) const {
        return detail::await([this] { return is_set(); }, s_->q, d);
    }
    detail::SharedBlock<State> s_;
};

/// A condition variable for processes, used with std::unique_lock<mproc::Lock>.
/// A wait returns true only once a notify reached it (no spurious wake-ups), false on timeout; the
/// predicate forms are still the robust way to wait for a state.
class Condition {
public:
    /// A condition with a Lock of its own (get_lock()), as Python's Condition() makes.
    Condition() : own_lock_(std::make_unique<Lock>()), lock_(own_lock_.get()) {}
    /// A condition over an existing Lock, which must outlive it.
    explicit Condition(Lock& lock) : lock_(&lock) {}
    Condition(const Condition&) = delete;
    Condition& operator=(const Condition&) = delete;

    Lock& get_lock() noexcept { return *lock_; }

    /// Releases `lk`, sleeps until notified, relocks. Throws StateError if `lk` does not hold its lock;
    /// OwnerDied from the relock if a holder died meanwhile (then `lk` does not own the lock).
    void wait(std::unique_lock<Lock>& lk) { wait_until(lk, detail::Deadline::never()); }
    template <class Pred>
    void wait(std::unique_lock<Lock>& lk, Pred pred) {
        while (!pred()) wait(lk);
    }
    /// Returns false if `d` passed without a notification.
    template <class Rep, class Period>
    bool wait_for(std::unique_lock<Lock>& lk, std::chrono::duration<Rep, Period> d) {
        return wait_until(lk, detail::Deadline::after(d));
    }
    /// Returns pred() as it stands when notified or when `d` has passed.
    template <class Rep, class Period, class Pred>
    bool wait_for(std::unique_lock<Lock>& lk, std::chrono::duration<Rep, Period> d, Pred pred) {
        auto deadline = detail::Deadline::after(d);
        while (!pred())
            if (!wait_until(lk, deadline)) return pred();
        return true;
    }

    /// Wakes at most `n` of the processes waiting now (Python's notify(n)): at most n waits return
    /// true because of it. With nobody waiting it does nothing, as notify(0) does. Need not hold the
    /// lock. Blocks only on a short internal mutex; usable from any process or thread. A waiter that
    /// died while waiting stays counted: a wake-up granted to it is taken by a later waiter instead,
    /// so after such a death one notify may wake up to that many more than n.
    void notify(std::size_t n = 1) {
        Guard g(*s_);
        // Grant at most one wake-up per waiter not yet granted one.
        std::uint64_t grant = std::min<std::uint64_t>(n, s_->started - s_->granted.load());
        if (grant == 0) return;
        s_->granted.fetch_add(grant);
        // Every sleeper is woken and checks for itself: a futex wake of `grant` could pick a waiter
        // that started after this grant and may not take it.
        detail::notify(s_->q);
    }
    /// notify(1).
    void notify_one() { notify(1); }
    /// Wakes every process waiting now.
    void notify_all() { notify(SIZE_MAX); }

private:
    // Wake-ups are counted, as in the classic three-counter condition variable: `started` waits,
    // `granted` wake-ups (by notify), `taken` wake-ups. A waiter may take one only when one is
    // pending (granted > taken) and some was granted after it started (granted != its start), so one
    // notify(n) makes at most n waits return true. A waiter that times out counts itself as granted
    // and taken, so that a later notify is not spent on it.
    struct State {
        State() { detail::posix::robust_mutex_init(&mutex, false); }
        ~State() { detail::posix::robust_mutex_destroy(&mutex); }
        pthread_mutex_t mutex; // guards the counters' updates; `granted` and `taken` are read without it
        std::uint64_t started = 0;
        std::atomic<std::uint64_t> granted{0};
        std::atomic<std::uint64_t> taken{0};
        detail::WaitQueue q;
    };
    static_assert(detail::shareable_layout<State> && offsetof(State, granted) % 8 == 0 && offsetof(State, taken) % 8 == 0);
    struct Guard {
        explicit Guard(State& s) : m(&s.mutex) { detail::posix::robust_mutex_lock(m); }
        ~Guard() { detail::posix::robust_mutex_unlock(m); }
        pthread_mutex_t* m;
    };
    static bool can_take(const State& s, std::uint64_t start) noexcept {
        std::uint64_t g = s.granted.load();
        return g != start && g > s.taken.load();
    }

    bool wait_until(std::unique_lock<Lock>& lk, detail::Deadline d) {
        if (!lk.owns_lock()) throw StateError("Condition::wait: the unique_lock does not hold its Lock");
        // Registering before unlocking closes the lost-wake-up window: a notify made after the unlock
        // counts this waiter.
        std::uint64_t start;
        {
            Guard g(*s_);
            ++s_->started;
            start = s_->granted.load();
        }
        lk.unlock();
        bool notified = false;
        for (;;) {
            bool in_time = detail::await([&] { return can_take(*s_, start); }, s_->q, d);
            Guard g(*s_);
            if (can_take(*s_, start)) {
                s_->taken.fetch_add(1);
                notified = true;
                break;
            }
            if (!in_time) {
                s_->granted.fetch_add(1);
                s_->taken.fetch_add(1);
                break;
            }
        }
        lk.lock();
        return notified;
    }

    detail::SharedBlock<State> s_;
    std::unique_ptr<Lock> own_lock_;
    Lock* lock_;
};

/// A barrier for `parties` processes (Python's multiprocessing.Barrier), reusable after it trips.
class Barrier {
public:
    /// Throws ValueError if parties < 1.
    explicit Barrier(std::size_t parties) : s_(check_parties(parties)) {}
    /// With an action (Python's `action`): when the barrier trips, the party that arrived last runs
    /// `action()` in its own process (its copy of the callable, as of that process's fork), before any
    /// party is released. If it throws, the barrier breaks: that party gets the action's exception,
    /// the others BrokenBarrier. The action must not call this barrier (StateError, and it breaks).
    /// An empty function means no action.
    Barrier(std::size_t parties, std::function<void()> action) : s_(check_parties(parties)), action_(std::move(action)) {}
    /// With an action (may be empty) and Python's `timeout`: wait() without a duration waits at most
    /// `default_timeout`, and its expiry breaks the barrier (BrokenBarrier for every party). Throws
    /// ValueError if `default_timeout` is negative.
    template <class Rep, class Period>
    Barrier(std::size_t parties, std::function<void()> action, std::chrono::duration<Rep, Period> default_timeout)
        : Barrier(parties, std::move(action)) {
        if (default_timeout < default_timeout.zero())
            throw ValueError("Barrier: the default timeout must not be negative, got " +
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(default_timeout).count()) +
                             " ms");
        default_timeout_ = std::chrono::duration_cast<detail::Clock::duration>(default_timeout);
    }
    Barrier(const Barrier&) = delete;
    Barrier& operator=(const Barrier&) = delete;

    /// Blocks until all parties have arrived (at most the default timeout, if one was given);
    /// returns this party's arrival index 0..parties-1. Throws BrokenBarrier if the barrier is or
    /// becomes broken (abort(), reset(), a party's timeout, a failed action, the default timeout's
    /// expiry, which breaks it); the party that ran a failing action gets that action's exception.
    std::size_t wait() {
        if (!default_timeout_) return *wait_until(detail::Deadline::never());
        if (auto index = wait_until(detail::Deadline::after(*default_timeout_))) return *index;
        throw BrokenBarrier("Barrier::wait: the default timeout expired before every party arrived; the barrier is broken");
    }
    /// As wait(), but gives up after `d`: then the barrier breaks (as in Python, so that the other
    /// parties do not wait for one that left) and nullopt is returned.
    template <class Rep, class Period>
    std::optional<std::size_t> wait_for(std::chrono::duration<Rep, Period> d) {
        return wait_until(detail::Deadline::after(d));
    }
    /// Breaks the barrier: current and future waiters get BrokenBarrier until reset().
    void abort() {
        Guard g(*this);
        break_locked();
    }
    /// Returns the barrier to its initial state. Parties waiting now get BrokenBarrier; new arrivals
    /// wait for them to leave first.
    void reset() {
        Guard g(*this);
        if (s_->inside == 0) {
            start_generation();
        } else {
            s_->resetting = true;
            break_locked();
        }
    }
    bool broken() {
        Guard g(*this);
        return (s_->word.load() & 1u) != 0 && !s_->resetting;
    }
    std::size_t parties() const noexcept { return s_->parties; }
    /// The number of parties waiting now (a snapshot).
    std::size_t n_waiting() {
        Guard g(*this);
        return s_->resetting ? 0 : s_->inside;
    }

private:
    struct State {
        explicit State(std::size_t n) : parties(n) { detail::posix::robust_mutex_init(&mutex, false); }
        ~State() { detail::posix::robust_mutex_destroy(&mutex); }
        pthread_mutex_t mutex;
        std::size_t parties;
        std::size_t inside = 0;  // parties waiting in the current generation
        bool resetting = false;  // reset() while parties were inside: it completes when they have left
        std::atomic<std::uint32_t> word{0}; // generation << 1 | broken
        detail::WaitQueue q;
    };
    static_assert(detail::shareable_layout<State> && offsetof(State, q) == offsetof(State, word) + 4);
    struct Guard {
        explicit Guard(Barrier& b) : m(&b.s_->mutex) {
            // Only the action, which runs under this mutex, can call in holding it already.
            if (detail::posix::robust_mutex_lock(m) == detail::posix::LockResult::already_owned)
                throw StateError("Barrier: called from its own action (the action must not use the barrier)");
        }
        ~Guard() { detail::posix::robust_mutex_unlock(m); }
        pthread_mutex_t* m;
    };

    static std::size_t check_parties(std::size_t n) {
        if (n < 1 || n > UINT32_MAX) throw ValueError("Barrier: parties must be in [1, 2^32), got " + std::to_string(n));
        return n;
    }
    void break_locked() {
        s_->word.fetch_or(1u);
        detail::notify(s_->q);
    }
    void start_generation() {
        s_->inside = 0;
        s_->resetting = false;
        s_->word.store((s_->word.load() | 1u) + 1u); // next generation, not broken
        detail::notify(s_->q);
    }
    [[noreturn]] void leave_broken() {
        if (--s_->inside == 0 && s_->resetting) start_generation();
        throw BrokenBarrier("Barrier::wait: the barrier is broken");
    }

    std::optional<std::size_t> wait_until(detail::Deadline d) {
        std::uint32_t word;
        std::size_t index;
        {
            Guard g(*this);
            // A reset() in progress: let the parties of the broken generation leave first.
            while (s_->resetting) {
                std::uint32_t w = s_->word.load();
                detail::posix::robust_mutex_unlock(g.m);
                bool in_time = detail::await([&] { return s_->word.load() != w; }, s_->q, d);
                detail::posix::robust_mutex_lock(g.m);
                if (!in_time && s_->resetting) return std::nullopt;
            }
            word = s_->word.load();
            if (word & 1u) throw BrokenBarrier("Barrier::wait: the barrier is broken");
            index = s_->inside++;
            if (s_->inside == s_->parties) {
                // The action runs under the mutex, as Python's runs under the barrier's lock: nobody
                // can reset or abort the generation it belongs to while it runs.
                if (action_) {
                    try {
                        action_();
                    } catch (...) {
                        break_locked();
                        --s_->inside;
                        throw;
                    }
                }
                start_generation();
                return index;
            }
        }
        for (;;) {
            bool in_time = detail::await([&] { return s_->word.load() != word; }, s_->q, d);
            std::uint32_t now = s_->word.load();
            if (now == word && in_time) continue;
            Guard g(*this);
            now = s_->word.load();
            if ((now >> 1) != (word >> 1)) return index; // our generation tripped
            if (now & 1u) leave_broken();
            // Timed out in the generation we joined: leave it broken for the others, as Python does.
            break_locked();
            if (--s_->inside == 0 && s_->resetting) start_generation();
            return std::nullopt;
        }
    }

    detail::SharedBlock<State> s_;
    std::function<void()> action_;
    std::optional<detail::Clock::duration> default_timeout_;
};

} // namespace mproc
