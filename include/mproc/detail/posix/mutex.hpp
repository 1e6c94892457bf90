// A robust, process-shared pthread mutex: the kernel tells the next locker when a holder died.
#pragma once

#include <ctime>
#include <pthread.h>

#include "../algorithm.hpp"
#include "../chrono.hpp"
#include "../deadline.hpp"
#include "futex.hpp"
#include "syscall.hpp"

namespace mproc::detail::posix {

enum class LockResult { acquired, owner_died, timed_out, already_owned };

/// Initialises a mutex placed in shared memory. `recursive` picks PTHREAD_MUTEX_RECURSIVE,
/// otherwise PTHREAD_MUTEX_ERRORCHECK, so relocking by the owner reports instead of deadlocking.
inline void robust_mutex_init(pthread_mutex_t* m, bool recursive) {
    pthread_mutexattr_t attr;
    check_pthread("pthread_mutexattr_init", pthread_mutexattr_init(&attr));
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&attr, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    check_pthread("pthread_mutex_init", rc);
}

inline void robust_mutex_destroy(pthread_mutex_t* m) noexcept { pthread_mutex_destroy(m); }

inline LockResult interpret_lock(const char* op, int rc, pthread_mutex_t* m) {
    switch (rc) {
    case 0: return LockResult::acquired;
    case EOWNERDEAD:
        // We hold it now; mark it consistent so it stays usable after we release it.
        pthread_mutex_consistent(m);
        return LockResult::owner_died;
    case ETIMEDOUT:
    case EBUSY: return LockResult::timed_out;
    case EDEADLK: return LockResult::already_owned;
    default: throw_os_error(op, rc);
    }
}

/// How long one sleep inside a lock call lasts before the caller looks at the mutex again.
///
/// A robust mutex can lose a wake-up for good when a process dies: unlock wakes one waiter, and if
/// that waiter is SIGKILLed before it takes the mutex while another process takes it on the fast path
/// (which does not mark the futex as having waiters), nobody is left to wake the remaining waiters.
/// The kernel's robust-list cleanup covers only the case where the mutex is still free at the death.
/// A waiter that sleeps in slices finds the free mutex within one slice instead of never.
inline constexpr std::chrono::milliseconds lock_slice{20};

/// One timed attempt: waits for the mutex until `deadline` (a real one, not never).
inline LockResult robust_mutex_lock_once(pthread_mutex_t* m, Clock::time_point deadline) {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer (gcc 12, clang 14) does not intercept pthread_mutex_clocklock and then reports
    // the unlock of a mutex it never saw locked. Under it, wait on the realtime clock instead.
    auto left = deadline - Clock::now();
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto abs = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) +
               std::max(left, Clock::duration::zero());
    timespec ts = to_timespec(std::chrono::duration_cast<Clock::duration>(abs));
    return interpret_lock("pthread_mutex_timedlock", pthread_mutex_timedlock(m, &ts), m);
#else
    timespec ts = to_timespec(deadline.time_since_epoch());
    return interpret_lock("pthread_mutex_clocklock", pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts), m);
#endif
}

/// Takes the mutex, waiting until `deadline` (timed_out if it passes first), in slices of lock_slice.
inline LockResult robust_mutex_lock_until(pthread_mutex_t* m, Deadline deadline) {
    int rc = pthread_mutex_trylock(m);
    if (rc == 0) [[likely]] return LockResult::acquired;
    if (rc != EBUSY) return interpret_lock("pthread_mutex_trylock", rc, m);
    for (;;) {
        const auto slice_end = Clock::now() + lock_slice;
        const bool last = !deadline.is_never() && deadline.at() <= slice_end;
        LockResult r = robust_mutex_lock_once(m, last ? deadline.at() : slice_end);
        if (r != LockResult::timed_out || last) return r;
    }
}

/// Takes the mutex, however long that takes.
inline LockResult robust_mutex_lock(pthread_mutex_t* m) { return robust_mutex_lock_until(m, Deadline::never()); }

inline LockResult robust_mutex_try_lock(pthread_mutex_t* m) {
    return interpret_lock("pthread_mutex_trylock", pthread_mutex_trylock(m), m);
}

/// Whether some thread (of any process) holds the mutex now: a snapshot, taken without touching the
/// mutex. glibc keeps a robust mutex's holder in its futex word (thread id, 0 when free; when the
/// holder dies the kernel clears the id and sets FUTEX_OWNER_DIED), so one load answers. Taking the
/// mutex to find out would make another process's try_lock fail meanwhile and would consume the
/// owner-died notice meant for the next locker. Elsewhere: a try_lock and unlock, with both flaws.
inline bool robust_mutex_held(pthread_mutex_t* m) noexcept {
#if defined(__GLIBC__)
    unsigned word = static_cast<unsigned>(__atomic_load_n(&m->__data.__lock, __ATOMIC_SEQ_CST));
    return (word & FUTEX_TID_MASK) != 0;
#else
    int rc = pthread_mutex_trylock(m);
    if (rc == EBUSY) return true;
    if (rc == EOWNERDEAD) pthread_mutex_consistent(m);
    if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(m);
    return false;
#endif
}

/// Returns false when the caller does not own the mutex (EPERM).
inline bool robust_mutex_unlock(pthread_mutex_t* m) {
    int rc = pthread_mutex_unlock(m);
    if (rc == 0) [[likely]] return true;
    if (rc == EPERM) return false;
    throw_os_error("pthread_mutex_unlock", rc);
}

} // namespace mproc::detail::posix
