// Fork hooks: code that must know it now runs in a copy of its process made by somebody else's fork.
#pragma once

#include <pthread.h>

namespace mproc::detail::posix {

/// Runs `child()` in every child of this process created through fork() (not through a raw clone
/// system call). Registered handlers cannot be removed: register once per process.
inline void on_fork_child(void (*child)()) noexcept { ::pthread_atfork(nullptr, nullptr, child); }

} // namespace mproc::detail::posix
