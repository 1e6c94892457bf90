// Progress of one map, imap or starmap: items settled plus the items the workers have finished but
// not yet sent (read from their slots), as a one-line bar on stderr and/or a user callback.
// The bar redraws in place on a terminal (every 100 ms at most, fitted to its width), as plain lines
// about once a second otherwise (logs, CI); the ETA shows once a rate is known.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "deadline.hpp"
#include "functional.hpp"
#include "posix/terminal.hpp"

namespace mproc::detail {

/// Called with (items done, items in all) as items complete; total 0 when unknown.
using ProgressCallback = std::function<void(std::size_t done, std::size_t total)>;

// A class template over nothing, so that its members are compiled only where a pool reports progress.
template <class = void>
class BasicProgress {
public:
    /// `total` 0 means unknown (imap over an unsized range): no percentage or ETA then.
    BasicProgress(bool bar, ProgressCallback callback, std::size_t total, const char* what)
        : bar_(bar), tty_(bar && posix::is_terminal(2)), callback_(std::move(callback)), total_(total), what_(what),
          start_(Clock::now()) {
        if (bar_) draw(false);
    }
    BasicProgress(const BasicProgress&) = delete;
    BasicProgress& operator=(const BasicProgress&) = delete;

    bool enabled() const noexcept { return bar_ || callback_; }

    /// `n` more items settled.
    void settled(std::size_t n) { settled_ += n; }
    /// True once a known total has settled.
    bool all_settled() const noexcept { return total_ != 0 && settled_ >= total_; }

    /// Shows the count, with `running` items finished in the workers but not yet settled. Returns the
    /// callback call to make (outside any lock), or an empty function.
    std::function<void()> tick(std::size_t running) {
        std::size_t done = std::min(settled_ + running, total_ ? total_ : settled_ + running);
        if (done == shown_ && !bar_) return {};
        auto now = Clock::now();
        if (bar_ && (done != shown_ || now - last_draw_ >= std::chrono::seconds(1)) &&
            now - last_draw_ >= (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000))) {
            shown_ = done;
            draw(false);
        }
        if (!callback_ || done == reported_) return {};
        reported_ = done;
        return [cb = callback_, done, total = total_] { cb(done, total); };
    }

    /// The last line, once every item settled; returns the final callback call.
    std::function<void()> finish() {
        if (finished_) return {};
        finished_ = true;
        shown_ = settled_;
        if (bar_) draw(true);
        if (!callback_ || reported_ == settled_) return {};
        reported_ = settled_;
        return [cb = callback_, done = settled_, total = total_] { cb(done, total); };
    }

private:
    void draw(bool final_line) {
        last_draw_ = Clock::now();
        const std::size_t done = final_line ? settled_ : shown_;
        double secs = std::chrono::duration<double>(last_draw_ - start_).count();
        double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
        char buf[160];
        std::string tail;
        if (total_ > 0) {
            std::snprintf(buf, sizeof buf, " %zu/%zu %3.0f%% %.1f it/s", done, total_,
                          100.0 * static_cast<double>(done) / static_cast<double>(total_), rate);
            tail = buf;
            if (final_line)
                tail += " in " + clock_text(secs);
            else if (done > 0 && rate > 0)
                tail += " ETA " + clock_text(static_cast<double>(total_ - done) / rate);
        } else {
            std::snprintf(buf, sizeof buf, " %zu done %.1f it/s elapsed", done, rate);
            tail = std::string(buf) + " " + clock_text(secs);
        }
        std::string line = what_;
        if (total_ > 0) {
            // The bar takes what the terminal's width leaves (24 columns off a terminal).
            int columns = tty_ ? posix::terminal_columns(2) : 0;
            int width = columns > 0 ? columns - static_cast<int>(line.size() + tail.size()) - 4 : 24;
            width = std::clamp(width, 0, 50);
            if (width >= 5) {
                int filled = static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total_));
                line += " [" + std::string(static_cast<std::size_t>(filled), '#') +
                        std::string(static_cast<std::size_t>(width - filled), '.') + "]";
            }
        }
        line += tail;
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

    bool bar_;
    bool tty_;
    ProgressCallback callback_;
    std::size_t total_;
    const char* what_;
    bool finished_ = false;
    std::size_t settled_ = 0;
    std::size_t shown_ = 0;
    std::size_t reported_ = 0;
    Clock::time_point start_;
    Clock::time_point last_draw_{};
};

using Progress = BasicProgress<>;

} // namespace mproc::detail
