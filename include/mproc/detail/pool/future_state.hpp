// What a pool's Futures are made of: the state a task's outcome goes to (under the pool's lock), the
// FutureSource that waits on the pool for it, and apply_async's sink into it.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "../algorithm.hpp"
#include "../../errors.hpp"
#include "../callbacks.hpp"
#include "../deadline.hpp"
#include "../deferred.hpp"
#include "../functional.hpp"
#include "../future_source.hpp"
#include "../worker_pool.hpp"
#include "calls.hpp"

namespace mproc::detail {

template <class R>
using Outcome = std::variant<typename FutureSource<R>::Value, std::exception_ptr>;

/// A pool Future's state, under the pool's lock: its outcome once settled (the first one set wins,
/// so a cancellation is final), its done callbacks, and its tasks (for cancel()).
template <class R>
struct FutureState {
    std::optional<Outcome<R>> outcome;
    std::vector<std::function<void()>> callbacks;
    std::vector<std::weak_ptr<PoolTask>> tasks;

    template <class V>
    void set(V&& v) {
        if (!outcome) outcome.emplace(std::forward<V>(v));
    }
    /// The callbacks to run now that it settled (outside the lock).
    std::function<void()> take_callbacks() {
        if (callbacks.empty()) return {};
        return [calls = std::move(callbacks)]() mutable { run_callbacks(calls); };
    }
};

/// A Future fed by the pool: waiting on it collects results and supervises the workers.
template <class R>
class PoolFutureSource final : public FutureSource<R> {
public:
    using State = FutureState<R>;
    using Engine = dependent_t<R, WorkerPool>; // compiled where used (deferred.hpp)
    PoolFutureSource(std::shared_ptr<Engine> pool, std::shared_ptr<State> state)
        : pool_(std::move(pool)), state_(std::move(state)) {}
    bool wait_until(Deadline d) override { return pool_->wait_until([&] { return peek(); }, d); }
    bool settled() override {
        return pool_->locked([&] { return peek(); });
    }
    bool peek() override { return state_->outcome.has_value(); }
    bool cancel() override {
        return pool_->cancel(state_->tasks, [&] {
            if (peek()) return false;
            state_->set(std::make_exception_ptr(CancelledError("Pool: the task was cancelled")));
            return true;
        });
    }
    bool on_settled(std::function<void()> call) override {
        return pool_->locked([&] {
            if (peek()) return false;
            state_->callbacks.push_back(std::move(call));
            return true;
        });
    }
    const void* group() const noexcept override { return pool_.get(); }
    bool wait_any(std::span<FutureSourceBase* const> members, Deadline d) override {
        return pool_->wait_until([&] { return std::any_of(members.begin(), members.end(), [](FutureSourceBase* m) { return m->peek(); }); }, d);
    }
    Outcome<R> collect() override {
        return pool_->locked([&] { return std::move(*state_->outcome); }); // collected once, by the Future
    }

private:
    std::shared_ptr<Engine> pool_;
    std::shared_ptr<State> state_;
};

/// Where apply_async's one item goes: the Future's state.
template <class R>
struct ApplySink {
    std::shared_ptr<FutureState<R>> state;
    void result(std::size_t, Returned<R>&& value) { state->set(std::move(value)); }
    void failed(std::size_t, std::exception_ptr e) { state->set(std::move(e)); }
    std::function<void()> done() { return state->take_callbacks(); }
};

} // namespace mproc::detail
