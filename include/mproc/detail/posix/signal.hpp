// Signal dispositions, for the cleanup of named shared memory on SIGINT and SIGTERM.
#pragma once

#include <csignal>
#include <cstring>
#include <string>

#include "syscall.hpp"

namespace mproc::detail::posix {

/// Installs `handler` (an SA_SIGINFO handler, SA_RESTART) for `sig` and returns the previous action.
/// Throws OSError naming sigaction.
inline struct sigaction install_signal_handler(int sig, void (*handler)(int, siginfo_t*, void*)) {
    struct sigaction next{}, previous{};
    next.sa_sigaction = handler;
    next.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&next.sa_mask);
    const std::string op = "sigaction(" + std::to_string(sig) + ")";
    check_call(op.c_str(), [&] { return ::sigaction(sig, &next, &previous); });
    return previous;
}

/// The current action for `sig`, without changing it.
inline struct sigaction current_signal_action(int sig) {
    struct sigaction now{};
    const std::string op = "sigaction(" + std::to_string(sig) + ")";
    check_call(op.c_str(), [&] { return ::sigaction(sig, nullptr, &now); });
    return now;
}

/// From a signal handler (async-signal-safe): hands `sig` on to `previous` as the kernel would have,
/// a function called with the same arguments, or, for the default action, the default action taken
/// again by re-raising the signal once the handler returns (so that the process ends by the signal,
/// with its exit status).
inline void chain_signal(const struct sigaction& previous, int sig, siginfo_t* info, void* context) noexcept {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) previous.sa_sigaction(sig, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN) return;
    if (previous.sa_handler != SIG_DFL) {
        previous.sa_handler(sig);
        return;
    }
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, sig);
    ::raise(sig); // pending while the handler runs; delivered, with the default action, on unblocking
    ::sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
}

/// Whether `action` is the default one (SIG_DFL).
inline bool is_default_action(const struct sigaction& action) noexcept {
    return !(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_DFL;
}

} // namespace mproc::detail::posix
