// The robust process-shared pthread mutex under Lock and RLock (sync.hpp), and under the named
// containers' lock (shm_store.hpp): in the arena, or placed in a named segment (placement.hpp).
#pragma once

#include <cstddef>
#include <type_traits>
#include <pthread.h>
#include <string>

#include "chrono.hpp"
#include "../errors.hpp"
#include "placement.hpp"
#include "deadline.hpp"
#include "posix/mutex.hpp"

namespace mproc::detail {

/// The state of a SharedMutex: one robust process-shared pthread mutex, nothing else (a named
/// segment's payload, the named containers' control block and the arena all hold it as it is).
struct RobustMutexState {
    explicit RobustMutexState(bool recursive) { posix::robust_mutex_init(&mutex, recursive); }
    ~RobustMutexState() { posix::robust_mutex_destroy(&mutex); }
    RobustMutexState(const RobustMutexState&) = delete;
    RobustMutexState& operator=(const RobustMutexState&) = delete;
    pthread_mutex_t mutex;
};
static_assert(std::is_standard_layout_v<RobustMutexState> && offsetof(RobustMutexState, mutex) == 0 &&
              sizeof(RobustMutexState) == sizeof(pthread_mutex_t));

/// A robust process-shared pthread mutex, placed as `Placement` says; the shared core of Lock and
/// RLock, and the named containers' lock.
class SharedMutex {
public:
    /// `kind` names the owning class in error messages. Throws OSError if the arena cannot grow.
    SharedMutex(Placement p, bool recursive, const char* kind) : m_(p, recursive), kind_(kind) {}
    SharedMutex(const SharedMutex&) = delete;
    SharedMutex& operator=(const SharedMutex&) = delete;
    /// The bytes (aligned to state_alignment()) a placed mutex takes.
    static constexpr std::size_t state_size() noexcept { return sizeof(RobustMutexState); }
    static constexpr std::size_t state_alignment() noexcept { return alignof(RobustMutexState); }

public:
    /// Blocks until acquired. Throws OwnerDied (lock released, retry) if the previous holder died
    /// holding it; for a Lock, StateError if this thread already holds it.
    void lock() { settle(posix::robust_mutex_lock(mutex()), "lock"); }
    /// Never blocks; false if another thread or process holds it. Throws as lock().
    bool try_lock() { return settle(posix::robust_mutex_try_lock(mutex()), "try_lock"); }
    /// Blocks up to `d`; false on timeout. Throws as lock().
    template <class Rep, class Period>
    bool try_lock_for(std::chrono::duration<Rep, Period> d) { return lock_until(Deadline::after(d), "try_lock_for"); }
    /// Blocks until `t`; false on timeout. Throws as lock().
    template <class C, class D>
    bool try_lock_until(std::chrono::time_point<C, D> t) { return lock_until(Deadline::until(t), "try_lock_until"); }
    /// Throws StateError if the calling thread does not hold the lock.
    void unlock() {
        if (!posix::robust_mutex_unlock(mutex()))
            throw StateError(std::string(kind_) + "::unlock: the calling thread does not hold the lock");
    }

    /// Whether any thread of any process holds the lock now (Python's locked()): a snapshot that
    /// neither takes the lock nor disturbs its holder. True for the caller's own hold too; false once
    /// a holder died (the next lock call then throws OwnerDied). Never blocks or throws.
    bool locked() const noexcept { return posix::robust_mutex_held(mutex()); }

    /// The underlying pthread mutex (robust, process-shared), for interoperation.
    pthread_mutex_t* native_handle() noexcept { return &m_->mutex; }

private:
    bool lock_until(Deadline d, const char* op) { return settle(posix::robust_mutex_lock_until(mutex(), d), op); }
    bool settle(posix::LockResult r, const char* op) {
        switch (r) {
        case posix::LockResult::acquired: return true;
        case posix::LockResult::timed_out: return false;
        case posix::LockResult::already_owned:
            throw StateError(std::string(kind_) + "::" + op + ": the calling thread already holds this lock (it would deadlock)");
        case posix::LockResult::owner_died:
            posix::robust_mutex_unlock(mutex());
            throw OwnerDied(std::string(kind_) + "::" + op +
                            ": the previous holder died while holding the lock; it has been released and is usable "
                            "again, but the data it protected may be inconsistent");
        }
        return false;
    }

    pthread_mutex_t* mutex() const noexcept { return &m_->mutex; }

    SharedBlock<RobustMutexState> m_;
    const char* kind_;
};

} // namespace mproc::detail
