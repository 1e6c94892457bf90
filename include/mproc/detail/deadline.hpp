// A point in time by which a blocking call gives up, or "never". One type for every timed wait.
#pragma once

#include "chrono.hpp"

namespace mproc::detail {

using Clock = std::chrono::steady_clock; // CLOCK_MONOTONIC, which futex and pthread waits use too

class Deadline {
public:
    static Deadline never() noexcept { return Deadline{}; }

    /// Now plus `d`, clamped so that huge durations (hours::max()) mean "never" instead of overflowing.
    template <class Rep, class Period>
    static Deadline after(std::chrono::duration<Rep, Period> d) noexcept {
        using namespace std::chrono;
        if (d <= d.zero()) return Deadline{Clock::now()};
        constexpr auto limit = hours(24 * 365 * 100);
        if (duration<double>(d) >= duration<double>(limit)) return Deadline{};
        return Deadline{Clock::now() + ceil<Clock::duration>(d)};
    }

    /// The same instant as `t`, read on any clock.
    template <class C, class D>
    static Deadline until(std::chrono::time_point<C, D> t) noexcept {
        return after(t - C::now());
    }

    bool is_never() const noexcept { return at_ == Clock::time_point::max(); }
    bool expired() const noexcept { return !is_never() && Clock::now() >= at_; }
    /// The instant; time_point::max() for "never".
    Clock::time_point at() const noexcept { return at_; }

private:
    Deadline() = default;
    explicit Deadline(Clock::time_point t) : at_(t) {}
    Clock::time_point at_ = Clock::time_point::max(); // max(): never
};

} // namespace mproc::detail
