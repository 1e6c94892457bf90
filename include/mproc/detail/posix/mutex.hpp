// A robust, process-shared pthread mutex: the kernel tells the next locker when a holder died.
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <pthread.h>

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

inline LockResult robust_mutex_lock(pthread_mutex_t* m) {
    int rc = pthread_mutex_lock(m);
    if (rc == 0) [[likely]] return LockResult::acquired;
    return interpret_lock("pthread_mutex_lock", rc, m);
}

inline LockResult robust_mutex_try_lock(pthread_mutex_t* m) {
    return interpret_lock("pthread_mutex_trylock", pthread_mutex_trylock(m), m);
}

inline LockResult robust_mutex_lock_until(pthread_mutex_t* m, Deadline deadline) {
    if (deadline.is_never()) return robust_mutex_lock(m);
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer (gcc 12, clang 14) does not intercept pthread_mutex_clocklock and then reports
    // the unlock of a mutex it never saw locked. Under it, wait on the realtime clock instead.
    auto left = deadline.at() - Clock::now();
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    auto abs = std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec) +
               std::max(left, Clock::duration::zero());
    timespec ts = to_timespec(std::chrono::duration_cast<Clock::duration>(abs));
    return interpret_lock("pthread_mutex_timedlock", pthread_mutex_timedlock(m, &ts), m);
#else
    timespec ts = to_timespec(deadline.at().time_since_epoch());
    return interpret_lock("pthread_mutex_clocklock", pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts), m);
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
