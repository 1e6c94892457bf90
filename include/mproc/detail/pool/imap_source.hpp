// Pool::imap's source: what the shared lazy range (lazy_range.hpp) pumps to read the inputs, hand
// chunks to the worker processes and collect their results.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../algorithm.hpp"
#include "../chrono.hpp"
#include "../deadline.hpp"
#include "../deferred.hpp"
#include "../functional.hpp"
#include "../progress.hpp"
#include "../ranges.hpp"
#include "../worker_pool.hpp"
#include "chunk_plan.hpp"
#include "lazy_range.hpp"

namespace mproc::detail {

/// imap's transport over the worker processes (see detail/pool/lazy_range.hpp): reads the inputs
/// as the loop goes, keeps about two chunks per worker in flight, and waits on the pool for the next
/// chunk to hand out. `Range` is a view of the inputs.
template <class F, class Range, bool Ordered>
class PoolImapSource {
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using Worker = ChunkTask<F, Item, false>;

public:
    using Result = typename Worker::Result;
    using Chunks = LazyChunks<Result, Ordered>;
    static_assert(!std::is_void_v<Result>, "mproc::Pool::imap: the function returns void; use apply_async for side effects");

    using Engine = dependent_t<F, WorkerPool>; // compiled where used (deferred.hpp)
    PoolImapSource(std::shared_ptr<Engine> pool, F f, Range inputs, std::size_t chunksize, std::chrono::nanoseconds timeout,
                   std::shared_ptr<Progress> progress, const char* op)
        : pool_(std::move(pool)), f_(f), inputs_(std::move(inputs)), it_(std::ranges::begin(inputs_)), end_(std::ranges::end(inputs_)),
          timeout_(timeout), progress_(std::move(progress)), op_(op), sizes_(chunksize) {}

    const char* op() const noexcept { return op_; }

    Pumped pump(Chunks& chunks, Deadline d) {
        top_up(chunks);
        if (chunks.idle()) {
            if (input_error_) { // the items read before it are delivered: now the reading's own error
                chunks.push_error(std::exchange(input_error_, nullptr));
                return Pumped::more;
            }
            finish_progress();
            return Pumped::end;
        }
        collect(chunks);
        if (!chunks.has_ready() && !pool_->wait_until([&] { return chunks.next_settled() != nullptr; }, d)) return Pumped::timeout;
        collect(chunks);
        return Pumped::more;
    }

private:
    // Where a chunk's items go: its outcomes, written under the pool's lock as they settle.
    struct Sink {
        std::shared_ptr<LazyChunk<Result>> chunk;
        void result(std::size_t i, Result&& value) { chunk->results[i] = std::move(value); }
        void failed(std::size_t i, std::exception_ptr e) { chunk->fail(i, std::move(e)); }
        std::function<void()> done() {
            chunk->settle();
            return {};
        }
    };
    using Task = Submission<Worker, F, std::vector<Item>, Result, Sink>;

    void collect(Chunks& chunks) {
        chunks.collect([&](LazyChunk<Result>& c) { sizes_.finished(c.count); });
    }

    void finish_progress() {
        if (!progress_) return;
        auto call = pool_->locked([&] { return progress_->finish(); });
        if (call) call();
    }

    void top_up(Chunks& chunks) {
        const std::size_t limit = 2 * static_cast<std::size_t>(pool_->processes());
        bool sent = false;
        while (chunks.in_flight() < limit && it_ != end_ && !input_error_) {
            std::size_t want = sizes_.next(pool_->processes());
            std::vector<Item> items;
            items.reserve(std::min(want, AdaptiveChunks::max_items));
            try {
                for (; items.size() < want && it_ != end_; ++it_) items.push_back(*it_);
            } catch (...) {
                input_error_ = std::current_exception(); // raised after the results of the items before it
            }
            if (items.empty()) break;
            auto chunk = chunks.launch(submitted_, items.size());
            chunk->results.resize(items.size());
            auto task = std::make_shared<Task>(f_, std::move(items), Sink{chunk});
            task->count = chunk->count;
            task->base = submitted_;
            task->progress = progress_;
            task->timeout = timeout_;
            task->label = std::string("task (") + op_ + " items " + std::to_string(submitted_) + ".." +
                          std::to_string(submitted_ + chunk->count - 1) + ")";
            submitted_ += chunk->count;
            pool_->submit(std::move(task), op_);
            sent = true;
        }
        if (sent) pool_->flush();
    }

    std::shared_ptr<Engine> pool_;
    F f_;
    Range inputs_; // a view: a reference to the caller's range, or the owner of a temporary one
    std::ranges::iterator_t<Range> it_;
    std::ranges::sentinel_t<Range> end_;
    std::chrono::nanoseconds timeout_; // each item's limit (0: the pool's task_timeout)
    std::shared_ptr<Progress> progress_;
    const char* op_;
    AdaptiveChunks sizes_;
    std::size_t submitted_ = 0;
    std::exception_ptr input_error_;
};

} // namespace mproc::detail
