// The engine under Pool: the task and result rings, the worker processes, and the parent-side table
// of unsettled tasks with its supervision (crashes, timeouts, replacements).
//
// Protocol. The parent puts tasks on one shared ring; idle workers take them. A task is
// [TaskHeader][function object bytes][codec-encoded arguments]; the header carries a pointer to a
// `run` function instantiated for the task's types, valid in the workers because they are forks of
// the parent. A task covers `count` items (1 for apply, a chunk for map) and runs them from item
// `first` on. A worker answers on the result ring with records [ResultHeader][payload]: the encoded
// results of items [first, first + count), or the error of such items.
//
// Ownership before decoding. A worker writes the task's id, ring position and first item into its
// slot in shared memory (MessageRing::get's claim), then copies the task out of the ring, and only
// then decodes and runs it. A task whose decoding kills the worker has left the ring; the parent puts
// it back once, and fails it the second time: it never comes back to poison worker after worker.
//
// Per-item results. A worker encodes each item's result into its slot's result buffer (shared
// memory) and publishes the count of items finished; a full buffer, the end of the task or an item
// that throws sends the buffered results as one record. When a worker dies, the parent takes the
// results it had buffered, fails the item it was running (WorkerCrashed, or TimeoutError when the
// parent killed it for overrunning), and puts the items not started back on the ring as a new task:
// nothing is lost, nothing runs twice.
//
// Attribution. When a worker dies, the parent asks, in this order: was the task its slot names taken
// out of the ring (consumed(position))? If not, it is still queued for the next worker. Does another
// worker's slot name the same task, reserved later? Then that worker took it after the dead one
// reserved it. Then it
// drains every published result; a task still unsettled after that was the dead worker's. Each step
// only ever sees facts published before it, so no task is blamed on a worker that did not run it.
//
// Threads. Any number of threads may submit and wait. The parent's state is under one mutex; one
// waiting thread at a time collects results and supervises the workers (the others sleep on a
// condition variable and are woken as results come in). The parent never blocks on the task ring:
// a task that does not fit waits in a backlog that whoever collects results feeds, fragment by
// fragment, so arguments and results of any size can never stall the pool.
//
// Workers. A zygote process, forked when the pool is built, forks every worker, the replacements
// included (pool_zygote.hpp): each starts from the parent as it was then, whatever threads or memory
// the parent has since. If the zygote dies (its workers die with it), the pool fails every unsettled
// task with WorkerCrashed naming the zygote and refuses later tasks with StateError.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "../errors.hpp"
#include "functional.hpp"
#include "placement.hpp"
#include "deadline.hpp"
#include "deferred.hpp"
#include "callbacks.hpp"
#include "codec/bytes.hpp"
#include "demangle.hpp"
#include "shared_layout.hpp"
#include "message_ring.hpp"
#include "posix/fork_hooks.hpp"
#include "posix/process.hpp"
#include "posix/terminal.hpp"
#include "pool/calls.hpp"
#include "pool/engine.hpp"
#include "pool/task_table.hpp"
#include "pool_zygote.hpp"
#include "progress.hpp"

namespace mproc::detail {

// TaskContext, WorkerPool (and the zygote's classes) are class templates over an unused parameter,
// so that their bodies are compiled only in translation units that build a Pool.
template <class = void>
class BasicTaskContext;
using TaskContext = BasicTaskContext<>;
template <class = void>
class BasicWorkerPool;
using WorkerPool = BasicWorkerPool<>;

/// A task decoded in a worker, ready to run its items.
class PreparedTask {
public:
    virtual ~PreparedTask() = default;
    virtual void run(TaskContext& out) = 0;
};

using TaskRunner = std::unique_ptr<PreparedTask> (*)(std::span<const std::byte> fn, std::span<const std::byte> args);

struct TaskHeader {
    std::uint64_t id; // 0 is never used
    TaskRunner runner;
    std::uint64_t fn_bytes;
    std::uint64_t first;           // the first item to run
    std::uint64_t count;           // items in the task
    std::int64_t item_timeout_ns;  // 0: no limit; else the worker stamps each item's start
};

enum class ResultKind : std::uint32_t { items = 0, error = 1 };

struct ResultHeader {
    std::uint64_t id;
    ResultKind kind;
    std::int32_t worker_pid;
    std::uint64_t first; // items [first, first + count) of the task
    std::uint64_t count;
};

// The headers travel through the rings by memcpy, between processes of the same program: trivially
// copyable, and without padding (no uninitialised bytes copied into shared memory).
static_assert(std::is_trivially_copyable_v<TaskHeader> && shareable_layout<TaskHeader>);
static_assert(std::is_trivially_copyable_v<ResultHeader> && shareable_layout<ResultHeader>);
static_assert(sizeof(TaskHeader) == 6 * 8 && offsetof(TaskHeader, item_timeout_ns) == 5 * 8);
static_assert(offsetof(ResultHeader, kind) == 8 && offsetof(ResultHeader, worker_pid) == 12 &&
              offsetof(ResultHeader, first) == 16 && sizeof(ResultHeader) == 32);

/// One worker's shared state, written by the worker and read by the parent (while the worker runs,
/// for timeouts and progress; after its death, to settle what it was doing).
struct alignas(64) WorkerSlot {
    std::atomic<std::uint64_t> task{0};      // the task being taken or run, 0 when idle
    std::atomic<std::uint64_t> position{0};  // where that task began in the task ring
    std::atomic<std::uint64_t> claim{0};     // the order of that reservation among all workers'
    std::atomic<std::int64_t> started_ns{0}; // when its current item (or the task) began; 0 idle
    std::atomic<std::uint32_t> initialized{0};
    std::atomic<std::uint32_t> running{0};   // 0: taking or decoding the task; 1: running its items
    std::atomic<std::uint64_t> next_item{0}; // items before it are finished
    // Items [buffer_first, next_item) have their results encoded in the slot's buffer, bytes
    // [0, buffer_used) (buffer_used may run ahead by the item being written: the count rules).
    std::atomic<std::uint64_t> buffer_first{0};
    std::atomic<std::uint64_t> buffer_used{0};
};
// One cache line per worker: a worker's stores to its slot never contend with another's.
static_assert(shareable_layout<WorkerSlot> && alignof(WorkerSlot) == 64 && sizeof(WorkerSlot) == 64);

/// The ids of tasks cancelled while on the task ring (the most recent 256): a worker that takes one
/// drops it unrun. The parent writes an id here before it looks for a worker running the task, and a
/// worker publishes its reservation before it looks here, so one of them always sees the other.
struct CancelTable {
    static constexpr std::size_t size = 256;
    std::atomic<std::uint64_t> ids[size] = {};
    std::atomic<std::uint64_t> next{0};
    void add(std::uint64_t id) noexcept { ids[next.fetch_add(1) % size].store(id); }
    bool contains(std::uint64_t id) const noexcept {
        for (const auto& e : ids)
            if (e.load() == id) return true;
        return false;
    }
};
static_assert(shareable_layout<CancelTable> && offsetof(CancelTable, next) == CancelTable::size * 8);

// True in a process that a task forked from a worker: such a copy must never touch the pool.
inline bool worker_copy = false;

/// A worker's side of the task it runs: publishes each item's outcome (see the file comment).
template <class>
class BasicTaskContext {
public:
    BasicTaskContext(MessageRing& results, WorkerSlot& slot, std::span<std::byte> buffer, const TaskHeader& h, pid_t me)
        : ring_(results), slot_(slot), buffer_(buffer), id_(h.id), next_(h.first), buffer_first_(h.first),
          count_(h.count), stamp_items_(h.item_timeout_ns != 0), me_(me) {}

    std::size_t first() const noexcept { return static_cast<std::size_t>(next_); }

    /// The current item finished with `value`.
    template <class R>
    void item_done(const R& value) {
        leave_if_copy();
        const std::size_t n = codec::element_size(value);
        if (used_ + n > buffer_.size()) {
            flush();
            if (n > buffer_.size()) { // an item larger than the buffer travels on its own
                send_items(value, n);
                advance();
                buffer_first_ = next_;
                slot_.buffer_first.store(buffer_first_, std::memory_order_release);
                return;
            }
        }
        codec::write_element(value, buffer_.data() + used_);
        used_ += n;
        slot_.buffer_used.store(used_, std::memory_order_release);
        advance();
    }

    /// Runs items [first(), count) of a chunk, `call(i)` giving item i's result: what a loop of
    /// item_done() and item_failed() does, with the same counts published in the same order. The
    /// counts stay in locals across the call: the item's function is opaque to the compiler, which
    /// would reload and store every member around each call (map(square): ~17 more instructions an
    /// item, +45% worker time).
    template <class R, class Call>
    void run_items(std::size_t count, Call&& call) {
        std::byte* const buffer = buffer_.data();
        const std::size_t capacity = buffer_.size();
        WorkerSlot& slot = slot_;
        const bool stamp = stamp_items_;
        std::uint64_t next = next_;
        std::size_t used = used_;
        while (next < count) {
            bool in_members = false; // true once the counts were handed back to next_ and used_
            try {
                decltype(auto) returned = call(static_cast<std::size_t>(next)); // R, or a reference to one
                const R& value = returned;
                leave_if_copy();
                const std::size_t n = codec::element_size(value);
                if (used + n <= capacity) { // item_done's common case
                    codec::write_element(value, buffer + used);
                    used += n;
                    slot.buffer_used.store(used, std::memory_order_release);
                    slot.next_item.store(++next, std::memory_order_release);
                    if (stamp) slot.started_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
                    continue;
                }
                next_ = next;
                used_ = used;
                in_members = true;
                item_done(value);
            } catch (...) {
                if (!in_members) {
                    next_ = next;
                    used_ = used;
                }
                item_failed();
            }
            next = next_;
            used = used_;
        }
        next_ = next;
        used_ = used;
    }

    /// The current item threw: its error travels, the next items run.
    void item_failed() {
        leave_if_copy();
        flush();
        send_error(1, describe_current_exception());
        advance();
        buffer_first_ = next_;
        slot_.buffer_first.store(buffer_first_, std::memory_order_release);
    }

    /// The whole task failed before its items could run (its arguments did not decode).
    void task_failed() {
        send_error(count_ - next_, describe_current_exception());
        next_ = count_;
    }

    /// Sends what the buffer holds: the task is over.
    void finish() {
        leave_if_copy();
        flush();
    }

private:
    static void leave_if_copy() {
        if (worker_copy) posix::exit_now(0); // a task forked and its copy returned: it owns nothing here
    }

    void advance() {
        ++next_;
        slot_.next_item.store(next_, std::memory_order_release);
        if (stamp_items_) slot_.started_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }

    void flush() {
        if (next_ == buffer_first_) return;
        ResultHeader h{id_, ResultKind::items, me_, buffer_first_, next_ - buffer_first_};
        ring_.put(sizeof h + used_, [&](std::byte* out) {
            std::memcpy(out, &h, sizeof h);
            std::memcpy(out + sizeof h, buffer_.data(), used_);
        }, Deadline::never());
        // The order matters to a parent reading the slot after a death here: first the buffer is
        // empty (no item counted twice), then its size.
        buffer_first_ = next_;
        slot_.buffer_first.store(buffer_first_, std::memory_order_release);
        used_ = 0;
        slot_.buffer_used.store(0, std::memory_order_release);
    }

    template <class R>
    void send_items(const R& value, std::size_t n) {
        std::vector<std::byte> bytes(sizeof(ResultHeader) + n);
        ResultHeader h{id_, ResultKind::items, me_, next_, 1};
        std::memcpy(bytes.data(), &h, sizeof h);
        codec::write_element(value, bytes.data() + sizeof h);
        ring_.put_fragmented(bytes, Deadline::never());
    }

    void send_error(std::uint64_t items, const ExceptionText& e) {
        ResultHeader h{id_, ResultKind::error, me_, next_, items};
        std::vector<std::byte> bytes(sizeof h + codec::encoded_size(e));
        std::memcpy(bytes.data(), &h, sizeof h);
        codec::encode_into(e, bytes.data() + sizeof h);
        ring_.put_fragmented(bytes, Deadline::never());
    }

    MessageRing& ring_;
    WorkerSlot& slot_;
    std::span<std::byte> buffer_;
    std::uint64_t id_;
    std::uint64_t next_;
    std::uint64_t buffer_first_;
    std::uint64_t count_;
    std::size_t used_ = 0;
    bool stamp_items_;
    std::int32_t me_;
};

template <class F>
F function_from_bytes(std::span<const std::byte> bytes) {
    static_assert(std::is_trivially_copyable_v<F>);
    alignas(F) unsigned char storage[sizeof(F)];
    std::memcpy(storage, bytes.data(), sizeof(F));
    return *std::launder(reinterpret_cast<F*>(storage));
}

/// apply(f, args...): one call, one item.
template <class F, class... Args>
class CallTask final : public PreparedTask {
public:
    using Result = std::invoke_result_t<F&, Args&...>;
    CallTask(F f, std::tuple<Args...> args) : f_(f), args_(std::move(args)) {}
    static std::unique_ptr<PreparedTask> prepare(std::span<const std::byte> fn, std::span<const std::byte> args) {
        return std::make_unique<CallTask>(function_from_bytes<F>(fn), codec::decode<std::tuple<Args...>>(args));
    }
    void run(TaskContext& out) override {
        try {
            out.item_done(call_returned<F, std::tuple<Args...>, true>(f_, args_));
        } catch (...) {
            out.item_failed();
        }
    }

private:
    F f_;
    std::tuple<Args...> args_;
};

/// A chunk of map (Star = false) or starmap (Star = true): one item per element.
template <class F, class Item, bool Star>
class ChunkTask final : public PreparedTask {
public:
    using Result = std::remove_cvref_t<CallResult<F, Item, Star>>;

    ChunkTask(F f, std::vector<Item> items) : f_(f), items_(std::move(items)) {}
    static std::unique_ptr<PreparedTask> prepare(std::span<const std::byte> fn, std::span<const std::byte> args) {
        return std::make_unique<ChunkTask>(function_from_bytes<F>(fn), codec::decode<std::vector<Item>>(args));
    }
    void run(TaskContext& out) override {
        out.run_items<Result>(items_.size(), [this](std::size_t i) -> decltype(auto) {
            return call_item<F, Item, Star>(f_, items_[i]);
        });
    }

private:
    F f_;
    std::vector<Item> items_;
};

/// The parent's side of one submitted task: what to send, and where its items' outcomes go.
class PoolTask {
public:
    virtual ~PoolTask() = default;
    /// The worker-side runner and the body that follows the header: function bytes, then arguments.
    virtual TaskRunner runner() const = 0;
    virtual std::size_t fn_bytes() const = 0;
    virtual std::size_t body_bytes() const = 0;
    virtual void write_body(std::byte* out) const = 0;
    /// Items [first, first + n) finished; `encoded` holds their results, element after element
    /// (it may run on past them). Only items at or past `settled` are new. Throws SerializationError.
    virtual void take_results(std::size_t first, std::size_t n, std::span<const std::byte> encoded) = 0;
    /// Items [first, first + n) failed with `e`.
    virtual void fail_items(std::size_t first, std::size_t n, std::exception_ptr e) = 0;
    /// Every item has its outcome. Returns what must run once the pool's lock is released (the
    /// Future's done callbacks), or an empty function.
    virtual std::function<void()> done() { return {}; }

    std::size_t count = 1;   // items
    std::size_t settled = 0; // items [0, settled) have their outcome
    std::size_t base = 0;    // the index of item 0 in its map, for error messages
    std::chrono::nanoseconds timeout{0}; // per item; 0: the pool's task_timeout
    std::string label;       // "task 7 (map items 100..199)", for error messages
    std::shared_ptr<Progress> progress; // the map's progress, if it shows any
    int decode_deaths = 0;   // workers that died taking or decoding it
};

/// A PoolTask over function `F` and arguments `Body` (a tuple for apply, a vector of items for a
/// chunk), run in the worker by `Worker`. `Sink` receives the outcomes: sink.result(i, R&&),
/// sink.failed(i, exception_ptr), and sink.done() -> std::function<void()> (see PoolTask::done).
template <class Worker, class F, class Body, class R, class Sink>
class Submission final : public PoolTask {
public:
    Submission(F f, Body body, Sink sink) : f_(f), body_(std::move(body)), sink_(std::move(sink)) {}
    TaskRunner runner() const override { return &Worker::prepare; }
    std::size_t fn_bytes() const override { return sizeof(F); }
    std::size_t body_bytes() const override { return sizeof(F) + codec::encoded_size(body_); }
    void write_body(std::byte* out) const override {
        if constexpr (!std::is_empty_v<F>) std::memcpy(out, &f_, sizeof(F)); // an empty F's byte is padding
        codec::encode_into(body_, out + sizeof(F));
    }
    void take_results(std::size_t first, std::size_t n, std::span<const std::byte> encoded) override {
        codec::Reader r(encoded, &codec::type_name<R>);
        for (std::size_t i = first; i < first + n; ++i) {
            R value{};
            codec::read_element(r, value);
            if (i >= settled) sink_.result(i, std::move(value));
        }
    }
    void fail_items(std::size_t first, std::size_t n, std::exception_ptr e) override {
        for (std::size_t i = std::max(first, settled); i < first + n; ++i) sink_.failed(i, e);
    }
    std::function<void()> done() override { return sink_.done(); }

private:
    F f_;
    Body body_;
    Sink sink_;
};

/// The parent's side of a pool: rings, workers, unsettled tasks. Shared (std::shared_ptr) by the
/// Pool and its futures. Every member may be called from any thread of the process that built it;
/// from any other process they throw StateError.
template <class U>
class BasicWorkerPool final : public PoolEngine {
public:
    /// `processes` workers, configured by `options`, a PoolOptions (pool.hpp): its initializer,
    /// maxtasksperchild, task_timeout, task_queue_bytes and result_queue_bytes, taken as they are.
    template <class Options>
    BasicWorkerPool(int processes, Options&& options)
        : processes_(processes), initializer_(std::move(options.initializer)), maxtasksperchild_(options.maxtasksperchild),
          task_timeout_(options.task_timeout), tasks_(options.task_queue_bytes, 0, "Pool"),
          results_(options.result_queue_bytes, 0, "Pool"), owner_(posix::current_pid()) {
        // A buffer's flush must travel as one record.
        buffer_bytes_ = results_.max_record_payload() - sizeof(ResultHeader);
        for (int i = 0; i < processes_; ++i) {
            slots_.push_back(std::make_unique<SharedBlock<WorkerSlot>>());
            buffers_.push_back(static_cast<std::byte*>(Arena::instance().allocate(buffer_bytes_, 64)));
        }
        workers_.resize(static_cast<std::size_t>(processes_));
        zygote_.start([this](std::size_t i) { worker_main(i); }); // after the slots: workers inherit them
        for (std::size_t i = 0; i < workers_.size(); ++i) start_worker(i);
    }
    BasicWorkerPool(const BasicWorkerPool&) = delete;
    BasicWorkerPool& operator=(const BasicWorkerPool&) = delete;

    ~BasicWorkerPool() {
        if (posix::current_pid() != owner_) return; // a forked copy of the parent owns none of this
        try {
            if (!stopped_) join();
        } catch (...) {
            terminate();
        }
        for (std::byte* b : buffers_) Arena::instance().deallocate(b);
    }

    int processes() const noexcept override { return processes_; }
    /// The largest task that travels as one record, straight into shared memory.
    std::size_t max_task_bytes() const noexcept { return tasks_.max_record_payload() - sizeof(TaskHeader) - 64; }

    /// True in the process that built the pool.
    bool owned_here() const noexcept override { return posix::current_pid() == owner_; }

    /// Runs `fn` under the pool's lock (the lock the tasks' sinks are called under).
    template <class Fn>
    decltype(auto) locked(Fn&& fn) {
        std::lock_guard lk(mutex_);
        return fn();
    }

    /// Throws StateError unless called in the process that built the pool.
    void check_owner(const char* op) const {
        if (posix::current_pid() != owner_)
            throw StateError(std::string("Pool::") + op + ": the pool belongs to process " + std::to_string(owner_) +
                             "; a forked child (pid " + std::to_string(posix::current_pid()) +
                             ") cannot use it (create a Pool in the child instead)");
    }

    /// Queues `task` (its items from 0) and returns its id. The task is on the ring, or in the
    /// backlog that waiting threads feed to the ring; flush() waits until it is on the ring.
    std::uint64_t submit(std::shared_ptr<PoolTask> task, const char* op) {
        std::unique_lock lk(mutex_);
        check_owner(op);
        if (broken_) throw RemoteError(broken_->type_name(), broken_->what(), broken_->pid());
        if (!zygote_lost_.empty()) throw StateError(std::string("Pool::") + op + ": the pool is broken: " + zygote_lost_);
        if (closed_) throw StateError(std::string("Pool::") + op + ": the pool is closed");
        return enqueue(std::move(task), 0);
    }

    /// Waits until every submitted task is on the task ring (collecting results meanwhile).
    void flush() {
        wait_until([&] { return backlog_.empty(); }, Deadline::never());
    }

    /// Collects results and supervises workers until `done()` holds (evaluated under the pool's
    /// lock) or `d` passes. Returns done().
    template <class Done>
    bool wait_until(Done&& done, Deadline d) {
        std::unique_lock lk(mutex_);
        check_owner("wait");
        for (;;) {
            if (done()) return true;
            if (d.expired()) return false;
            if (!pumping_) {
                pumping_ = true;
                try {
                    pump(lk, d);
                } catch (...) {
                    pumping_ = false;
                    cv_.notify_all();
                    throw;
                }
                pumping_ = false;
                if (deferred_.empty()) {
                    cv_.notify_all();
                } else {
                    unlock_and_run_deferred(lk);
                    lk.lock();
                }
            } else {
                auto until = Clock::now() + supervision_tick;
                if (!d.is_never() && d.at() < until) until = d.at();
                cv_.wait_until(lk, until);
            }
        }
    }

    std::size_t unsettled() {
        std::lock_guard lk(mutex_);
        return pending_.size();
    }

    void close() noexcept override {
        std::lock_guard lk(mutex_);
        closed_ = true;
    }
    bool closed() override {
        std::lock_guard lk(mutex_);
        return closed_;
    }

    /// Waits for every task to settle, then lets the workers exit and reaps them. Returns false if
    /// `d` passed first (the pool is then still running).
    bool join(Deadline d = Deadline::never()) override {
        check_owner("join");
        if (!wait_until([&] { return pending_.empty() && backlog_.empty(); }, d)) return false;
        std::lock_guard lk(mutex_);
        if (stopped_) return true;
        closed_ = true;
        tasks_.close(); // idle workers wake with QueueClosed and exit 0
        for (auto& w : workers_)
            if (w && w->pid() != 0) w->join();
        zygote_.stop();
        stopped_ = true;
        return true;
    }

    /// Under the lock, if `unsettled()` says so (it may settle the Future first): cancels `tasks`.
    /// A task still in the backlog is dropped; one on the ring is marked so that the worker that
    /// takes it drops it; one being run has its worker killed (and replaced). Its unsettled items
    /// fail with CancelledError. Returns unsettled()'s answer.
    template <class Unsettled>
    bool cancel(const std::vector<std::weak_ptr<PoolTask>>& tasks, Unsettled&& unsettled) {
        std::unique_lock lk(mutex_);
        check_owner("cancel");
        if (!unsettled()) return false;
        for (auto& weak : tasks) {
            auto task = weak.lock();
            if (!task) continue;
            std::vector<std::uint64_t> ids;
            pending_.for_each([&](std::uint64_t id, const std::shared_ptr<PoolTask>& t) {
                if (t == task) ids.push_back(id);
            });
            for (std::uint64_t id : ids) {
                auto queued = std::find_if(backlog_.begin(), backlog_.end(), [&](auto& o) { return o.id == id && o.done == 0; });
                if (queued != backlog_.end()) {
                    backlog_.erase(queued);
                } else {
                    cancelled_->add(id);
                    for (std::size_t i = 0; i < workers_.size(); ++i)
                        if (slot(i).task.load() == id && workers_[i]->is_alive()) workers_[i]->kill(); // replaced by supervise()
                }
                pending_.erase(id);
            }
            if (!ids.empty() && task->settled < task->count) {
                settle_failed(*task, task->count - task->settled,
                              std::make_exception_ptr(CancelledError("Pool: " + task->label + " was cancelled")));
                done(*task);
            }
        }
        unlock_and_run_deferred(lk);
        return true;
    }

    /// Kills every worker at once; unsettled tasks fail with StateError.
    void terminate() noexcept override {
        std::unique_lock lk(mutex_);
        if (posix::current_pid() != owner_) return;
        closed_ = true;
        tasks_.close();
        for (auto& w : workers_) {
            try {
                if (w && w->is_alive()) w->kill();
                if (w && w->pid() != 0) w->join();
            } catch (...) {
            }
        }
        zygote_.stop();
        stopped_ = true;
        fail_all([](const PoolTask& p) {
            return std::make_exception_ptr(StateError("Pool::terminate: the pool was terminated before " + p.label + " finished"));
        });
        unlock_and_run_deferred(lk);
    }

    std::vector<pid_t> worker_pids() override {
        std::lock_guard lk(mutex_);
        std::vector<pid_t> pids;
        for (auto& w : workers_)
            if (w) pids.push_back(w->pid());
        return pids;
    }

private:
    // How often a waiting parent checks its workers' health and deadlines when no result arrives.
    static constexpr auto supervision_tick = std::chrono::milliseconds(10);

    struct Outgoing {
        std::uint64_t id;
        std::vector<std::byte> bytes;
        std::size_t done = 0; // bytes already on the ring
    };

    WorkerSlot& slot(std::size_t i) { return **slots_[i]; }

    // Under the lock. Puts the task (its items from `first`) on the ring, straight into shared
    // memory when it fits and nothing waits before it, else into the backlog.
    std::uint64_t enqueue(std::shared_ptr<PoolTask> task, std::size_t first) {
        const std::uint64_t id = next_id_++;
        auto timeout = task->timeout.count() ? task->timeout
                                             : std::chrono::duration_cast<std::chrono::nanoseconds>(task_timeout_);
        TaskHeader h{id, task->runner(), task->fn_bytes(), first, task->count, static_cast<std::int64_t>(timeout.count())};
        const std::size_t size = sizeof h + task->body_bytes();
        auto write = [&](std::byte* out) {
            std::memcpy(out, &h, sizeof h);
            task->write_body(out + sizeof h);
        };
        pending_.insert(id, task);
        if (backlog_.empty() && size <= tasks_.max_record_payload() && tasks_.put(size, write, Deadline::after(std::chrono::seconds(0))))
            return id;
        Outgoing o;
        o.id = id;
        o.bytes.resize(size);
        write(o.bytes.data());
        backlog_.push_back(std::move(o));
        feed();
        return id;
    }

    // Under the lock. Moves backlog to the ring while there is room, never waiting.
    void feed() {
        while (!backlog_.empty()) {
            Outgoing& o = backlog_.front();
            if (!tasks_.put_in_steps(o.bytes, o.done, Deadline::after(std::chrono::seconds(0)))) return;
            backlog_.pop_front();
        }
    }

    void start_worker(std::size_t i) {
        WorkerSlot& s = slot(i);
        s.task.store(0);
        s.started_ns.store(0);
        s.initialized.store(0);
        auto w = zygote_.spawn(i, "PoolWorker-" + std::to_string(++workers_started_));
        if (w) {
            workers_[i] = std::move(w);
        } else if (!workers_[i]) { // while the pool is built
            throw StateError("Pool: cannot start its workers: " + zygote_.death());
        } else {
            zygote_died();
        }
    }

    // ---- worker side (runs in the forked worker) ----

    void worker_main(std::size_t i) {
        posix::ignore_signal(SIGINT); // Ctrl-C is for the parent; a dying parent takes the workers along
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM}) posix::default_signal(sig);
        posix::on_fork_child([] { worker_copy = true; });
        WorkerSlot& s = slot(i);
        const pid_t me = posix::current_pid();
        if (initializer_) initializer_(); // an exception ends the worker; the parent reports it
        s.initialized.store(1);
        std::size_t tasks_done = 0;
        std::vector<std::byte> bytes;
        for (;;) {
            TaskHeader h{};
            try {
                tasks_.get([&](std::span<const std::byte> b) { bytes.assign(b.begin(), b.end()); }, Deadline::never(),
                           [&](std::span<const std::byte> first, std::uint64_t position) {
                               std::memcpy(&h, first.data(), sizeof h);
                               s.running.store(0);
                               s.next_item.store(h.first);
                               s.buffer_first.store(h.first);
                               s.buffer_used.store(0);
                               s.started_ns.store(Clock::now().time_since_epoch().count());
                               s.position.store(position);
                               s.claim.store(claims_->fetch_add(1) + 1); // under the ring's consumer lock
                               s.task.store(h.id); // last: the parent reads the rest once it sees the id
                           });
            } catch (const QueueClosed&) {
                return;
            }
            if (cancelled_->contains(h.id)) { // cancelled while it waited on the ring: dropped unrun
                s.task.store(0);
                continue;
            }
            BasicTaskContext<U> out(results_, s, {buffers_[i], buffer_bytes_}, h, me);
            std::unique_ptr<PreparedTask> task;
            try {
                task = h.runner(std::span<const std::byte>(bytes).subspan(sizeof h, h.fn_bytes),
                                std::span<const std::byte>(bytes).subspan(sizeof h + h.fn_bytes));
            } catch (...) {
                out.task_failed();
            }
            if (task) {
                s.running.store(1);
                task->run(out);
                out.finish();
            }
            s.started_ns.store(0);
            s.task.store(0);
            if (maxtasksperchild_ != 0 && ++tasks_done >= maxtasksperchild_) return;
        }
    }

    // ---- parent side ----

    // One round, under the lock (released while blocked on the result ring): feed the backlog, take
    // the results that are there (waiting up to `d` or the next supervision tick for the first), then
    // check the workers.
    void pump(std::unique_lock<std::mutex>& lk, Deadline d) {
        feed();
        auto tick = Deadline::after(supervision_tick);
        Deadline wait = (!d.is_never() && d.at() < tick.at()) ? d : tick;
        lk.unlock();
        bool got = false;
        try {
            got = take_result(wait);
            while (got && take_result(Deadline::after(std::chrono::seconds(0)))) {
            }
        } catch (...) {
            lk.lock();
            throw;
        }
        lk.lock();
        if (got) cv_.notify_all();
        feed();
        if (!got || Clock::now() - last_supervision_ >= supervision_tick) supervise();
    }

    // Without the lock: takes one record, settling under the lock.
    bool take_result(Deadline d) {
        return results_.get(
            [&](std::span<const std::byte> bytes) {
                ResultHeader h;
                std::memcpy(&h, bytes.data(), sizeof h);
                std::lock_guard g(mutex_);
                settle(h, bytes.subspan(sizeof h));
            },
            d);
    }

    // Under the lock.
    void settle(const ResultHeader& h, std::span<const std::byte> payload) {
        auto* found = pending_.find(h.id);
        if (!found) return; // settled already (timed out, cancelled) or forgotten
        auto task = *found;
        const std::size_t first = static_cast<std::size_t>(h.first), n = static_cast<std::size_t>(h.count);
        if (first + n <= task->settled) return; // delivered already (a worker died between flush and mark)
        if (h.kind == ResultKind::error) {
            auto e = codec::decode<ExceptionText>(payload);
            settle_failed(*task, first + n - task->settled, std::make_exception_ptr(RemoteError(e.type, e.message, h.worker_pid)));
        } else {
            try {
                task->take_results(first, n, payload);
                mark_settled(*task, first + n);
            } catch (...) {
                settle_failed(*task, first + n - task->settled, std::current_exception());
            }
        }
        if (task->settled >= task->count) finished(h.id);
    }

    // Under the lock: drops the backlog and fails every unsettled item of every task with
    // error(task) (the pool cannot run them any more).
    template <class Error>
    void fail_all(Error&& error) {
        backlog_.clear();
        pending_.take().for_each([&](std::uint64_t, const std::shared_ptr<PoolTask>& p) {
            if (p->settled < p->count) settle_failed(*p, p->count - p->settled, error(*p));
            done(*p);
        });
    }

    // Under the lock: the next `n` items of `task` failed with `e`.
    void settle_failed(PoolTask& task, std::size_t n, std::exception_ptr e) {
        task.fail_items(task.settled, n, e);
        mark_settled(task, task.settled + n);
    }

    // Under the lock: items [0, upto) of `task` have their outcome.
    void mark_settled(PoolTask& task, std::size_t upto) {
        if (upto <= task.settled) return;
        if (task.progress) {
            task.progress->settled(upto - task.settled);
            defer(task.progress->tick(0));
        }
        task.settled = upto;
    }

    // Under the lock: `call` runs once the lock is released (user code must not run under it).
    void defer(std::function<void()> call) {
        if (call) deferred_.push_back(std::move(call));
    }

    // Releases the lock, wakes the waiting threads, then runs what was deferred (user code never
    // runs under the lock).
    void unlock_and_run_deferred(std::unique_lock<std::mutex>& lk) {
        auto calls = std::move(deferred_);
        deferred_.clear();
        lk.unlock();
        cv_.notify_all();
        run_callbacks(calls, "mproc::Pool");
    }

    // Under the lock, each supervision tick: progress shown with the items the workers finished but
    // have not sent yet.
    void tick_progress() {
        std::vector<std::pair<Progress*, std::size_t>> running; // few: one per map showing progress
        auto entry = [&](Progress* p) -> std::size_t& {
            auto it = std::find_if(running.begin(), running.end(), [&](auto& r) { return r.first == p; });
            return it != running.end() ? it->second : running.emplace_back(p, 0).second;
        };
        pending_.for_each([&](std::uint64_t, const std::shared_ptr<PoolTask>& task) {
            if (task->progress) entry(task->progress.get());
        });
        if (running.empty()) return;
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            auto* task = pending_.find(slot(i).task.load(std::memory_order_acquire));
            if (!task || !(*task)->progress || slot(i).running.load() == 0) continue;
            std::size_t next = static_cast<std::size_t>(slot(i).next_item.load());
            if (next > (*task)->settled) entry((*task)->progress.get()) += next - (*task)->settled;
        }
        for (auto& [p, n] : running) defer(p->tick(n));
    }

    void finished(std::uint64_t id) {
        auto task = *pending_.find(id);
        pending_.erase(id);
        done(*task);
    }

    void done(PoolTask& task) {
        defer(task.done());
        if (task.progress && task.progress->all_settled()) defer(task.progress->finish());
    }

    // Under the lock.
    void supervise() {
        last_supervision_ = Clock::now();
        std::vector<std::pair<std::size_t, bool>> dead; // worker, killed for a timeout
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            BasicZygoteWorker<U>& w = *workers_[i];
            WorkerSlot& s = slot(i);
            const std::uint64_t id = s.task.load(std::memory_order_acquire);
            const std::int64_t started = s.started_ns.load();
            auto* task = id ? pending_.find(id) : nullptr;
            if (task && started != 0 && w.is_alive()) {
                auto limit = (*task)->timeout.count() ? (*task)->timeout
                                                         : std::chrono::duration_cast<std::chrono::nanoseconds>(task_timeout_);
                if (limit.count() > 0 && Clock::now() - Clock::time_point(Clock::duration(started)) > limit) {
                    w.kill();
                    w.join();
                    dead.emplace_back(i, true);
                    continue;
                }
            }
            if (!w.is_alive()) dead.emplace_back(i, false);
        }
        if (!dead.empty() && !stopped_ && zygote_alive(dead))
            for (auto [i, timed_out] : dead) settle_dead_worker(i, timed_out);
        tick_progress();
    }

    // Under the lock: worker `i` is dead (reaped). Settles what it was doing, then replaces it.
    void settle_dead_worker(std::size_t i, bool timed_out) {
        BasicZygoteWorker<U>& w = *workers_[i];
        WorkerSlot& s = slot(i);
        const std::uint64_t id = s.task.load(std::memory_order_acquire);
        const std::uint64_t position = s.position.load();
        // A reservation of the same task made later (by a live worker, or one that died too) means
        // this worker died before taking it.
        bool owned = id != 0 && tasks_.consumed(position);
        for (std::size_t j = 0; owned && j < workers_.size(); ++j)
            if (j != i && slot(j).task.load(std::memory_order_acquire) == id && slot(j).position.load() == position &&
                slot(j).claim.load() > s.claim.load())
                owned = false;
        // Results it (or a worker that took its task) published before are settled first.
        drain_locked();
        auto* found = owned ? pending_.find(id) : nullptr;
        if (found) {
            auto task = *found;
            const int code = w.exitcode().value_or(0);
            std::string cause = timed_out ? std::string("ran longer than ") + (task->timeout.count() ? "its timeout" : "task_timeout") +
                                                " (" + seconds_text(limit_of(*task)) + "); its worker (pid " +
                                                std::to_string(w.pid()) + ") was killed and replaced"
                                          : "failed: its worker (pid " + std::to_string(w.pid()) + ") " +
                                                (code < 0 ? "was killed by " + posix::signal_name(-code) : "exited with code " + std::to_string(code));
            auto error = [&](const std::string& where) {
                std::string what = "Pool: " + task->label + where + " " + cause;
                if (timed_out) return std::make_exception_ptr(TimeoutError(what));
                return std::make_exception_ptr(WorkerCrashed(what, w.pid(), code < 0 ? -code : 0, code < 0 ? 0 : code));
            };
            if (s.running.load() == 0) {
                // Died taking or decoding the task: no item started. Once may be bad luck (a kill
                // storm, the OOM killer elsewhere): it goes back on the ring. Twice is a poison task:
                // it fails whole rather than kill every worker in turn.
                if (++task->decode_deaths >= 2)
                    settle_failed(*task, task->count - task->settled, error(" (while decoding its arguments, twice)"));
            } else {
                salvage(i, *task);
                const std::size_t running = static_cast<std::size_t>(s.next_item.load());
                if (running < task->count && running >= task->settled) {
                    std::string where = task->count > 1 ? ", item " + std::to_string(task->base + running) + "," : "";
                    settle_failed(*task, running + 1 - task->settled, error(where));
                }
            }
            pending_.erase(id);
            if (task->settled < task->count) {
                enqueue(task, task->settled); // the items never started run on another worker
            } else {
                done(*task);
            }
        } else if (!s.initialized.load() && w.error()) {
            initializer_failed(*w.error());
        }
        if (!closed_ || !pending_.empty() || !backlog_.empty()) start_worker(i);
    }

    // The results a dead worker had buffered in its slot but not yet sent.
    void salvage(std::size_t i, PoolTask& task) {
        WorkerSlot& s = slot(i);
        const std::size_t first = static_cast<std::size_t>(s.buffer_first.load());
        const std::size_t next = static_cast<std::size_t>(s.next_item.load());
        const std::size_t used = std::min<std::size_t>(static_cast<std::size_t>(s.buffer_used.load()), buffer_bytes_);
        if (next <= first || next <= task.settled || first > task.settled) return;
        try {
            task.take_results(first, next - first, std::span<const std::byte>(buffers_[i], used));
            mark_settled(task, next);
        } catch (...) {
            settle_failed(task, next - task.settled, std::current_exception());
        }
    }

    // Under the lock: settles every result already published.
    void drain_locked() {
        for (;;) {
            bool got = results_.get(
                [&](std::span<const std::byte> bytes) {
                    ResultHeader h;
                    std::memcpy(&h, bytes.data(), sizeof h);
                    settle(h, bytes.subspan(sizeof h));
                },
                Deadline::after(std::chrono::seconds(0)));
            if (!got) return;
        }
    }

    std::chrono::nanoseconds limit_of(const PoolTask& t) const {
        return t.timeout.count() ? t.timeout : std::chrono::duration_cast<std::chrono::nanoseconds>(task_timeout_);
    }
    static std::string seconds_text(std::chrono::nanoseconds d) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g s", std::chrono::duration<double>(d).count());
        return buf;
    }

    // Every worker would fail the same way: fail the unsettled tasks rather than respawn forever.
    void initializer_failed(const RemoteError& e) {
        closed_ = true;
        broken_.emplace(e.type_name(), std::string("Pool: the initializer failed in worker ") + std::to_string(e.pid()) + ": " + e.what(), e.pid());
        fail_all([&](const PoolTask&) { return std::make_exception_ptr(*broken_); });
    }

    // Under the lock: has the zygote reap the dead workers; false once it has gone (the pool is
    // then broken: see zygote_died).
    bool zygote_alive(const std::vector<std::pair<std::size_t, bool>>& dead) {
        for (auto [i, timed_out] : dead) workers_[i]->exitcode();
        if (!zygote_.lost()) return true;
        zygote_died();
        return false;
    }

    // Under the lock: the zygote died, and every worker with it. Results already published and
    // buffered are kept; every other unsettled item fails with WorkerCrashed naming the zygote.
    void zygote_died() {
        if (!zygote_lost_.empty()) return;
        zygote_lost_ = zygote_.death() + "; the workers died with it (create a new Pool)";
        closed_ = true;
        for (auto& w : workers_)
            if (w) w->join(); // they die with the zygote: their slots no longer change
        drain_locked();
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            auto* task = pending_.find(slot(i).task.load(std::memory_order_acquire));
            if (task && slot(i).running.load() == 1) salvage(i, **task);
        }
        const int code = zygote_.exitcode().value_or(0);
        fail_all([&](const PoolTask& p) {
            return std::make_exception_ptr(WorkerCrashed("Pool: " + p.label + " cannot finish: " + zygote_lost_, zygote_.pid(),
                                                         code < 0 ? -code : 0, code < 0 ? 0 : code));
        });
    }

    // The members' types are named through U (Member<T> is T), so that g++ compiles the member
    // functions only where the engine is instantiated, not in every file that includes this header.
    template <class T>
    using Member = dependent_t<U, T>;

    int processes_;
    Member<std::function<void()>> initializer_; // run in each worker before its first task
    std::size_t maxtasksperchild_;      // 0: no limit
    std::chrono::duration<double> task_timeout_; // 0: no limit
    Member<MessageRing> tasks_;
    Member<MessageRing> results_;
    std::size_t buffer_bytes_ = 0;
    Member<std::vector<std::unique_ptr<SharedBlock<WorkerSlot>>>> slots_;
    Member<std::vector<std::byte*>> buffers_;
    Member<SharedBlock<std::atomic<std::uint64_t>>> claims_{std::uint64_t{0}}; // reservations ever made, for WorkerSlot::claim
    Member<SharedBlock<CancelTable>> cancelled_;
    BasicZygote<U> zygote_; // after every shared block the workers use; before workers_: destroyed after them
    std::vector<std::unique_ptr<BasicZygoteWorker<U>>> workers_;
    pid_t owner_;

    Member<std::mutex> mutex_; // guards everything below, and the tasks' sinks
    Member<std::condition_variable> cv_;
    bool pumping_ = false;
    Member<TaskTable<PoolTask>> pending_;
    Member<std::deque<Outgoing>> backlog_;
    Member<std::vector<std::function<void()>>> deferred_;
    std::uint64_t next_id_ = 1;
    int workers_started_ = 0;
    bool closed_ = false;
    bool stopped_ = false;
    Member<std::optional<RemoteError>> broken_; // the initializer failed: every task would
    std::string zygote_lost_;           // why the zygote died, if it did
    Clock::time_point last_supervision_{};
};

} // namespace mproc::detail
