// The machinery under Pool: the task and result rings, the worker processes, and the parent-side
// table of unsettled tasks with its supervision (crashes, timeouts, replacements).
//
// Protocol. The parent puts tasks on one shared ring; idle workers take them. A task is
// [TaskHeader][function object bytes][codec-encoded arguments]; the header carries a pointer to a
// `run` function instantiated for the task's types, which is valid in the workers because they are
// forks of the parent. A worker answers on the result ring with [ResultHeader][payload].
//
// Attribution of failures. Before a task leaves the task ring, the taking worker writes the task's id
// and ring position into its slot in shared memory (MessageRing::get's claim). When a worker dies,
// the parent first drains every result (a result the worker published before dying wins), then asks
// the ring whether the claimed task was taken (consumed(position)): if it was, the task failed with
// the worker (WorkerCrashed); if the worker died before taking it, the task is still queued and
// another worker runs it. A worker that overruns task_timeout is killed and its task gets
// TimeoutError. Either way a replacement worker is forked into the same slot.
//
// Supervision runs in the parent's calls (map, Future::get/wait, join...), not in a thread: the pool
// adds no thread to the user's program, and forks only from the thread that uses it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../codec.hpp"
#include "../errors.hpp"
#include "../process.hpp"
#include "arena.hpp"
#include "deadline.hpp"
#include "message_ring.hpp"
#include "posix/process.hpp"
#include "posix/terminal.hpp"

namespace mproc::detail {

class ResultWriter;

/// A task decoded in a worker, ready to run outside the task ring's lock.
class PreparedTask {
public:
    virtual ~PreparedTask() = default;
    virtual void run(ResultWriter& out) = 0;
};

using TaskRunner = std::unique_ptr<PreparedTask> (*)(std::span<const std::byte> fn, std::span<const std::byte> args);

struct TaskHeader {
    std::uint64_t id; // 0 is never used
    TaskRunner runner;
    std::uint64_t fn_bytes;
};

enum class ResultStatus : std::uint32_t { ok = 0, error = 1 };

struct ResultHeader {
    std::uint64_t id;
    ResultStatus status;
    std::int32_t worker_pid;
};

/// What a failing task reports: the item's index within its task (0 for apply) and the exception.
struct TaskError {
    std::uint64_t index = 0;
    std::string type;
    std::string message;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(index, type, message);
    }
};

/// One worker's shared state, written by the worker and read by the parent.
struct alignas(64) WorkerSlot {
    std::atomic<std::uint64_t> task{0};       // the task being taken or run, 0 when idle
    std::atomic<std::uint64_t> position{0};   // where that task began in the task ring
    std::atomic<std::int64_t> started_ns{0};  // when it began running (steady clock), 0 before
    std::atomic<std::uint32_t> initialized{0};
};

/// Writes a task's result (or error) to the result ring, straight into shared memory when it fits.
class ResultWriter {
public:
    ResultWriter(MessageRing& ring, std::uint64_t id, pid_t worker) : ring_(ring), id_(id), worker_(worker) {}

    template <class R>
    void ok(const R& value) {
        send(ResultStatus::ok, value);
    }
    void ok_void() { send(ResultStatus::ok, std::monostate{}); }
    void error(std::uint64_t index) {
        TaskError e{index, current_exception_type(), "(not derived from std::exception)"};
        try {
            throw;
        } catch (const std::exception& ex) {
            e.message = ex.what();
        } catch (...) {
        }
        send(ResultStatus::error, e);
    }

private:
    template <class T>
    void send(ResultStatus status, const T& payload) {
        ResultHeader h{id_, status, static_cast<std::int32_t>(worker_)};
        const std::size_t size = sizeof h + encoded_size(payload);
        if (size <= ring_.max_record_payload()) {
            ring_.put(size, [&](std::byte* out) {
                std::memcpy(out, &h, sizeof h);
                encode_into(payload, out + sizeof h);
            }, Deadline::never());
        } else {
            std::vector<std::byte> bytes(size);
            std::memcpy(bytes.data(), &h, sizeof h);
            encode_into(payload, bytes.data() + sizeof h);
            ring_.put_fragmented(bytes, Deadline::never());
        }
    }

    MessageRing& ring_;
    std::uint64_t id_;
    pid_t worker_;
};

template <class F>
F function_from_bytes(std::span<const std::byte> bytes) {
    static_assert(std::is_trivially_copyable_v<F>);
    alignas(F) unsigned char storage[sizeof(F)];
    std::memcpy(storage, bytes.data(), sizeof(F));
    return *std::launder(reinterpret_cast<F*>(storage));
}

/// apply(f, args...): one call.
template <class F, class... Args>
class CallTask final : public PreparedTask {
public:
    using Result = std::invoke_result_t<F&, Args&...>;
    CallTask(F f, std::tuple<Args...> args) : f_(f), args_(std::move(args)) {}
    static std::unique_ptr<PreparedTask> prepare(std::span<const std::byte> fn, std::span<const std::byte> args) {
        return std::make_unique<CallTask>(function_from_bytes<F>(fn), decode<std::tuple<Args...>>(args));
    }
    void run(ResultWriter& out) override {
        try {
            if constexpr (std::is_void_v<Result>) {
                std::apply(f_, args_);
                out.ok_void();
            } else {
                out.ok(static_cast<const Result&>(std::apply(f_, args_)));
            }
        } catch (...) {
            out.error(0);
        }
    }

private:
    F f_;
    std::tuple<Args...> args_;
};

/// A chunk of map (Star = false: f(item)) or starmap (Star = true: f(get<0>(item), ...)).
template <class F, class Item, bool Star>
class ChunkTask final : public PreparedTask {
public:
    static auto call(F& f, Item& item) {
        if constexpr (Star)
            return std::apply(f, item);
        else
            return f(item);
    }
    using Result = decltype(call(std::declval<F&>(), std::declval<Item&>()));

    ChunkTask(F f, std::vector<Item> items) : f_(f), items_(std::move(items)) {}
    static std::unique_ptr<PreparedTask> prepare(std::span<const std::byte> fn, std::span<const std::byte> args) {
        return std::make_unique<ChunkTask>(function_from_bytes<F>(fn), decode<std::vector<Item>>(args));
    }
    void run(ResultWriter& out) override {
        std::vector<Result> results;
        results.reserve(items_.size());
        std::size_t i = 0;
        try {
            for (; i < items_.size(); ++i) results.push_back(call(f_, items_[i]));
        } catch (...) {
            out.error(i);
            return;
        }
        out.ok(results);
    }

private:
    F f_;
    std::vector<Item> items_;
};

/// How the parent settles a task: with the result bytes, or with an exception.
struct PendingTask {
    std::function<void(ResultStatus, std::span<const std::byte>, pid_t)> on_result;
    std::function<void(std::exception_ptr)> on_failure;
    std::string label; // "task 7 (map items 100..199)", for error messages
};

struct PoolConfig {
    int processes;
    std::function<void()> initializer;
    std::size_t maxtasksperchild;
    std::chrono::duration<double> task_timeout;
    std::size_t task_queue_bytes;
    std::size_t result_queue_bytes;
};

/// The parent's side of a pool: rings, workers, unsettled tasks. Shared (std::shared_ptr) by the
/// Pool and its futures; used from one thread.
class WorkerPool {
public:
    explicit WorkerPool(PoolConfig config)
        : config_(std::move(config)), tasks_(config_.task_queue_bytes, 0, "Pool"),
          results_(config_.result_queue_bytes, 0, "Pool") {
        for (int i = 0; i < config_.processes; ++i) slots_.push_back(std::make_unique<SharedBlock<WorkerSlot>>());
        workers_.resize(static_cast<std::size_t>(config_.processes));
        for (std::size_t i = 0; i < workers_.size(); ++i) start_worker(i);
    }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    ~WorkerPool() {
        try {
            if (!stopped_) join();
        } catch (...) {
            terminate();
        }
    }

    int processes() const noexcept { return config_.processes; }
    /// The largest task that travels as one record, straight into shared memory (larger ones are
    /// encoded into a buffer first and sent in fragments).
    std::size_t max_task_bytes() const noexcept { return tasks_.max_record_payload() - sizeof(TaskHeader) - 64; }

    /// Puts a task on the ring, collecting results meanwhile so that a full ring cannot deadlock
    /// against workers blocked on a full result ring. Returns the task's id.
    template <class Prepared, class F, class Args>
    std::uint64_t submit(const F& f, const Args& args, PendingTask pending, const char* op) {
        static_assert(std::is_trivially_copyable_v<F>);
        if (broken_) throw RemoteError(broken_->type_name(), broken_->what(), broken_->pid());
        if (closed_) throw StateError(std::string("Pool::") + op + ": the pool is closed");
        const std::uint64_t id = next_id_++;
        TaskHeader h{id, &Prepared::prepare, sizeof(F)};
        const std::size_t size = sizeof h + sizeof(F) + encoded_size(args);
        auto write = [&](std::byte* out) {
            std::memcpy(out, &h, sizeof h);
            if constexpr (!std::is_empty_v<F>) std::memcpy(out + sizeof h, &f, sizeof(F)); // an empty F's byte is padding
            encode_into(args, out + sizeof h + sizeof(F));
        };
        pending_.emplace(id, std::move(pending));
        std::vector<std::byte> big;
        if (size > tasks_.max_record_payload()) {
            big.resize(size);
            write(big.data());
        }
        for (;;) {
            bool put = big.empty() ? tasks_.put(size, write, Deadline::after(std::chrono::seconds(0)))
                                   : tasks_.put_fragmented(big, Deadline::after(std::chrono::seconds(0)));
            if (put) return id;
            pump(Deadline::after(std::chrono::milliseconds(2)));
        }
    }

    /// Collects results and supervises workers until `done()` holds or `d` passes.
    template <class Done>
    bool wait_until(Done&& done, Deadline d) {
        while (!done()) {
            if (d.expired()) return false;
            pump(d);
        }
        return true;
    }

    bool settled(std::uint64_t id) const { return !pending_.contains(id); }
    std::size_t unsettled() const { return pending_.size(); }

    /// Drops a task's settlement (imap left early): its result is discarded when it comes.
    void forget(std::uint64_t id) {
        auto it = pending_.find(id);
        if (it == pending_.end()) return;
        it->second.on_result = [](ResultStatus, std::span<const std::byte>, pid_t) {};
        it->second.on_failure = [](std::exception_ptr) {};
    }

    void close() noexcept { closed_ = true; }
    bool closed() const noexcept { return closed_; }

    /// Waits for every task to settle, then lets the workers exit and reaps them.
    void join() {
        if (stopped_) return;
        wait_until([&] { return pending_.empty(); }, Deadline::never());
        closed_ = true;
        tasks_.close(); // idle workers wake with QueueClosed and exit 0
        for (auto& w : workers_)
            if (w && w->pid() != 0) w->join();
        stopped_ = true;
    }

    /// Kills every worker at once; unsettled tasks fail with StateError.
    void terminate() noexcept {
        closed_ = true;
        tasks_.close();
        for (auto& w : workers_) {
            try {
                if (w && w->is_alive()) w->kill();
                if (w && w->pid() != 0) w->join();
            } catch (...) {
            }
        }
        stopped_ = true;
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, p] : pending)
            p.on_failure(std::make_exception_ptr(StateError("Pool::terminate: the pool was terminated before " + p.label + " finished")));
    }

    std::vector<pid_t> worker_pids() const {
        std::vector<pid_t> pids;
        for (auto& w : workers_)
            if (w) pids.push_back(w->pid());
        return pids;
    }

private:
    // How often a waiting parent checks its workers' health and deadlines when no result arrives.
    static constexpr auto supervision_tick = std::chrono::milliseconds(10);

    WorkerSlot& slot(std::size_t i) { return **slots_[i]; }

    void start_worker(std::size_t i) {
        WorkerSlot& s = slot(i);
        s.task.store(0);
        s.started_ns.store(0);
        s.initialized.store(0);
        workers_[i] = std::make_unique<Process>(ProcessOptions{.name = "PoolWorker-" + std::to_string(++workers_started_), .daemon = true},
                                                [this, i] { worker_main(i); });
        workers_[i]->start();
    }

    // ---- worker side (runs in the forked worker) ----

    void worker_main(std::size_t i) {
        posix::ignore_signal(SIGINT); // Ctrl-C is for the parent; a dying parent takes the workers along
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM}) posix::default_signal(sig);
        WorkerSlot& s = slot(i);
        const pid_t me = posix::current_pid();
        if (config_.initializer) config_.initializer(); // an exception ends the worker; the parent reports it
        s.initialized.store(1);
        std::size_t done = 0;
        for (;;) {
            std::unique_ptr<PreparedTask> task;
            std::uint64_t id = 0;
            try {
                tasks_.get(
                    [&](std::span<const std::byte> bytes) {
                        TaskHeader h;
                        std::memcpy(&h, bytes.data(), sizeof h);
                        auto fn = bytes.subspan(sizeof h, h.fn_bytes);
                        task = h.runner(fn, bytes.subspan(sizeof h + h.fn_bytes));
                    },
                    Deadline::never(),
                    [&](std::span<const std::byte> first, std::uint64_t position) {
                        std::memcpy(&id, first.data(), sizeof id);
                        s.position.store(position);
                        s.task.store(id);
                    });
            } catch (const QueueClosed&) {
                return;
            }
            s.started_ns.store(Clock::now().time_since_epoch().count());
            ResultWriter out(results_, id, me);
            task->run(out);
            s.started_ns.store(0);
            s.task.store(0);
            if (config_.maxtasksperchild != 0 && ++done >= config_.maxtasksperchild) return;
        }
    }

    // ---- parent side ----

    // One round: take the results that are there (waiting up to `d` or the next supervision tick
    // for the first), then check the workers.
    void pump(Deadline d) {
        auto tick = Deadline::after(supervision_tick);
        Deadline wait = (!d.is_never() && d.at() < tick.at()) ? d : tick;
        bool got = take_result(wait);
        while (got && take_result(Deadline::after(std::chrono::seconds(0)))) {
        }
        if (!got || Clock::now() - last_supervision_ >= supervision_tick) supervise();
    }

    bool take_result(Deadline d) {
        return results_.get(
            [&](std::span<const std::byte> bytes) {
                ResultHeader h;
                std::memcpy(&h, bytes.data(), sizeof h);
                auto it = pending_.find(h.id);
                if (it == pending_.end()) return; // settled already (timed out) or forgotten
                PendingTask p = std::move(it->second);
                pending_.erase(it);
                p.on_result(h.status, bytes.subspan(sizeof h), h.worker_pid);
            },
            d);
    }

    void supervise() {
        last_supervision_ = Clock::now();
        std::vector<std::size_t> dead;
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            Process& w = *workers_[i];
            if (config_.task_timeout.count() > 0 && w.is_alive()) {
                std::int64_t started = slot(i).started_ns.load();
                std::uint64_t id = slot(i).task.load();
                auto ran = Clock::now() - Clock::time_point(Clock::duration(started));
                if (started != 0 && id != 0 && ran > config_.task_timeout && pending_.contains(id)) {
                    w.kill();
                    fail(id, std::make_exception_ptr(TimeoutError(
                                 "Pool: " + pending_.at(id).label + " ran longer than task_timeout (" +
                                 std::to_string(config_.task_timeout.count()) + " s); its worker (pid " +
                                 std::to_string(w.pid()) + ") was killed and replaced")));
                }
            }
            if (!w.is_alive()) dead.push_back(i);
        }
        if (dead.empty() || stopped_) return;
        // Results a dead worker published before it died are settled before judging its task.
        while (take_result(Deadline::after(std::chrono::seconds(0)))) {
        }
        for (std::size_t i : dead) {
            Process& w = *workers_[i];
            const std::uint64_t id = slot(i).task.load();
            const int code = w.exitcode().value_or(0);
            if (id != 0 && pending_.contains(id) && tasks_.consumed(slot(i).position.load())) {
                std::string cause = code < 0 ? "was killed by " + posix::signal_name(-code) : "exited with code " + std::to_string(code);
                fail(id, std::make_exception_ptr(WorkerCrashed("Pool: " + pending_.at(id).label + " failed: its worker (pid " +
                                                                   std::to_string(w.pid()) + ") " + cause,
                                                               w.pid(), code < 0 ? -code : 0, code < 0 ? 0 : code)));
            } else if (!slot(i).initialized.load() && w.error()) {
                initializer_failed(*w.error());
            }
            if (!closed_ || !pending_.empty()) start_worker(i);
        }
    }

    // Every worker would fail the same way: fail the unsettled tasks rather than respawn forever.
    void initializer_failed(const RemoteError& e) {
        closed_ = true;
        broken_.emplace(e.type_name(), std::string("Pool: the initializer failed in worker ") + std::to_string(e.pid()) + ": " + e.what(), e.pid());
        auto pending = std::move(pending_);
        pending_.clear();
        for (auto& [id, p] : pending) p.on_failure(std::make_exception_ptr(*broken_));
    }

    void fail(std::uint64_t id, std::exception_ptr e) {
        auto it = pending_.find(id);
        if (it == pending_.end()) return;
        PendingTask p = std::move(it->second);
        pending_.erase(it);
        p.on_failure(e);
    }

    PoolConfig config_;
    MessageRing tasks_;
    MessageRing results_;
    std::vector<std::unique_ptr<SharedBlock<WorkerSlot>>> slots_;
    std::vector<std::unique_ptr<Process>> workers_;
    std::unordered_map<std::uint64_t, PendingTask> pending_;
    std::uint64_t next_id_ = 1;
    int workers_started_ = 0;
    bool closed_ = false;
    bool stopped_ = false;
    std::optional<RemoteError> broken_; // the initializer failed: every task would
    Clock::time_point last_supervision_{};
};

} // namespace mproc::detail
