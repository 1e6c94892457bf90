// A one-line progress bar on stderr for Pool::map, imap and starmap: count, rate and ETA, redrawn in
// place on a terminal, plain lines about once a second otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

#include "deadline.hpp"
#include "posix/terminal.hpp"

namespace mproc::detail {

class ProgressBar {
public:
    /// `total` 0 means unknown (imap over an unsized range): no percentage or ETA then.
    ProgressBar(bool enabled, std::size_t total, const char* what)
        : enabled_(enabled), total_(total), what_(what), tty_(enabled && posix::is_terminal(2)), start_(Clock::now()) {
        if (enabled_) draw(false);
    }
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void advance(std::size_t n) {
        if (!enabled_) return;
        done_ += n;
        auto now = Clock::now();
        if (now - last_draw_ >= (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000))) draw(false);
    }

    void finish() {
        if (!enabled_ || finished_) return;
        finished_ = true;
        draw(true);
    }

private:
    void draw(bool final_line) {
        last_draw_ = Clock::now();
        double secs = std::chrono::duration<double>(last_draw_ - start_).count();
        double rate = secs > 0 ? static_cast<double>(done_) / secs : 0.0;
        std::string line = std::string(what_) + " ";
        char buf[160];
        if (total_ > 0) {
            constexpr int width = 24;
            int filled = static_cast<int>(width * static_cast<double>(done_) / static_cast<double>(total_));
            line += "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') + "] ";
            double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0.0;
            std::snprintf(buf, sizeof buf, "%zu/%zu %3.0f%% %.1f it/s %s %s", done_, total_,
                          100.0 * static_cast<double>(done_) / static_cast<double>(total_), rate,
                          final_line ? "in" : "ETA", clock_text(final_line ? secs : eta).c_str());
        } else {
            std::snprintf(buf, sizeof buf, "%zu done %.1f it/s elapsed %s", done_, rate, clock_text(secs).c_str());
        }
        line += buf;
        if (tty_)
            std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
        else
            std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
    }

    static std::string clock_text(double secs) {
        long s = static_cast<long>(secs + 0.5);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        return buf;
    }

    bool enabled_;
    std::size_t total_;
    const char* what_;
    bool tty_;
    bool finished_ = false;
    std::size_t done_ = 0;
    Clock::time_point start_;
    Clock::time_point last_draw_{};
};

} // namespace mproc::detail
