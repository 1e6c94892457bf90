// The one syscall layer: EINTR retries and errno turned into mproc::OSError naming the call.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

#include "../../errors.hpp"

namespace mproc::detail::posix {

[[noreturn]] inline void throw_os_error(const std::string& op, int err) {
    throw OSError(err, op + ": " + std::strerror(err));
}

/// Calls f() until it stops failing with EINTR; a -1 result throws OSError naming `op`.
template <class F>
auto check_call(const char* op, F&& f) {
    for (;;) {
        auto rc = f();
        if (rc != -1) return rc;
        if (errno != EINTR) throw_os_error(op, errno);
    }
}

/// For the pthread_* family, which returns the error instead of setting errno.
inline void check_pthread(const char* op, int rc) {
    if (rc != 0) throw_os_error(op, rc);
}

inline void close_fd(int fd) noexcept {
    if (fd >= 0) ::close(fd); // no retry on EINTR: on Linux the descriptor is gone either way
}

} // namespace mproc::detail::posix
