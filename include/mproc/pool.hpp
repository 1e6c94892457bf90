// mproc/pool.hpp — Pool (Python's multiprocessing.Pool): map, map_async, imap, imap_unordered,
// starmap, apply, apply_async, with per-task failure isolation.
//
// Workers are forked when the pool is built, so (as in Python) they see the parent's memory as of
// that moment; a replacement worker sees it as of its own fork. A task that throws, crashes (signal,
// abort, exit) or overruns task_timeout fails that task only: its future carries RemoteError,
// WorkerCrashed or TimeoutError, the worker is replaced, every other task still completes, and the
// pool stays usable. Workers ignore SIGINT, so Ctrl-C stops the parent alone, and its death takes the
// workers with it. A Pool and its futures are meant for one thread; results are collected (and
// workers supervised) while that thread waits in a pool call or on a future.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "codec.hpp"
#include "detail/deadline.hpp"
#include "detail/progress.hpp"
#include "detail/worker_pool.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "process.hpp"

namespace mproc {

/// `processes`: workers (0: cpu_count()). `initializer`: run once in every worker, replacements
/// included, before its first task. `maxtasksperchild`: a worker is replaced after that many tasks
/// (0: never). `task_timeout`: a task running longer is failed with TimeoutError and its worker
/// killed (0: no limit). `progress`: map, imap and starmap draw a progress bar on stderr.
/// The queue sizes bound the bytes of tasks and results in flight; larger messages still go through.
struct PoolOptions {
    int processes = 0;
    std::function<void()> initializer = {};
    std::size_t maxtasksperchild = 0;
    std::chrono::duration<double> task_timeout{0};
    bool progress = false;
    std::size_t task_queue_bytes = std::size_t{1} << 20;
    std::size_t result_queue_bytes = std::size_t{4} << 20;
};

namespace detail {

/// What a worker can call without the parent's help: copied byte for byte into the task.
template <class F>
constexpr void check_pool_callable() {
    static_assert(std::is_trivially_copyable_v<F> && !std::is_member_pointer_v<F>,
                  "mproc::Pool: the function must be a function pointer, a capture-less lambda or a trivially "
                  "copyable function object, because it is copied byte for byte into a worker process. Pass "
                  "the data it needs as arguments (they travel through the codec) instead of capturing "
                  "std::string, std::vector or other owning objects");
}

/// Guided scheduling: big chunks first, shrinking towards the end so that the last, possibly
/// costlier items are spread over every worker. An explicit chunksize is honoured as given.
/// Automatic chunks are also capped at `max_chunk` items, chosen so that a chunk is encoded straight
/// into the task ring rather than copied through a buffer and sent in fragments.
class ChunkPlan {
public:
    ChunkPlan(std::size_t n, int workers, std::size_t chunksize, std::size_t max_chunk)
        : remaining_(n), workers_(static_cast<std::size_t>(std::max(workers, 1))), fixed_(chunksize),
          min_(std::max<std::size_t>(1, n / (static_cast<std::size_t>(std::max(workers, 1)) * 64))),
          max_(std::max<std::size_t>(max_chunk, 1)) {}
    /// The next chunk's size (0 when done).
    std::size_t next() {
        std::size_t c = fixed_ ? fixed_ : std::min(max_, std::max(min_, (remaining_ + 2 * workers_ - 1) / (2 * workers_)));
        c = std::min(c, remaining_);
        remaining_ -= c;
        return c;
    }

private:
    std::size_t remaining_;
    std::size_t workers_;
    std::size_t fixed_;
    std::size_t min_;
    std::size_t max_;
};

template <class R>
using Outcome = std::variant<typename FutureSource<R>::Value, std::exception_ptr>;

/// A Future fed by the pool: waiting on it collects results and supervises the workers.
template <class R>
class PoolFutureSource final : public FutureSource<R> {
public:
    using State = std::optional<Outcome<R>>;
    PoolFutureSource(std::shared_ptr<WorkerPool> pool, std::shared_ptr<State> state)
        : pool_(std::move(pool)), state_(std::move(state)) {}
    bool wait_until(Deadline d) override { return pool_->wait_until([&] { return state_->has_value(); }, d); }
    Outcome<R> collect() override { return std::move(**state_); }

private:
    std::shared_ptr<WorkerPool> pool_;
    std::shared_ptr<State> state_;
};

inline std::exception_ptr remote_error(std::span<const std::byte> payload, pid_t pid, std::uint64_t* index = nullptr) {
    auto e = decode<TaskError>(payload);
    if (index) *index = e.index;
    return std::make_exception_ptr(RemoteError(e.type, e.message, pid));
}

/// The results of one map/starmap call as its chunks settle; throws the lowest failing index's error.
template <class R>
struct MapState {
    explicit MapState(std::size_t n, bool progress, const char* what) : results(n), bar(progress, n, what) {}
    std::vector<R> results;
    std::vector<R> scratch;
    std::size_t chunks_left = 0;
    std::size_t first_error_index = SIZE_MAX;
    std::exception_ptr first_error;
    ProgressBar bar;
    std::shared_ptr<std::optional<Outcome<std::vector<R>>>> outcome =
        std::make_shared<std::optional<Outcome<std::vector<R>>>>();

    void fail_at(std::size_t index, std::exception_ptr e) {
        if (index < first_error_index) {
            first_error_index = index;
            first_error = std::move(e);
        }
    }
    void chunk_done(std::size_t items) {
        bar.advance(items);
        if (--chunks_left == 0) {
            bar.finish();
            if (first_error)
                *outcome = first_error;
            else
                *outcome = std::move(results);
        }
    }
};

} // namespace detail

/// A pool of worker processes. Not copyable or movable; use from one thread.
class Pool {
public:
    /// cpu_count() workers.
    Pool() : Pool(PoolOptions{}) {}
    /// Throws ValueError if processes < 1.
    explicit Pool(int processes) : Pool(PoolOptions{.processes = at_least_one(processes)}) {}
    /// Forks the workers. Throws ValueError for a negative process count, OSError if fork fails.
    explicit Pool(PoolOptions options) : progress_(options.progress) {
        if (options.processes < 0) throw ValueError("Pool: processes must be at least 1, got " + std::to_string(options.processes));
        if (options.task_timeout.count() < 0) throw ValueError("Pool: task_timeout must not be negative");
        int n = options.processes == 0 ? cpu_count() : options.processes;
        pool_ = std::make_shared<detail::WorkerPool>(detail::PoolConfig{n, std::move(options.initializer), options.maxtasksperchild,
                                                                        options.task_timeout, options.task_queue_bytes,
                                                                        options.result_queue_bytes});
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Finishes the queued work, then stops the workers (as close() + join()). When the pool is
    /// destroyed by an exception unwinding the stack, it terminates the workers instead (as Python's
    /// `with Pool()` does), so that an error never waits on hung tasks.
    ~Pool() {
        if (std::uncaught_exceptions() > uncaught_at_start_) {
            pool_->terminate();
            return;
        }
        try {
            pool_->join();
        } catch (...) {
            pool_->terminate();
        }
    }

    int processes() const noexcept { return pool_->processes(); }
    /// The pids of the current workers (replacements change them).
    std::vector<pid_t> worker_pids() const { return pool_->worker_pids(); }

    // ------------------------------------------------------------------ map and starmap

    /// f(x) for every x of `inputs` (any sized input range), in order. Blocks until every chunk has
    /// settled, then returns the results or throws the error of the lowest failing index
    /// (RemoteError, WorkerCrashed, TimeoutError). `chunksize` 0 picks guided chunks.
    template <class F, std::ranges::sized_range Range>
    auto map(F f, const Range& inputs, std::size_t chunksize = 0) {
        return map_async(f, inputs, chunksize).get();
    }

    /// As map, without waiting: the Future's get() returns the vector or throws.
    template <class F, std::ranges::sized_range Range>
    auto map_async(F f, const Range& inputs, std::size_t chunksize = 0) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        using Task = detail::ChunkTask<F, Item, false>;
        detail::check_pool_callable<F>();
        return submit_chunks<Task, Item>(f, inputs, chunksize, "map");
    }

    /// g(std::get<0>(t), std::get<1>(t), ...) for every tuple (or pair) t of `inputs`, in order.
    template <class G, std::ranges::sized_range Range>
    auto starmap(G g, const Range& inputs, std::size_t chunksize = 0) {
        return starmap_async(g, inputs, chunksize).get();
    }
    template <class G, std::ranges::sized_range Range>
    auto starmap_async(G g, const Range& inputs, std::size_t chunksize = 0) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        using Task = detail::ChunkTask<G, Item, true>;
        detail::check_pool_callable<G>();
        return submit_chunks<Task, Item>(g, inputs, chunksize, "starmap");
    }

    // ------------------------------------------------------------------ apply

    /// f(args...) in a worker; blocks for the result. Throws as Future::get.
    template <class F, class... Args>
    auto apply(F f, Args&&... args) {
        return apply_async(f, std::forward<Args>(args)...).get();
    }

    /// f(args...) in a worker; returns its Future at once. Arguments are copied through the codec.
    template <class F, class... Args>
    auto apply_async(F f, Args&&... args) {
        detail::check_pool_callable<F>();
        using Task = detail::CallTask<F, std::decay_t<Args>...>;
        using R = typename Task::Result;
        static_assert(std::is_void_v<R> || Serializable<std::remove_cvref_t<R>>,
                      "mproc::Pool::apply: the function's return type is not serializable (see <mproc/codec.hpp>)");
        auto state = std::make_shared<typename detail::PoolFutureSource<R>::State>();
        auto args_tuple = std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...);
        std::uint64_t id = next_label_++;
        detail::PendingTask pending{
            [state](detail::ResultStatus status, std::span<const std::byte> payload, pid_t pid) {
                if (status == detail::ResultStatus::error) {
                    *state = detail::remote_error(payload, pid);
                } else if constexpr (std::is_void_v<R>) {
                    *state = std::monostate{};
                } else {
                    try {
                        *state = decode<std::remove_cvref_t<R>>(payload);
                    } catch (...) {
                        *state = std::current_exception();
                    }
                }
            },
            [state](std::exception_ptr e) { *state = e; }, "task " + std::to_string(id) + " (apply)"};
        pool_->submit<Task>(f, args_tuple, std::move(pending), "apply_async");
        return Future<R>(std::make_unique<detail::PoolFutureSource<R>>(pool_, state));
    }

    // ------------------------------------------------------------------ imap

    template <class F, class Range, bool Ordered>
    class LazyMap;

    /// f(x) for every x of `inputs`, lazily and in order: inputs are read and sent as the loop
    /// advances, with a bounded number of chunks in flight, so a huge range is never materialised
    /// and leaving the loop early is cheap. Dereferencing throws the item's error. A container passed
    /// as a temporary is kept alive by the returned range; an lvalue must outlive the loop.
    /// `chunksize` 0 adapts chunks to the measured cost of an item.
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap(F f, Range&& inputs, std::size_t chunksize = 0) {
        detail::check_pool_callable<F>();
        return LazyMap<F, std::views::all_t<Range>, true>(pool_, f, std::views::all(std::forward<Range>(inputs)), chunksize, progress_);
    }
    /// As imap, yielding results as they finish (chunks in any order).
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 0) {
        detail::check_pool_callable<F>();
        return LazyMap<F, std::views::all_t<Range>, false>(pool_, f, std::views::all(std::forward<Range>(inputs)), chunksize, progress_);
    }

    // ------------------------------------------------------------------ lifecycle

    /// No more tasks may be submitted (they throw StateError); queued ones still run.
    void close() noexcept { pool_->close(); }
    /// Waits for every submitted task to settle, then stops the workers. Call close() first, as in
    /// Python; join() without close() is a StateError.
    void join() {
        if (!pool_->closed()) throw StateError("Pool::join: close() or terminate() the pool first");
        pool_->join();
    }
    /// Kills the workers now; unsettled tasks fail with StateError.
    void terminate() noexcept { pool_->terminate(); }

private:
    static int at_least_one(int processes) {
        if (processes < 1) throw ValueError("Pool: processes must be at least 1, got " + std::to_string(processes));
        return processes;
    }

    template <class Task, class Item, class F, class Range>
    auto submit_chunks(const F& f, const Range& inputs, std::size_t chunksize, const char* op) {
        using R = typename Task::Result;
        static_assert(!std::is_void_v<R>, "mproc::Pool::map: the function returns void; use apply_async for side effects");
        static_assert(Serializable<std::vector<Item>>, "mproc::Pool::map: the input elements are not serializable (see <mproc/codec.hpp>)");
        static_assert(Serializable<std::vector<R>>, "mproc::Pool::map: the function's results are not serializable (see <mproc/codec.hpp>)");
        const std::size_t n = static_cast<std::size_t>(std::ranges::size(inputs));
        auto state = std::make_shared<detail::MapState<R>>(n, progress_, op);
        auto outcome = state->outcome;
        // One count stands for "still submitting", so that chunks settling during the submission
        // (results are collected while the task ring is full) cannot finish the map early.
        state->chunks_left = 1;
        auto it = std::ranges::begin(inputs);
        // Items are assumed to encode to about the first one's size (plus slack for varying sizes).
        std::size_t item_bytes = n == 0 ? 1 : encoded_size(static_cast<const Item&>(*it)) + 1;
        detail::ChunkPlan plan(n, processes(), chunksize, pool_->max_task_bytes() / (item_bytes + item_bytes / 4));
        std::size_t at = 0;
        for (std::size_t count = plan.next(); count != 0; at += count, count = plan.next()) {
            std::vector<Item> items;
            if constexpr (std::ranges::forward_range<Range>) { // one copy (a memcpy for contiguous trivial items)
                auto last = std::ranges::next(it, static_cast<std::ranges::range_difference_t<Range>>(count));
                items.assign(it, last);
                it = last;
            } else {
                items.reserve(count);
                for (std::size_t k = 0; k < count; ++k, ++it) items.push_back(*it);
            }
            detail::PendingTask pending{
                [state, at, count](detail::ResultStatus status, std::span<const std::byte> payload, pid_t pid) {
                    if (status == detail::ResultStatus::error) {
                        std::uint64_t index = 0;
                        auto e = detail::remote_error(payload, pid, &index);
                        state->fail_at(at + index, e);
                    } else {
                        try {
                            decode_into(payload, state->scratch); // reused: no fresh pages per chunk
                            std::move(state->scratch.begin(), state->scratch.end(), state->results.begin() + static_cast<std::ptrdiff_t>(at));
                        } catch (...) {
                            state->fail_at(at, std::current_exception());
                        }
                    }
                    state->chunk_done(count);
                },
                [state, at, count](std::exception_ptr e) {
                    state->fail_at(at, e);
                    state->chunk_done(count);
                },
                "task " + std::to_string(next_label_++) + " (" + op + " items " + std::to_string(at) + ".." +
                    std::to_string(at + count - 1) + ")"};
            ++state->chunks_left;
            pool_->submit<Task>(f, items, std::move(pending), op);
        }
        state->chunk_done(0);
        return Future<std::vector<R>>(std::make_unique<detail::PoolFutureSource<std::vector<R>>>(pool_, outcome));
    }

    std::shared_ptr<detail::WorkerPool> pool_;
    bool progress_ = false;
    std::uint64_t next_label_ = 1;
    int uncaught_at_start_ = std::uncaught_exceptions();
};

/// The range imap and imap_unordered return: iterate it once. `Range` is a view of the inputs.
template <class F, class Range, bool Ordered>
class Pool::LazyMap {
    using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
    using Task = detail::ChunkTask<F, Item, false>;
    using R = typename Task::Result;
    static_assert(!std::is_void_v<R>, "mproc::Pool::imap: the function returns void; use apply_async for side effects");

    struct Chunk {
        std::uint64_t id = 0;
        std::size_t count = 0;
        bool settled = false;
        std::vector<R> results;
        std::exception_ptr error;
    };

public:
    LazyMap(std::shared_ptr<detail::WorkerPool> pool, F f, Range inputs, std::size_t chunksize, bool progress)
        : pool_(std::move(pool)), f_(f), inputs_(std::move(inputs)), it_(std::ranges::begin(inputs_)),
          end_(std::ranges::end(inputs_)), fixed_(chunksize),
          bar_(progress, total_of(inputs_), Ordered ? "imap" : "imap_unordered"), start_(detail::Clock::now()) {}
    LazyMap(const LazyMap&) = delete;
    LazyMap& operator=(const LazyMap&) = delete;
    ~LazyMap() {
        for (auto& c : in_flight_)
            if (!c->settled) pool_->forget(c->id);
    }

    class iterator {
    public:
        using value_type = R;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(LazyMap* m) : m_(m) { m_->advance(); }
        const R& operator*() const { return m_->current(); }
        const R* operator->() const { return &m_->current(); }
        iterator& operator++() {
            m_->advance();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& i, std::default_sentinel_t) { return i.m_->finished(); }

    private:
        LazyMap* m_ = nullptr;
    };

    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }

    /// True once every result has been handed out.
    bool finished() const noexcept { return done_; }

private:
    template <class Rg>
    static std::size_t total_of(Rg& r) {
        if constexpr (std::ranges::sized_range<Rg>)
            return static_cast<std::size_t>(std::ranges::size(r));
        else
            return 0;
    }

    const R& current() {
        if (current_error_) std::rethrow_exception(current_error_);
        return *current_;
    }

    // Moves to the next result: tops up the chunks in flight, then waits for the next one to hand out.
    void advance() {
        current_error_ = nullptr;
        current_ = nullptr;
        for (;;) {
            if (!ready_.empty() && ready_pos_ < ready_.front()->count) {
                Chunk& c = *ready_.front();
                if (c.error) { // as in Python, a failed chunk yields its error once, in place of its items
                    current_error_ = c.error;
                    ready_pos_ = c.count;
                } else {
                    current_ = &c.results[ready_pos_++];
                }
                return;
            }
            if (!ready_.empty()) {
                ready_.pop_front();
                ready_pos_ = 0;
                continue;
            }
            top_up();
            if (in_flight_.empty()) {
                done_ = true;
                bar_.finish();
                return;
            }
            collect_settled();
            if (ready_.empty())
                pool_->wait_until([&] { return next_settled() != nullptr; }, detail::Deadline::never());
            collect_settled();
        }
    }

    Chunk* next_settled() {
        if (Ordered) return in_flight_.front()->settled ? in_flight_.front().get() : nullptr;
        for (auto& c : in_flight_)
            if (c->settled) return c.get();
        return nullptr;
    }

    void collect_settled() {
        while (!in_flight_.empty()) {
            Chunk* c = next_settled();
            if (!c) return;
            auto pos = std::find_if(in_flight_.begin(), in_flight_.end(), [&](auto& p) { return p.get() == c; });
            ready_.push_back(std::move(*pos));
            in_flight_.erase(pos);
        }
    }

    // Adaptive chunks: about 2 ms of work each, from the rate measured so far; starts at one item.
    std::size_t next_chunk_size() const {
        if (fixed_) return fixed_;
        double secs = std::chrono::duration<double>(detail::Clock::now() - start_).count();
        if (finished_items_ == 0 || secs <= 0) return 1;
        double per_worker_rate = static_cast<double>(finished_items_) / secs / pool_->processes();
        return std::clamp<std::size_t>(static_cast<std::size_t>(per_worker_rate * 0.002), 1, 65536);
    }

    void top_up() {
        const std::size_t limit = 2 * static_cast<std::size_t>(pool_->processes());
        while (in_flight_.size() < limit && it_ != end_) {
            std::size_t want = next_chunk_size();
            std::vector<Item> items;
            items.reserve(std::min<std::size_t>(want, 65536));
            for (; items.size() < want && it_ != end_; ++it_) items.push_back(*it_);
            auto chunk = std::make_unique<Chunk>();
            Chunk* c = chunk.get();
            c->count = items.size();
            detail::PendingTask pending{
                [this, c](detail::ResultStatus status, std::span<const std::byte> payload, pid_t pid) {
                    if (status == detail::ResultStatus::error) {
                        c->error = detail::remote_error(payload, pid);
                    } else {
                        try {
                            c->results = decode<std::vector<R>>(payload);
                        } catch (...) {
                            c->error = std::current_exception();
                        }
                    }
                    settle(*c);
                },
                [this, c](std::exception_ptr e) {
                    c->error = e;
                    settle(*c);
                },
                std::string("task (") + (Ordered ? "imap" : "imap_unordered") + " items " + std::to_string(submitted_) + ".." +
                    std::to_string(submitted_ + items.size() - 1) + ")"};
            submitted_ += items.size();
            c->id = pool_->submit<Task>(f_, items, std::move(pending), Ordered ? "imap" : "imap_unordered");
            in_flight_.push_back(std::move(chunk));
        }
    }

    void settle(Chunk& c) {
        c.settled = true;
        finished_items_ += c.count;
        bar_.advance(c.count);
    }

    std::shared_ptr<detail::WorkerPool> pool_;
    F f_;
    Range inputs_; // a view: a reference to the caller's range, or the owner of a temporary one
    std::ranges::iterator_t<Range> it_;
    std::ranges::sentinel_t<Range> end_;
    std::size_t fixed_;
    detail::ProgressBar bar_;
    detail::Clock::time_point start_;
    std::deque<std::unique_ptr<Chunk>> in_flight_;
    std::deque<std::unique_ptr<Chunk>> ready_;
    std::size_t ready_pos_ = 0;
    std::size_t submitted_ = 0;
    std::size_t finished_items_ = 0;
    const R* current_ = nullptr;
    std::exception_ptr current_error_;
    bool done_ = false;
};

} // namespace mproc
