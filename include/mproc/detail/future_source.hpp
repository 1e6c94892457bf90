// What a Future waits on (a spawned child, a pool's task), and the waits over several futures: the
// machinery under future.hpp, spawn.hpp and pool.hpp.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "deadline.hpp"
#include "deferred.hpp"
#include "functional.hpp"
#include "ranges.hpp"

namespace mproc {
template <class R>
class Future;
} // namespace mproc

namespace mproc::detail {

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

/// What the makers of futures (spawn, Pool) and the waits reach inside a Future (a friend of it).
struct FutureAccess {
    template <class R>
    static Future<R> make(std::unique_ptr<FutureSource<R>> source) {
        return Future<R>(std::move(source));
    }
    template <class F>
    static FutureSourceBase& source(F& future) {
        return future.source();
    }
};

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
    using Source = dependent_t<Range, FutureSourceBase>; // compiled where used (deferred.hpp)
    std::vector<std::pair<const void*, std::vector<Source*>>> groups;
    for (std::size_t i : indices) {
        Source* s = &FutureAccess::source(futures[i]);
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

/// Waits until every future of `futures` settled, or (`first_completed`) one did, or
/// (`first_exception`) one failed, or `d` passes. Returns the indices settled and the others.
template <class Range>
std::pair<std::vector<std::size_t>, std::vector<std::size_t>> wait_futures(Range& futures, Deadline d, bool first_completed,
                                                                          bool first_exception) {
    const std::size_t n = static_cast<std::size_t>(std::ranges::size(futures));
    for (;;) {
        std::vector<std::size_t> done, not_done;
        bool failed = false;
        for (std::size_t i = 0; i < n; ++i) {
            if (futures[i].ready()) {
                done.push_back(i);
                if (first_exception && futures[i].exception()) failed = true;
            } else {
                not_done.push_back(i);
            }
        }
        bool enough = not_done.empty() || (first_completed && !done.empty()) || failed;
        if (enough || d.expired()) return {std::move(done), std::move(not_done)};
        wait_any_of(futures, not_done, d);
    }
}

} // namespace mproc::detail
