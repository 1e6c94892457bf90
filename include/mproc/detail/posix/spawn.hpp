// Starting another program (posix_spawn): for processes that share memory by name, not by fork.
#pragma once

#include <csignal>
#include <spawn.h>
#include <string>
#include <sys/types.h>
#include <vector>

#include "syscall.hpp"

extern char** environ;

namespace mproc::detail::posix {

/// Starts the program at `path` with the arguments `args` (args[0] is, by convention, its name),
/// the calling process's environment and standard streams, and no blocked signals. Returns its pid;
/// reap it with wait_exit(). Throws OSError naming the program (ENOENT, EACCES, ENOEXEC...).
inline pid_t spawn_program(const std::string& path, const std::vector<std::string>& args) {
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    posix_spawnattr_t attr;
    check_pthread("posix_spawnattr_init", ::posix_spawnattr_init(&attr));
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, path.c_str(), nullptr, &attr, argv.data(), environ);
    ::posix_spawnattr_destroy(&attr);
    if (rc != 0) throw_os_error("posix_spawn(" + path + ")", rc);
    return pid;
}

} // namespace mproc::detail::posix
