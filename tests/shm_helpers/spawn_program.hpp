// Starting another program (posix_spawn), for shared_memory_test: the helper process shares memory
// with the test by name, not by fork. Test-only, so not installed with mproc's headers.
#pragma once

#include <csignal>
#include <spawn.h>
#include <string>
#include <sys/types.h>
#include <vector>

#include <mproc/detail/posix/syscall.hpp>

extern char** environ;

namespace test {

/// Starts the program at `path` with the arguments `args` (args[0] is, by convention, its name),
/// the calling process's environment and standard streams, and no blocked signals. Returns its pid;
/// reap it with wait_exit(). Throws OSError naming the program (ENOENT, EACCES, ENOEXEC...).
inline pid_t spawn_program(const std::string& path, const std::vector<std::string>& args) {
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    posix_spawnattr_t attr;
    mproc::detail::posix::check_pthread("posix_spawnattr_init", ::posix_spawnattr_init(&attr));
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, path.c_str(), nullptr, &attr, argv.data(), environ);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) mproc::detail::posix::throw_os_error("posix_spawn(" + path + ")", rc);
    return pid;
}

} // namespace test
