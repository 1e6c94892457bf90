// Sleeping a little longer each time: the one backoff of every wait that has nothing to sleep on
// (a process to exit without a pidfd, a name to appear, an MPI request to complete).
#pragma once

#include <thread>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "deadline.hpp"

namespace mproc::detail {

/// Each pause() sleeps `first`, then twice as long each time up to `cap`, never past the deadline.
class Backoff {
public:
    constexpr Backoff(std::chrono::microseconds first, std::chrono::microseconds cap) noexcept : step_(first), cap_(cap) {}

    /// Sleeps the next step, or until `d` if that comes first (not at all once it has passed).
    void pause(Deadline d = Deadline::never()) {
        auto left = d.is_never() ? Clock::duration(step_) : d.at() - Clock::now();
        std::this_thread::sleep_for(std::min<Clock::duration>(step_, std::max(left, Clock::duration::zero())));
        step_ = std::min<std::chrono::microseconds>(step_ * 2, cap_);
    }

private:
    std::chrono::microseconds step_;
    std::chrono::microseconds cap_;
};

} // namespace mproc::detail
