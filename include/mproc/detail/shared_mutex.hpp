// The robust process-shared pthread mutex under Lock and RLock (sync.hpp), and under the named
// containers' lock (shm_store.hpp): in the arena, or placed in memory a named segment owns.
#pragma once

#include <pthread.h>
#include <string>

#include "chrono.hpp"
#include "../errors.hpp"
#include "arena.hpp"
#include "deadline.hpp"
#include "posix/mutex.hpp"

namespace mproc::detail {

/// A robust process-shared pthread mutex in the arena; the shared core of Lock and RLock.
class SharedMutex {
public:
    SharedMutex(const SharedMutex&) = delete;
    SharedMutex& operator=(const SharedMutex&) = delete;

protected:
    SharedMutex(bool recursive, const char* kind) : kind_(kind) {
        mutex_ = shared_new<pthread_mutex_t>();
        try {
            posix::robust_mutex_init(mutex_, recursive);
        } catch (...) {
            shared_delete(mutex_);
            throw;
        }
    }
    /// Over a mutex in caller-provided memory that outlives this object (a named segment): it is
    /// initialised there when `initialise`, otherwise the one another process initialised is used.
    /// Never destroyed or freed here, as other processes may go on using it.
    SharedMutex(pthread_mutex_t* placed, bool initialise, bool recursive, const char* kind)
        : mutex_(placed), kind_(kind), owned_(false) {
        if (initialise) posix::robust_mutex_init(mutex_, recursive);
    }
    ~SharedMutex() {
        if (!owned_) return;
        posix::robust_mutex_destroy(mutex_);
        shared_delete(mutex_);
    }

public:
    /// Blocks until acquired. Throws OwnerDied (lock released, retry) if the previous holder died
    /// holding it; for a Lock, StateError if this thread already holds it.
    void lock() { settle(posix::robust_mutex_lock(mutex_), "lock"); }
    /// Never blocks; false if another thread or process holds it. Throws as lock().
    bool try_lock() { return settle(posix::robust_mutex_try_lock(mutex_), "try_lock"); }
    /// Blocks up to `d`; false on timeout. Throws as lock().
    template <class Rep, class Period>
    bool try_lock_for(std::chrono::duration<Rep, Period> d) { return lock_until(Deadline::after(d), "try_lock_for"); }
    /// Blocks until `t`; false on timeout. Throws as lock().
    template <class C, class D>
    bool try_lock_until(std::chrono::time_point<C, D> t) { return lock_until(Deadline::until(t), "try_lock_until"); }
    /// Throws StateError if the calling thread does not hold the lock.
    void unlock() {
        if (!posix::robust_mutex_unlock(mutex_))
            throw StateError(std::string(kind_) + "::unlock: the calling thread does not hold the lock");
    }

    /// Whether any thread of any process holds the lock now (Python's locked()): a snapshot that
    /// neither takes the lock nor disturbs its holder. True for the caller's own hold too; false once
    /// a holder died (the next lock call then throws OwnerDied). Never blocks or throws.
    bool locked() const noexcept { return posix::robust_mutex_held(mutex_); }

    /// The underlying pthread mutex (robust, process-shared), for interoperation.
    pthread_mutex_t* native_handle() noexcept { return mutex_; }

private:
    bool lock_until(Deadline d, const char* op) { return settle(posix::robust_mutex_lock_until(mutex_, d), op); }
    bool settle(posix::LockResult r, const char* op) {
        switch (r) {
        case posix::LockResult::acquired: return true;
        case posix::LockResult::timed_out: return false;
        case posix::LockResult::already_owned:
            throw StateError(std::string(kind_) + "::" + op + ": the calling thread already holds this lock (it would deadlock)");
        case posix::LockResult::owner_died:
            posix::robust_mutex_unlock(mutex_);
            throw OwnerDied(std::string(kind_) + "::" + op +
                            ": the previous holder died while holding the lock; it has been released and is usable "
                            "again, but the data it protected may be inconsistent");
        }
        return false;
    }

    pthread_mutex_t* mutex_;
    const char* kind_;
    bool owned_ = true;
};

} // namespace mproc::detail
