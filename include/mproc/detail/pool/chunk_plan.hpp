// How every pool cuts its inputs into chunks: guided sizes for map (the whole input known up
// front), adaptive sizes for imap (read as the loop goes), and the cap that keeps a chunk's bytes
// within what its transport carries in one message.
#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>
#include <vector>

#include "../algorithm.hpp"
#include "../chrono.hpp"
#include "../deadline.hpp"

namespace mproc::detail {

/// Guided scheduling: big chunks first, shrinking towards the end so that the last, possibly
/// costlier items are spread over every worker. Each automatic chunk is 1/`shares` of the remaining
/// work per worker (the fork-based Pool: half; mpi::Pool: a quarter, as ranks may be unequal
/// machines), at least 1/64 of an equal share, and at most `max_chunk` items, the cap set by the
/// transport (chunk_cap). An explicit chunksize is honoured as given.
class ChunkPlan {
public:
    ChunkPlan(std::size_t n, int workers, std::size_t chunksize, std::size_t max_chunk, std::size_t shares = 2)
        : remaining_(n), split_(static_cast<std::size_t>(std::max(workers, 1)) * std::max<std::size_t>(shares, 1)), fixed_(chunksize),
          min_(std::max<std::size_t>(1, n / (static_cast<std::size_t>(std::max(workers, 1)) * 64))),
          max_(std::max<std::size_t>(max_chunk, 1)) {}
    /// True while items are left to plan.
    bool more() const noexcept { return remaining_ > 0; }
    /// The next chunk's size (0 when done).
    std::size_t next() noexcept {
        std::size_t c = fixed_ ? fixed_ : std::min(max_, std::max(min_, (remaining_ + split_ - 1) / split_));
        c = std::min(c, remaining_);
        remaining_ -= c;
        return c;
    }

private:
    std::size_t remaining_;
    std::size_t split_; // workers * shares
    std::size_t fixed_;
    std::size_t min_;
    std::size_t max_;
};

/// The most items an automatic chunk holds so that it fits in `budget` bytes, for items that encode
/// to about `item_bytes` (the first one's size), with a quarter more for items of varying sizes.
inline std::size_t chunk_cap(std::size_t budget, std::size_t item_bytes) {
    return std::max<std::size_t>(1, budget / (item_bytes + item_bytes / 4 + 1));
}

/// Copies the next `count` inputs from `it` into `items` (empty) and moves `it` past them: one copy,
/// a memcpy for contiguous trivially copyable items, when the inputs' elements are Items already.
template <class Item, class It>
void take_items(It& it, std::size_t count, std::vector<Item>& items) {
    if constexpr (std::forward_iterator<It> && std::is_same_v<std::iter_value_t<It>, Item>) {
        auto last = std::ranges::next(it, static_cast<std::iter_difference_t<It>>(count));
        items.assign(it, last);
        it = last;
    } else {
        items.reserve(count);
        for (std::size_t k = 0; k < count; ++k, ++it) items.push_back(static_cast<Item>(*it));
    }
}

/// imap's chunk sizes, for inputs read as the loop goes: about 2 ms of work per chunk, from the rate
/// measured so far; one item until a result is in. An explicit chunksize is honoured as given.
class AdaptiveChunks {
public:
    explicit AdaptiveChunks(std::size_t chunksize) : fixed_(chunksize), start_(Clock::now()) {}
    /// `items` more have their results.
    void finished(std::size_t items) noexcept { finished_ += items; }
    /// The next chunk's size, shared among `workers` computing.
    std::size_t next(int workers) const {
        if (fixed_) return fixed_;
        double secs = std::chrono::duration<double>(Clock::now() - start_).count();
        if (finished_ == 0 || secs <= 0) return 1;
        double per_worker_rate = static_cast<double>(finished_) / secs / std::max(workers, 1);
        return std::clamp<std::size_t>(static_cast<std::size_t>(per_worker_rate * 0.002), 1, max_items);
    }
    /// The most items an adaptive chunk holds.
    static constexpr std::size_t max_items = 65536;

private:
    std::size_t fixed_;
    std::size_t finished_ = 0;
    Clock::time_point start_;
};

} // namespace mproc::detail
