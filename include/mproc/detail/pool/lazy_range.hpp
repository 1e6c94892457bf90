// The range every pool's imap returns: it hands out results one by one, in input order (imap) or
// as their chunks settle (imap_unordered), while its Source, the transport (worker processes, MPI
// ranks), reads inputs, launches chunks and waits for them.
//
// A Source provides
//     Pumped pump(LazyChunks<R, Ordered>& chunks, Deadline d);
// called when no settled result is left to hand out: it launches chunks as it sees fit, then waits
// (until `d`, if it can honour one) for the next chunk to hand out to settle, and collects it.
// It answers `more` (look again), `end` (no input left and nothing in flight: the range is over) or
// `timeout` (`d` passed first; the next pump goes on from there).
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../deadline.hpp"

namespace mproc::detail {

/// One chunk of an imap: launched by the Source, settled (possibly by another thread, under the
/// lock its transport settles under), then handed out item by item.
template <class R>
struct LazyChunk {
    std::size_t first = 0;                  // the index of its first item in the call
    std::size_t count = 0;                  // the outcomes it hands out
    std::vector<R> results;                 // by item, where the item succeeded
    std::vector<std::exception_ptr> errors; // empty, or by item (null where it succeeded)
    std::atomic<bool> settled{false};

    /// Item `i` failed with `e`.
    void fail(std::size_t i, std::exception_ptr e) {
        if (errors.empty()) errors.resize(count);
        errors[i] = std::move(e);
    }
    /// The whole chunk failed: it hands out `e` once, in place of its items.
    void fail_whole(std::exception_ptr e) {
        count = 1;
        results.clear();
        errors.assign(1, std::move(e));
    }
    /// Every outcome is in (release: a reader that sees it settled sees them).
    void settle() noexcept { settled.store(true, std::memory_order_release); }
    bool is_settled() const noexcept { return settled.load(std::memory_order_acquire); }
};

enum class Pumped { more, end, timeout };

/// The chunks of one imap: those launched (in launch order, settled or not), and those collected,
/// ready to hand out. Ordered: chunks are handed out in launch order; otherwise as they settle.
template <class R, bool Ordered>
class LazyChunks {
public:
    using Chunk = LazyChunk<R>;

    /// A new chunk of `count` items from item `first`, in flight until it settles and is collected.
    std::shared_ptr<Chunk> launch(std::size_t first, std::size_t count) {
        auto c = std::make_shared<Chunk>();
        c->first = first;
        c->count = count;
        in_flight_.push_back(c);
        return c;
    }
    /// Hands out `e` next, after what is ready (the inputs threw while being read).
    void push_error(std::exception_ptr e) {
        auto c = std::make_shared<Chunk>();
        c->fail_whole(std::move(e));
        ready_.push_back(std::move(c));
    }

    /// Chunks launched and not yet collected.
    std::size_t in_flight() const noexcept { return in_flight_.size(); }
    /// Chunks launched and not yet handed out in full.
    std::size_t ahead() const noexcept { return in_flight_.size() + ready_.size(); }
    /// Nothing in flight, nothing to hand out.
    bool idle() const noexcept { return in_flight_.empty() && ready_.empty(); }
    bool has_ready() const noexcept { return !ready_.empty(); }

    /// The next chunk to hand out, if it has settled (the oldest when Ordered, else any).
    const Chunk* next_settled() const noexcept {
        if (in_flight_.empty()) return nullptr;
        if constexpr (Ordered) {
            return in_flight_.front()->is_settled() ? in_flight_.front().get() : nullptr;
        } else {
            for (auto& c : in_flight_)
                if (c->is_settled()) return c.get();
            return nullptr;
        }
    }

    /// Moves the settled chunks that can be handed out, in hand-out order, to the ready ones,
    /// calling `on_ready(Chunk&)` on each first (it may still change the chunk).
    template <class OnReady>
    void collect(OnReady&& on_ready) {
        while (const Chunk* c = next_settled()) {
            auto pos = in_flight_.begin();
            while (pos->get() != c) ++pos;
            on_ready(**pos);
            ready_.push_back(std::move(*pos));
            in_flight_.erase(pos);
        }
    }

    /// The next outcome: `value` or `error` set, true; false if no collected chunk has one left.
    /// `value` stays valid until the next call.
    bool take(const R*& value, std::exception_ptr& error) {
        while (!ready_.empty()) {
            Chunk& c = *ready_.front();
            if (pos_ < c.count) {
                std::size_t i = pos_++;
                if (!c.errors.empty() && c.errors[i])
                    error = c.errors[i];
                else
                    value = &c.results[i];
                return true;
            }
            ready_.pop_front();
            pos_ = 0;
        }
        return false;
    }

private:
    std::deque<std::shared_ptr<Chunk>> in_flight_;
    std::deque<std::shared_ptr<Chunk>> ready_;
    std::size_t pos_ = 0; // in ready_.front()
};

/// The range imap returns: iterate it once, from one thread at a time. Yields `Value`: R (an item's
/// error is thrown where it is dereferenced) or a type constructible from R and from
/// std::exception_ptr (Result<R>: the error is kept). Not copyable or movable.
template <class R, class Source, bool Ordered, class Value = R>
class LazyRange {
public:
    using value_type = Value;

    /// Builds its Source in place from `args`.
    template <class... Args>
    explicit LazyRange(std::in_place_t, Args&&... args) : source_(std::forward<Args>(args)...) {}
    LazyRange(const LazyRange&) = delete;
    LazyRange& operator=(const LazyRange&) = delete;

    class iterator {
    public:
        using value_type = LazyRange::value_type;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(LazyRange* m) : m_(m) { m_->advance(Deadline::never()); }
        /// The result, or throws the item's error (when value_type is R).
        const value_type& operator*() const { return m_->current(); }
        const value_type* operator->() const { return &m_->current(); }
        iterator& operator++() {
            m_->advance(Deadline::never());
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& i, std::default_sentinel_t) { return i.m_->finished(); }

    private:
        LazyRange* m_ = nullptr;
    };

    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }

    /// True once every result has been handed out.
    bool finished() const noexcept { return done_; }

protected:
    // Moves to the next result, pumping the Source until one is ready. Returns false if `d` passed
    // first; the next call goes on from there.
    bool advance(Deadline d) {
        if (!pending_advance_) {
            current_error_ = nullptr;
            current_ = nullptr;
        }
        pending_advance_ = true;
        for (;;) {
            if (chunks_.take(current_, current_error_)) break;
            Pumped p = source_.pump(chunks_, d);
            if (p == Pumped::timeout) return false;
            if (p == Pumped::end) {
                done_ = true;
                break;
            }
        }
        pending_advance_ = false;
        return true;
    }

    const Value& current() {
        if constexpr (std::is_same_v<Value, R>) {
            if (current_error_) std::rethrow_exception(current_error_);
            return *current_;
        } else {
            current_value_ = current_error_ ? Value(current_error_) : Value(*current_);
            return current_value_;
        }
    }

    Source source_;

private:
    LazyChunks<R, Ordered> chunks_;
    const R* current_ = nullptr;
    std::exception_ptr current_error_;
    [[no_unique_address]] std::conditional_t<std::is_same_v<Value, R>, std::monostate, Value> current_value_{};
    bool pending_advance_ = false;
    bool done_ = false;
};

} // namespace mproc::detail
