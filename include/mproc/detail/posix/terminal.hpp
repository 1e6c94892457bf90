// Terminal and signal-disposition queries used by the pool's workers and progress bar.
#pragma once

#include <csignal>
#include <sys/ioctl.h>
#include <unistd.h>

namespace mproc::detail::posix {

/// True when `fd` is a terminal (so a progress bar may redraw in place).
inline bool is_terminal(int fd) noexcept { return ::isatty(fd) == 1; }

/// The width of the terminal on `fd` in columns, 0 if it is none or does not say.
inline int terminal_columns(int fd) noexcept {
    winsize w{};
    return ::ioctl(fd, TIOCGWINSZ, &w) == 0 ? static_cast<int>(w.ws_col) : 0;
}

/// Ignores `sig` in this process from now on (pool workers ignore SIGINT: Ctrl-C is the parent's).
inline void ignore_signal(int sig) noexcept { std::signal(sig, SIG_IGN); }

/// Restores the default action of `sig` (pool workers drop the parent's crash handlers, so that a
/// crashing task simply ends its worker).
inline void default_signal(int sig) noexcept { std::signal(sig, SIG_DFL); }

} // namespace mproc::detail::posix
