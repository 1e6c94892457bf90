// mproc/future.hpp — Future<R>, the result of work done in another process (spawn(), Pool), and the waits over several futures.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <concepts>
#include <cstdio>
#include <exception>
#include <mutex>
#include <span>
#include <vector>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "detail/algorithm.hpp"
#include "detail/callbacks.hpp"
#include "detail/chrono.hpp"
#include "detail/deadline.hpp"
#include "detail/functional.hpp"
#include "detail/future_source.hpp"
#include "detail/ranges.hpp"
#include "errors.hpp"

namespace mproc {

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

private:
    friend struct detail::FutureAccess;
    /// Made by spawn() and Pool, through detail::FutureAccess.
    explicit Future(std::unique_ptr<Source> source) : core_(std::make_shared<Core>(std::move(source))) {}
    /// The type-erased source (for mproc::wait and as_completed).
    detail::FutureSourceBase& source() { return *core().source; }

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

/// Waits on futures (any random-access range of Future<R>: of one pool, several pools, or spawn)
/// until `when` holds or `timeout` passes; returns the indices of the settled ones and the others.
/// Blocks without spinning. The futures' own waits collect results meanwhile.
template <class Range, class Rep, class Period>
    requires detail::FutureRange<Range>
WaitResult wait(Range& futures, std::chrono::duration<Rep, Period> timeout, ReturnWhen when = ReturnWhen::all_completed) {
    if (timeout.count() < 0) throw ValueError("mproc::wait: the timeout must not be negative");
    auto [done, not_done] = detail::wait_futures(futures, detail::Deadline::after(timeout), when == ReturnWhen::first_completed,
                                                 when == ReturnWhen::first_exception);
    return {std::move(done), std::move(not_done)};
}
/// As above, without a time limit.
template <class Range>
    requires detail::FutureRange<Range>
WaitResult wait(Range& futures, ReturnWhen when = ReturnWhen::all_completed) {
    auto [done, not_done] = detail::wait_futures(futures, detail::Deadline::never(), when == ReturnWhen::first_completed,
                                                 when == ReturnWhen::first_exception);
    return {std::move(done), std::move(not_done)};
}

/// The futures of `futures` in the order they settle (those settled already first): a range to
/// iterate once. Advancing waits; if `timeout` (counted from this call) passes before the next one
/// settles, it throws TimeoutError.
template <class Range>
    requires detail::FutureRange<Range>
class AsCompleted {
    using F = std::ranges::range_value_t<Range>;

public:
    /// As as_completed(futures): no time limit.
    explicit AsCompleted(Range& futures) : AsCompleted(futures, detail::Deadline::never()) {}
    /// As as_completed(futures, timeout). Throws ValueError for a negative timeout.
    template <class Rep, class Period>
    AsCompleted(Range& futures, std::chrono::duration<Rep, Period> timeout) : AsCompleted(futures, checked_deadline(timeout)) {}
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

    AsCompleted(Range& futures, detail::Deadline d) : futures_(&futures), deadline_(d) {
        for (std::size_t i = 0; i < static_cast<std::size_t>(std::ranges::size(futures)); ++i) left_.push_back(i);
    }
    template <class Rep, class Period>
    static detail::Deadline checked_deadline(std::chrono::duration<Rep, Period> timeout) {
        if (timeout.count() < 0) throw ValueError("mproc::as_completed: the timeout must not be negative");
        return detail::Deadline::after(timeout);
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
    return AsCompleted<Range>(futures, timeout);
}
/// As above, without a time limit.
template <class Range>
    requires detail::FutureRange<Range>
AsCompleted<Range> as_completed(Range& futures) {
    return AsCompleted<Range>(futures);
}

} // namespace mproc
