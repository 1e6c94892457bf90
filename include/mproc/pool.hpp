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

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "codec.hpp"
#include "detail/algorithm.hpp"
#include "detail/chrono.hpp"
#include "detail/deadline.hpp"
#include "detail/deferred.hpp"
#include "detail/functional.hpp"
#include "detail/pool/checks.hpp"
#include "detail/pool/chunk_plan.hpp"
#include "detail/pool/future_state.hpp"
#include "detail/pool/imap_source.hpp"
#include "detail/pool/map_state.hpp"
#include "detail/progress.hpp"
#include "detail/ranges.hpp"
#include "detail/worker_pool.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "process.hpp"

namespace mproc {

/// `processes`: workers (0: cpu_count()). `initializer`: run once in every worker, replacements
/// included, before its first task. `maxtasksperchild`: a worker is replaced after that many tasks
/// (0: never). `task_timeout`: a task running longer is failed with TimeoutError and its worker
/// killed (0: no limit); in a map it applies to each item. `progress`: map, imap and starmap draw
/// a progress bar on stderr, counting items as they complete. `on_progress(done, total)`: called as
/// items complete (total 0 for an imap over an unsized range), on a thread that waits on the pool,
/// never under the pool's lock (it may use the pool). The queue sizes bound the bytes of tasks and
/// results in flight; larger messages still go through.
struct PoolOptions {
    int processes = 0;
    std::function<void()> initializer = {};
    std::size_t maxtasksperchild = 0;
    std::chrono::duration<double> task_timeout{0};
    bool progress = false;
    std::function<void(std::size_t done, std::size_t total)> on_progress = {};
    std::size_t task_queue_bytes = std::size_t{1} << 20;
    std::size_t result_queue_bytes = std::size_t{4} << 20;
};

/// Options of one apply_async/submit: `timeout` bounds this task's run (0: the pool's task_timeout);
/// a task that overruns it fails with TimeoutError and its worker is killed and replaced.
struct TaskOptions {
    std::chrono::duration<double> timeout{0};
};

/// Options of one map, starmap, imap or map_results call: `chunksize` (0: chosen automatically) and
/// `timeout`, a limit on each item's run (0: the pool's task_timeout).
struct MapOptions {
    std::size_t chunksize = 0;
    std::chrono::duration<double> timeout{0};
};

/// A pool of worker processes. Not copyable or movable.
///
/// Threads: every member, and the futures it returns, may be used from any number of threads of the
/// process that built the pool at once; an imap range is iterated by one thread at a time (several
/// ranges, each on its own thread, are fine). Results are collected, and the workers supervised, by
/// whichever thread is waiting (in map, get, join...); the other waiting threads sleep until their
/// results are in. Used from any other process (a forked child), every call that submits, waits or
/// cancels throws StateError; close() and terminate() do nothing there, processes() and
/// worker_pids() answer from the copy; the pool's owner is left untouched.
class Pool {
public:
    // The constructors are templates (over nothing) so that the pool engine they build is compiled
    // only where a Pool is built; the other non-template members reach it through detail::PoolEngine.

    /// cpu_count() workers.
    template <class = void>
    Pool() : Pool(PoolOptions{}) {}
    /// Throws ValueError if processes < 1.
    template <class = void>
    explicit Pool(int processes) : Pool(PoolOptions{.processes = at_least_one(processes)}) {}
    /// Forks the workers. Throws ValueError for a negative process count or timeout, OSError if fork fails.
    template <class D = void>
    explicit Pool(PoolOptions options) : progress_(options.progress), on_progress_(std::move(options.on_progress)) {
        if (options.processes < 0) throw ValueError("Pool: processes must be at least 1, got " + std::to_string(options.processes));
        if (options.task_timeout.count() < 0) throw ValueError("Pool: task_timeout must not be negative");
        int n = options.processes == 0 ? cpu_count() : options.processes;
        auto engine = std::make_shared<detail::dependent_t<D, detail::WorkerPool>>(n, std::move(options));
        engine_ = engine.get();
        pool_ = std::move(engine);
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    /// Finishes the queued work, then stops the workers (as close() + join()). When the pool is
    /// destroyed by an exception unwinding the stack, it terminates the workers instead (as Python's
    /// `with Pool()` does), so that an error never waits on hung tasks. In a forked child it does
    /// nothing: the pool is its parent's.
    ~Pool() {
        if (!engine().owned_here()) return;
        if (std::uncaught_exceptions() > uncaught_at_start_) {
            engine().terminate();
            return;
        }
        try {
            engine().join();
        } catch (...) {
            engine().terminate();
        }
    }

    int processes() const noexcept { return engine().processes(); }
    /// The pids of the current workers (replacements change them).
    std::vector<pid_t> worker_pids() const { return engine().worker_pids(); }

    // ------------------------------------------------------------------ map and starmap

    /// f(x) for every x of `inputs` (any sized input range), in order. Blocks until every item has
    /// settled, then returns the results or throws the error of the lowest failing index
    /// (RemoteError, WorkerCrashed, TimeoutError). `chunksize` 0 picks guided chunks. A worker's
    /// death fails only the item it was running; the other items of its chunk still complete.
    template <class F, std::ranges::sized_range Range>
    auto map(F f, const Range& inputs, std::size_t chunksize = 0) {
        return map(f, inputs, MapOptions{.chunksize = chunksize});
    }
    /// As above, with a chunksize and a per-item timeout.
    template <class F, std::ranges::sized_range Range>
    auto map(F f, const Range& inputs, MapOptions options) {
        if constexpr (!detail::map_callable<F, std::remove_cvref_t<std::ranges::range_value_t<Range>>>)
            map_async(f, inputs, options); // its static_assert says why
        else
            return map_async(f, inputs, options).get();
    }

    /// As map, without waiting for the results: the Future's get() returns the vector or throws;
    /// cancel() cancels every item not settled. Returns once every chunk is on the task ring.
    template <class F, std::ranges::sized_range Range>
    auto map_async(F f, const Range& inputs, std::size_t chunksize = 0) {
        return map_async(f, inputs, MapOptions{.chunksize = chunksize});
    }
    template <class F, std::ranges::sized_range Range>
    auto map_async(F f, const Range& inputs, MapOptions options) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        detail::check_pool_callable<F>();
        if constexpr (!detail::map_callable<F, Item>)
            detail::check_map_callable<F, Item>("map"); // one message, not a cascade
        else
            return submit_chunks<F, Item, false, false>(f, inputs, options, "map");
    }

    /// f(x) for every x, as one value-or-error per item, in order: never throws for a task's failure
    /// (a worker's crash, a timeout, an exception), so every good result is kept. The way to run a
    /// crash-prone function over many inputs.
    template <class F, std::ranges::sized_range Range>
    auto map_results(F f, const Range& inputs, MapOptions options = {}) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        detail::check_pool_callable<F>();
        if constexpr (!detail::map_callable<F, Item>)
            detail::check_map_callable<F, Item>("map_results");
        else
            return submit_chunks<F, Item, false, true>(f, inputs, options, "map_results").get();
    }

    /// g(std::get<0>(t), std::get<1>(t), ...) for every tuple (or pair) t of `inputs`, in order.
    template <class G, std::ranges::sized_range Range>
    auto starmap(G g, const Range& inputs, std::size_t chunksize = 0) {
        return starmap_async(g, inputs, MapOptions{.chunksize = chunksize}).get();
    }
    template <class G, std::ranges::sized_range Range>
    auto starmap(G g, const Range& inputs, MapOptions options) {
        return starmap_async(g, inputs, options).get();
    }
    /// As starmap, without waiting for the results.
    template <class G, std::ranges::sized_range Range>
    auto starmap_async(G g, const Range& inputs, std::size_t chunksize = 0) {
        return starmap_async(g, inputs, MapOptions{.chunksize = chunksize});
    }
    template <class G, std::ranges::sized_range Range>
    auto starmap_async(G g, const Range& inputs, MapOptions options) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        detail::check_pool_callable<G>();
        detail::check_starmap_callable<G, Item>();
        return submit_chunks<G, Item, true, false>(g, inputs, options, "starmap");
    }

    // ------------------------------------------------------------------ apply

    /// f(args...) in a worker; blocks for the result. Throws as Future::get.
    template <class F, class... Args>
    auto apply(F f, Args&&... args) {
        return apply_async(f, std::forward<Args>(args)...).get();
    }

    /// f(args...) in a worker; returns its Future once the task is on the task ring. Arguments are
    /// copied through the codec. Throws StateError once the pool is closed.
    template <class F, class... Args>
    auto apply_async(F f, Args&&... args) {
        return apply_async(TaskOptions{}, f, std::forward<Args>(args)...);
    }
    /// As above, with this task's own timeout.
    template <class F, class... Args>
    auto apply_async(TaskOptions options, F f, Args&&... args) {
        detail::check_pool_callable<F>();
        if constexpr (!detail::apply_callable<F, std::decay_t<Args>...>) {
            detail::check_apply_callable<F, std::decay_t<Args>...>(); // one message, not a cascade
        } else {
            return submit_call(options, f, std::forward<Args>(args)...);
        }
    }

    /// concurrent.futures' name for apply_async.
    template <class F, class... Args>
    auto submit(F f, Args&&... args) {
        return apply_async(f, std::forward<Args>(args)...);
    }
    template <class F, class... Args>
    auto submit(TaskOptions options, F f, Args&&... args) {
        return apply_async(options, f, std::forward<Args>(args)...);
    }

private:
    template <class F, class... Args>
    auto submit_call(TaskOptions options, F f, Args&&... args) {
        using Task = detail::CallTask<F, std::decay_t<Args>...>;
        using R = typename Task::Result;
        if (options.timeout.count() < 0) throw ValueError("Pool::apply_async: the timeout must not be negative");
        using Sink = detail::ApplySink<R>;
        auto state = std::make_shared<detail::FutureState<R>>();
        auto task = std::make_shared<detail::Submission<Task, F, std::tuple<std::decay_t<Args>...>, detail::Returned<R>, Sink>>(
            f, std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...), Sink{state});
        task->label = "task " + std::to_string(next_label_++) + " (apply)";
        task->timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(options.timeout);
        state->tasks.push_back(task);
        pool<F>()->submit(std::move(task), "apply_async");
        pool<F>()->flush();
        return detail::FutureAccess::make<R>(std::make_unique<detail::PoolFutureSource<R>>(pool_, state));
    }

public:
    // ------------------------------------------------------------------ imap

    template <class F, class Range, bool Ordered, bool AsResults>
    class LazyMap;

    /// f(x) for every x of `inputs`, lazily and in order: inputs are read and sent as the loop
    /// advances, with a bounded number of chunks in flight, so a huge range is never materialised
    /// and leaving the loop early is cheap. Dereferencing throws the item's error. If reading the
    /// inputs throws, the results of the items read before are delivered first, then that exception.
    /// A container passed as a temporary is kept alive by the returned range; an lvalue must outlive
    /// the loop. `chunksize` 0 adapts chunks to the measured cost of an item. The range also offers
    /// next_for(d), a bounded wait for the next result.
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap(F f, Range&& inputs, std::size_t chunksize = 0) {
        return imap(f, std::forward<Range>(inputs), MapOptions{.chunksize = chunksize});
    }
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap(F f, Range&& inputs, MapOptions options) {
        return lazy<true, false>(f, std::forward<Range>(inputs), options, "imap");
    }
    /// As imap, yielding results as they finish (chunks in any order).
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 0) {
        return imap_unordered(f, std::forward<Range>(inputs), MapOptions{.chunksize = chunksize});
    }
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap_unordered(F f, Range&& inputs, MapOptions options) {
        return lazy<false, false>(f, std::forward<Range>(inputs), options, "imap_unordered");
    }
    /// As imap, yielding a Result<R> per item (value or error) instead of throwing for it.
    template <class F, std::ranges::viewable_range Range>
        requires std::ranges::input_range<Range>
    auto imap_results(F f, Range&& inputs, MapOptions options = {}) {
        return lazy<true, true>(f, std::forward<Range>(inputs), options, "imap_results");
    }

    // ------------------------------------------------------------------ lifecycle

    /// No more tasks may be submitted (they throw StateError); queued ones still run.
    void close() noexcept { engine().close(); }
    /// Waits for every submitted task to settle, then stops the workers. Call close() first, as in
    /// Python; join() without close() is a StateError.
    void join() {
        if (!engine().closed()) throw StateError("Pool::join: close() or terminate() the pool first");
        engine().join();
    }
    /// As join, waiting at most `d`: false if tasks were still unsettled then (the pool runs on).
    template <class Rep, class Period>
    bool join_for(std::chrono::duration<Rep, Period> d) {
        if (!engine().closed()) throw StateError("Pool::join_for: close() or terminate() the pool first");
        return engine().join(detail::Deadline::after(d));
    }
    /// Kills the workers now; unsettled tasks fail with StateError.
    void terminate() noexcept { engine().terminate(); }

private:
    detail::PoolEngine& engine() const noexcept { return *engine_; }
    // The engine as its class, for the template members: named through their parameter D, so that
    // only a translation unit that uses them compiles the engine (detail/deferred.hpp).
    template <class D>
    const std::shared_ptr<detail::dependent_t<D, detail::WorkerPool>>& pool() const noexcept {
        return pool_;
    }

    static int at_least_one(int processes) {
        if (processes < 1) throw ValueError("Pool: processes must be at least 1, got " + std::to_string(processes));
        return processes;
    }

    template <class Rg>
    static std::size_t total_of(Rg& r) {
        if constexpr (std::ranges::sized_range<Rg>)
            return static_cast<std::size_t>(std::ranges::size(r));
        else
            return 0;
    }

    template <class = void> // compiled only where a map builds it
    std::shared_ptr<detail::Progress> make_progress(std::size_t total, const char* what) const {
        if (!progress_ && !on_progress_) return nullptr;
        return std::make_shared<detail::Progress>(progress_, on_progress_, total, what);
    }

    template <bool Ordered, bool AsResults, class F, class Range>
    auto lazy(F f, Range&& inputs, MapOptions options, const char* op) {
        detail::check_pool_callable<F>();
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        if constexpr (!detail::map_callable<F, Item>) {
            detail::check_map_callable<F, Item>(op);
        } else {
            if (options.timeout.count() < 0) throw ValueError(std::string("Pool::") + op + ": the timeout must not be negative");
            return LazyMap<F, detail::AllView<Range>, Ordered, AsResults>(pool_, f, detail::AllView<Range>(std::forward<Range>(inputs)), options,
                                                                          make_progress(total_of(inputs), op), op);
        }
    }

    template <class F, class Item, bool Star, bool PerItem, class Range>
    auto submit_chunks(const F& f, const Range& inputs, MapOptions options, const char* op) {
        using Worker = detail::ChunkTask<F, Item, Star>;
        using R = typename Worker::Result;
        static_assert(!std::is_void_v<R>, "mproc::Pool::map: the function returns void; use apply_async for side effects");
        static_assert(Serializable<std::vector<Item>>, "mproc::Pool::map: the input elements are not serializable (see <mproc/codec.hpp>)");
        static_assert(Serializable<std::vector<R>>, "mproc::Pool::map: the function's results are not serializable (see <mproc/codec.hpp>)");
        if (options.timeout.count() < 0) throw ValueError(std::string("Pool::") + op + ": the timeout must not be negative");
        using Element = std::conditional_t<PerItem, Result<R>, R>;
        using State = detail::MapState<R, Element>;
        using Sink = detail::MapSink<R, Element>;
        using Task = detail::Submission<Worker, F, std::vector<Item>, R, Sink>;
        const std::size_t n = static_cast<std::size_t>(std::ranges::size(inputs));
        auto state = std::make_shared<State>(n);
        auto future = state->future;
        auto progress = make_progress(n, op);
        auto it = std::ranges::begin(inputs);
        // Items are assumed to encode to about the first one's size.
        std::size_t item_bytes = n == 0 ? 0 : encoded_size(static_cast<const Item&>(*it));
        detail::ChunkPlan plan(n, processes(), options.chunksize, detail::chunk_cap(pool<F>()->max_task_bytes(), item_bytes));
        std::size_t at = 0;
        std::vector<std::shared_ptr<detail::PoolTask>> tasks;
        for (std::size_t count = plan.next(); count != 0; at += count, count = plan.next()) {
            std::vector<Item> items;
            detail::take_items(it, count, items);
            auto task = std::make_shared<Task>(f, std::move(items), Sink{state, at});
            task->count = count;
            task->base = at;
            task->progress = progress;
            task->timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(options.timeout);
            task->label = "task " + std::to_string(next_label_++) + " (" + op + " items " + std::to_string(at) + ".." +
                          std::to_string(at + count - 1) + ")";
            future->tasks.push_back(task);
            tasks.push_back(std::move(task));
        }
        state->chunks_left += tasks.size();
        for (auto& t : tasks) pool<F>()->submit(std::move(t), op);
        // The "still submitting" count, under the lock like every chunk (its callbacks: none yet).
        pool<F>()->locked([&] { state->chunk_done(); });
        pool<F>()->flush();
        return detail::FutureAccess::make<std::vector<Element>>(
            std::make_unique<detail::PoolFutureSource<std::vector<Element>>>(pool_, future));
    }

    // What LazyMap is built on: the shared lazy range over the pool's imap source, yielding R or
    // (imap_results) Result<R>.
    template <class F, class Range, bool Ordered, bool AsResults, class R = typename detail::PoolImapSource<F, Range, Ordered>::Result>
    using LazyBase = detail::LazyRange<R, detail::PoolImapSource<F, Range, Ordered>, Ordered, std::conditional_t<AsResults, Result<R>, R>>;

    std::shared_ptr<detail::WorkerPool> pool_;
    detail::PoolEngine* engine_ = nullptr; // pool_, as the interface the non-template members use
    bool progress_ = false;
    detail::ProgressCallback on_progress_;
    std::atomic<std::uint64_t> next_label_{1};
    int uncaught_at_start_ = std::uncaught_exceptions();
};

/// The range imap, imap_unordered and imap_results return: iterate it once, from one thread at a
/// time (or call next_for). `Range` is a view of the inputs. Its loop (begin, end, finished and the
/// iterator) is the one every pool's imap shares (detail/pool/lazy_range.hpp).
template <class F, class Range, bool Ordered, bool AsResults>
class Pool::LazyMap : public Pool::LazyBase<F, Range, Ordered, AsResults> {
    using Base = Pool::LazyBase<F, Range, Ordered, AsResults>;

public:
    /// What the loop yields: R, or Result<R> for imap_results.
    using value_type = typename Base::value_type;

    LazyMap(std::shared_ptr<detail::WorkerPool> pool, F f, Range inputs, MapOptions options, std::shared_ptr<detail::Progress> progress,
            const char* op)
        : Base(std::in_place, std::move(pool), f, std::move(inputs), options.chunksize,
               std::chrono::duration_cast<std::chrono::nanoseconds>(options.timeout), std::move(progress), op) {}

    /// The next result, waiting at most `d`: nullopt once every result was handed out; throws
    /// TimeoutError if none came in time (call again to go on waiting), or the item's error (imap).
    template <class Rep, class Period>
    std::optional<value_type> next_for(std::chrono::duration<Rep, Period> d) {
        if (!this->advance(detail::Deadline::after(d)))
            throw TimeoutError(std::string("Pool::") + this->source_.op() + ": no result within the time given to next_for");
        if (this->finished()) return std::nullopt;
        return this->current();
    }
};

} // namespace mproc
