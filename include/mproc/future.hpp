// mproc/future.hpp — Future<R>, the result of work done in another process, and spawn().
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <ranges>
#include <span>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "codec.hpp"
#include "detail/arena.hpp"
#include "detail/deadline.hpp"
#include "detail/callbacks.hpp"
#include "detail/posix/process.hpp"
#include "errors.hpp"
#include "pipe.hpp"
#include "process.hpp"

namespace mproc {

namespace detail {

/// What a Future waits on, whatever its result type: a spawned process, or a pool's task.
class FutureSourceBase {
public:
    virtual ~FutureSourceBase() = default;
    /// Blocks until the result is settled or `d` passes; true if settled.
    virtual bool wait_until(Deadline d) = 0;
    /// True if settled; never blocks for long (a spawn reads a result that is there).
    virtual bool settled() = 0;
    /// As settled(), reading state that only a wait of the same group changes: call it inside
    /// wait_any's predicate.
    virtual bool peek() = 0;
    /// Cancels the work if it has not settled: true if it was cancelled by this call.
    virtual bool cancel() = 0;
    /// Registers `call` to run once, on a thread waiting on the group, right after the result
    /// settles; false (and not registered) if it is settled already.
    virtual bool on_settled(std::function<void()> call) = 0;
    /// Sources of one group (one pool) are waited on together by wait_any.
    virtual const void* group() const noexcept { return this; }
    /// Blocks until one of `members` (all of this group) settles or `d` passes; true if one did.
    virtual bool wait_any(std::span<FutureSourceBase* const> members, Deadline d) {
        (void)members;
        return wait_until(d);
    }
    /// The last Future of this work was destroyed before it settled.
    virtual void abandon() noexcept {}
};

template <class R>
class FutureSource : public FutureSourceBase {
public:
    using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    /// After wait_until returned true: the value, or the error as an exception_ptr.
    virtual std::variant<Value, std::exception_ptr> collect() = 0;
};

} // namespace detail

/// The value of a task, or the error it failed with: what map_results and imap_results give per item.
template <class R>
class Result {
public:
    Result() = default;
    explicit Result(R value) : v_(std::move(value)) {}
    explicit Result(std::exception_ptr error) : v_(std::move(error)) {}
    /// True when the task gave a value.
    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    /// The value; rethrows the task's error (RemoteError, WorkerCrashed, TimeoutError...) if it failed.
    const R& value() const& {
        if (!ok()) std::rethrow_exception(std::get<1>(v_));
        return std::get<0>(v_);
    }
    R&& value() && {
        if (!ok()) std::rethrow_exception(std::get<1>(v_));
        return std::get<0>(std::move(v_));
    }
    /// The error, or null when it succeeded.
    std::exception_ptr error() const noexcept { return ok() ? nullptr : std::get<1>(v_); }

private:
    std::variant<R, std::exception_ptr> v_;
};

/// The result of work running in another process (a pool's task, or a spawned child).
///
/// Threads: a pool's Future may be waited on, queried and cancelled from several threads at once;
/// a spawn's Future is for one thread at a time. A Future is move-only; moving it keeps its callbacks.
template <class R>
class Future {
    using Source = detail::FutureSource<R>;
    using Outcome = std::variant<typename Source::Value, std::exception_ptr>;
    struct Core {
        explicit Core(std::unique_ptr<Source> s) : source(std::move(s)) {}
        std::unique_ptr<Source> source;
        std::mutex mutex; // guards outcome
        std::optional<Outcome> outcome;
        std::atomic<bool> cancelled{false};
    };

public:
    explicit Future(std::unique_ptr<Source> source) : core_(std::make_shared<Core>(std::move(source))) {}
    Future(Future&&) noexcept = default;
    Future& operator=(Future&& other) noexcept {
        if (this != &other) {
            release();
            core_ = std::move(other.core_);
            owner_ = other.owner_;
        }
        return *this;
    }
    /// A spawn's child still running is terminated (SIGTERM, SIGKILL after a grace period); a pool's
    /// task runs on (its result is dropped, its callbacks still run).
    ~Future() { release(); }

    /// Blocks until settled; returns the value or rethrows RemoteError, WorkerCrashed, TimeoutError
    /// or CancelledError.
    R get() {
        wait();
        std::lock_guard lk(core().mutex);
        if (auto* e = std::get_if<std::exception_ptr>(&*core_->outcome)) std::rethrow_exception(*e);
        if constexpr (!std::is_void_v<R>) return std::get<0>(*core_->outcome);
    }
    /// Blocks until settled; the error it failed with, or null on success.
    std::exception_ptr exception() {
        wait();
        std::lock_guard lk(core().mutex);
        auto* e = std::get_if<std::exception_ptr>(&*core_->outcome);
        return e ? *e : nullptr;
    }
    /// Blocks until settled.
    void wait() { wait_until_deadline(detail::Deadline::never(), "wait"); }
    /// Blocks up to `d`; true if settled.
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> d) {
        return wait_until_deadline(detail::Deadline::after(d), "wait_for");
    }
    /// True once settled; never blocks.
    bool ready() { return wait_until_deadline(detail::Deadline::after(std::chrono::seconds(0)), "ready"); }
    /// Python's name for ready().
    bool done() { return ready(); }

    /// Cancels the work: a pool task not started is dropped, a running one has its worker killed and
    /// replaced; a spawned child is killed. get() then throws CancelledError. Returns false when the
    /// work had settled already (nothing changes).
    bool cancel() {
        if (!core().source->cancel()) return false;
        core_->cancelled.store(true);
        return true;
    }
    /// True if cancel() cancelled it.
    bool cancelled() const noexcept { return core_ && core_->cancelled.load(); }

    /// Runs cb(future) once, right after the work settles, on a thread that is waiting on the pool or
    /// on this future; at once, on this thread, if it has settled already. An exception from cb is
    /// reported on stderr and ignored. Callbacks run in the order they were added.
    template <class Callback>
        requires std::invocable<Callback&, Future<R>&>
    void add_done_callback(Callback cb) {
        auto call = [core = core_, cb = std::move(cb)]() mutable {
            Future alias(core);
            cb(alias);
        };
        if (core().source->on_settled(call)) return;
        std::vector<std::function<void()>> now{std::move(call)};
        detail::run_callbacks(now);
    }

    /// The type-erased source (for mproc::wait and as_completed).
    detail::FutureSourceBase& source() { return *core().source; }

private:
    explicit Future(std::shared_ptr<Core> core) : core_(std::move(core)), owner_(false) {}

    Core& core() const {
        if (!core_) throw StateError("Future: this Future was moved from");
        return *core_;
    }

    bool wait_until_deadline(detail::Deadline d, const char*) {
        Core& c = core();
        {
            std::lock_guard lk(c.mutex);
            if (c.outcome) return true;
        }
        if (!c.source->wait_until(d)) return false;
        std::lock_guard lk(c.mutex);
        if (!c.outcome) c.outcome = c.source->collect();
        return true;
    }

    void release() noexcept {
        if (core_ && owner_ && !core_->outcome) {
            try {
                if (!core_->source->settled()) core_->source->abandon();
            } catch (...) {
            }
        }
    }

    std::shared_ptr<Core> core_;
    bool owner_ = true; // false for the alias a callback receives
};

/// When mproc::wait returns: once every future settled, once any did, or once any failed.
enum class ReturnWhen { all_completed, first_completed, first_exception };

/// What mproc::wait returns: indices into the futures, settled ones and the others.
struct WaitResult {
    std::vector<std::size_t> done;
    std::vector<std::size_t> not_done;
};

namespace detail {

template <class T>
struct is_future : std::false_type {};
template <class R>
struct is_future<Future<R>> : std::true_type {};

template <class Range>
concept FutureRange = std::ranges::random_access_range<Range> && is_future<std::ranges::range_value_t<Range>>::value;

/// Blocks until one of `futures[indices]` settles or `d` passes, without spinning: futures of one
/// pool are waited on together; several groups (pools, spawns) are waited on in turn, 5 ms each.
template <class Range>
bool wait_any_of(Range& futures, const std::vector<std::size_t>& indices, Deadline d) {
    std::vector<std::pair<const void*, std::vector<FutureSourceBase*>>> groups;
    for (std::size_t i : indices) {
        FutureSourceBase* s = &futures[i].source();
        auto g = std::find_if(groups.begin(), groups.end(), [&](auto& e) { return e.first == s->group(); });
        if (g == groups.end()) groups.push_back({s->group(), {s}});
        else g->second.push_back(s);
    }
    if (groups.empty()) return true;
    if (groups.size() == 1) return groups[0].second[0]->wait_any(groups[0].second, d);
    for (auto& [g, members] : groups) {
        Deadline slice = Deadline::after(std::chrono::milliseconds(5));
        if (!d.is_never() && d.at() < slice.at()) slice = d;
        if (members[0]->wait_any(members, slice)) return true;
        if (d.expired()) return false;
    }
    return false;
}

template <class Range>
WaitResult wait_futures(Range& futures, Deadline d, ReturnWhen when) {
    const std::size_t n = static_cast<std::size_t>(std::ranges::size(futures));
    for (;;) {
        WaitResult r;
        bool failed = false;
        for (std::size_t i = 0; i < n; ++i) {
            if (futures[i].ready()) {
                r.done.push_back(i);
                if (when == ReturnWhen::first_exception && futures[i].exception()) failed = true;
            } else {
                r.not_done.push_back(i);
            }
        }
        bool enough = r.not_done.empty() || (when == ReturnWhen::first_completed && !r.done.empty()) || failed;
        if (enough || d.expired()) return r;
        wait_any_of(futures, r.not_done, d);
    }
}

} // namespace detail

/// Waits on futures (any random-access range of Future<R>: of one pool, several pools, or spawn)
/// until `when` holds or `timeout` passes; returns the indices of the settled ones and the others.
/// Blocks without spinning. The futures' own waits collect results meanwhile.
template <class Range, class Rep, class Period>
    requires detail::FutureRange<Range>
WaitResult wait(Range& futures, std::chrono::duration<Rep, Period> timeout, ReturnWhen when = ReturnWhen::all_completed) {
    if (timeout.count() < 0) throw ValueError("mproc::wait: the timeout must not be negative");
    return detail::wait_futures(futures, detail::Deadline::after(timeout), when);
}
/// As above, without a time limit.
template <class Range>
    requires detail::FutureRange<Range>
WaitResult wait(Range& futures, ReturnWhen when = ReturnWhen::all_completed) {
    return detail::wait_futures(futures, detail::Deadline::never(), when);
}

/// The futures of `futures` in the order they settle (those settled already first): a range to
/// iterate once. Advancing waits; if `timeout` (counted from this call) passes before the next one
/// settles, it throws TimeoutError.
template <class Range>
    requires detail::FutureRange<Range>
class AsCompleted {
    using F = std::ranges::range_value_t<Range>;

public:
    AsCompleted(Range& futures, detail::Deadline d) : futures_(&futures), deadline_(d) {
        for (std::size_t i = 0; i < static_cast<std::size_t>(std::ranges::size(futures)); ++i) left_.push_back(i);
    }
    class iterator {
    public:
        using value_type = F;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(AsCompleted* a) : a_(a) { a_->advance(); }
        F& operator*() const { return (*a_->futures_)[a_->current_]; }
        F* operator->() const { return &**this; }
        iterator& operator++() {
            a_->advance();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& i, std::default_sentinel_t) { return i.a_->finished(); }

    private:
        AsCompleted* a_ = nullptr;
    };
    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }
    /// True once every future was yielded.
    bool finished() const noexcept { return finished_; }

private:
    void advance() {
        if (left_.empty()) {
            finished_ = true;
            return;
        }
        for (;;) {
            for (auto it = left_.begin(); it != left_.end(); ++it) {
                if ((*futures_)[*it].ready()) {
                    current_ = *it;
                    left_.erase(it);
                    return;
                }
            }
            if (deadline_.expired())
                throw TimeoutError("mproc::as_completed: " + std::to_string(left_.size()) + " future(s) did not settle in time");
            detail::wait_any_of(*futures_, left_, deadline_);
        }
    }

    Range* futures_;
    detail::Deadline deadline_;
    std::vector<std::size_t> left_;
    std::size_t current_ = 0;
    bool finished_ = false;
};

/// Yields the futures as they settle; TimeoutError once `timeout` passes with some unsettled.
template <class Range, class Rep, class Period>
    requires detail::FutureRange<Range>
AsCompleted<Range> as_completed(Range& futures, std::chrono::duration<Rep, Period> timeout) {
    if (timeout.count() < 0) throw ValueError("mproc::as_completed: the timeout must not be negative");
    return AsCompleted<Range>(futures, detail::Deadline::after(timeout));
}
/// As above, without a time limit.
template <class Range>
    requires detail::FutureRange<Range>
AsCompleted<Range> as_completed(Range& futures) {
    return AsCompleted<Range>(futures, detail::Deadline::never());
}

/// `timeout`: the child is killed and get() throws TimeoutError if it has not returned by then
/// (0: no limit). `grace`: how long a child whose Future is destroyed unsettled has between SIGTERM
/// and SIGKILL.
struct SpawnOptions {
    std::chrono::duration<double> timeout{0};
    std::chrono::duration<double> grace{1.0};
};

namespace detail {

/// A spawned child's function and the one-way pipe its result comes back through. The child sends
/// the encoded value (an empty message for void) and exits; the parent reads it before reaping the
/// child, so a result larger than the socket's buffer cannot deadlock the two.
template <class R>
class SpawnSource final : public FutureSource<R> {
public:
    using typename FutureSource<R>::Value;

    template <class F, class... Args>
    explicit SpawnSource(SpawnOptions options, F&& fn, Args&&... args)
        : options_(options), pipe_(Pipe<Wire>(false)),
          process_(
              [tx = &pipe_.second](auto& f, auto&... a) {
                  if constexpr (std::is_void_v<R>) {
                      std::invoke(f, a...);
                      tx->send_bytes({});
                  } else {
                      tx->send_bytes(encode(static_cast<const R&>(std::invoke(f, a...))));
                  }
              },
              std::forward<F>(fn), std::forward<Args>(args)...) {
        if (options.timeout.count() < 0) throw ValueError("spawn: the timeout must not be negative");
        if (options.timeout.count() > 0) deadline_ = Deadline::after(options.timeout);
        process_.start();
        pipe_.second.close(); // the child's end: once the child is gone, the parent sees end-of-file
    }

    bool wait_until(Deadline d) override {
        if (settled_) return true;
        const bool limited = !deadline_.is_never() && (d.is_never() || deadline_.at() < d.at());
        const Deadline until = limited ? deadline_ : d;
        if (!pipe_.first.poll(until.is_never() ? Clock::duration::max() : until.at() - Clock::now())) {
            if (!limited || !deadline_.expired()) return false;
            end_child(SIGKILL, std::make_exception_ptr(TimeoutError(
                                   "spawn: process " + std::to_string(process_.pid()) + " ran longer than its timeout (" +
                                   std::to_string(options_.timeout.count()) + " s) and was killed")));
            return true;
        }
        try {
            bytes_ = pipe_.first.recv_bytes();
        } catch (const EOFError&) {
            // died or exited without sending: collect() tells which
        }
        process_.join(); // it has sent its result or closed its end: it is exiting
        settle();
        return true;
    }
    bool settled() override { return wait_until(Deadline::after(std::chrono::seconds(0))); }
    bool peek() override { return settled_; }

    bool cancel() override {
        if (settled()) return false;
        end_child(SIGKILL, std::make_exception_ptr(CancelledError("spawn: process " + std::to_string(process_.pid()) + " was cancelled")));
        return true;
    }

    bool on_settled(std::function<void()> call) override {
        if (settled_) return false;
        callbacks_.push_back(std::move(call));
        return true;
    }

    // The child gets SIGTERM, then SIGKILL after the grace period; its callbacks run.
    void abandon() noexcept override {
        try {
            if (settled_) return;
            process_.terminate();
            if (!process_.join_for(options_.grace)) process_.kill();
            process_.join();
            error_ = std::make_exception_ptr(CancelledError("spawn: the Future was destroyed before process " +
                                                            std::to_string(process_.pid()) + " returned; it was terminated"));
            settle();
        } catch (...) {
        }
    }

    std::variant<Value, std::exception_ptr> collect() override {
        if (error_) return error_;
        if (bytes_) {
            if constexpr (std::is_void_v<R>) {
                return Value{};
            } else {
                try {
                    return decode<R>(*bytes_);
                } catch (...) {
                    return std::current_exception();
                }
            }
        }
        if (auto e = process_.error()) return std::make_exception_ptr(*e);
        int code = *process_.exitcode();
        std::string what = "spawn: process " + std::to_string(process_.pid()) +
                           (code < 0 ? " was killed by " + posix::signal_name(-code) : " exited with code " + std::to_string(code)) +
                           " before returning a result";
        return std::make_exception_ptr(WorkerCrashed(what, process_.pid(), code < 0 ? -code : 0, code < 0 ? 0 : code));
    }

private:
    void end_child(int sig, std::exception_ptr why) {
        if (sig == SIGKILL) process_.kill();
        process_.join();
        error_ = std::move(why);
        settle();
    }
    void settle() {
        settled_ = true;
        run_callbacks(callbacks_);
    }

    using Wire = std::conditional_t<std::is_void_v<R>, int, R>;
    SpawnOptions options_;
    Deadline deadline_ = Deadline::never();
    std::pair<Connection<Wire>, Connection<Wire>> pipe_;
    Process process_;
    std::optional<std::vector<std::byte>> bytes_;
    std::exception_ptr error_;
    bool settled_ = false;
    std::vector<std::function<void()>> callbacks_;
};

template <class F, class... Args>
using SpawnResult = std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>;

template <class R>
constexpr void check_spawn_result() {
    static_assert(!std::is_reference_v<R>, "mproc::spawn: the function returns a reference; a result travels by value "
                                           "from the child: return a value");
    static_assert(std::is_void_v<R> || Serializable<std::remove_cvref_t<R>>,
                  "mproc::spawn: the function's return type is not serializable: return a type the codec "
                  "supports (see <mproc/codec.hpp>), or give it a serialize() hook");
}

} // namespace detail

/// Runs fn(args...) in a new child process and returns a Future for its result, which travels
/// through the codec: R is void or Serializable (<mproc/codec.hpp>). Destroying the Future before
/// the child returned terminates the child (SIGTERM, then SIGKILL after options.grace); cancel()
/// kills it. Throws OSError if fork or the pipe fails, ValueError for a negative timeout.
template <class F, class... Args>
auto spawn(SpawnOptions options, F&& fn, Args&&... args) {
    using R = detail::SpawnResult<F, Args...>;
    detail::check_spawn_result<R>();
    return Future<R>(std::make_unique<detail::SpawnSource<R>>(options, std::forward<F>(fn), std::forward<Args>(args)...));
}
/// As above, with no time limit.
template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
auto spawn(F&& fn, Args&&... args) {
    return spawn(SpawnOptions{}, std::forward<F>(fn), std::forward<Args>(args)...);
}

} // namespace mproc
