// mproc/queue.hpp — Queue<T> and JoinableQueue<T>: multi-producer, multi-consumer FIFO queues in
// shared memory (Python's multiprocessing.Queue and JoinableQueue).
//
// Construct a queue before forking the processes that use it; they reach it by reference. Messages
// are encoded with the codec (<mproc/codec.hpp>) straight into the shared ring; a message larger than
// the ring's capacity is sent in fragments, so any size goes through. Producers take turns on one
// robust mutex and consumers on another, so a producer and a consumer work in parallel, and a process
// killed in the middle of a put or get leaves nothing locked or half-written for the others (see
// detail/message_ring.hpp for how). All calls are safe from several processes and threads at once.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "detail/chrono.hpp"
#include "codec.hpp"
#include "detail/placement.hpp"
#include "detail/deadline.hpp"
#include "detail/message_ring.hpp"
#include "detail/wait.hpp"
#include "errors.hpp"

namespace mproc {

/// `maxsize`: the most messages queued at once (0: no limit but the bytes). `capacity_bytes`: the
/// ring's size, rounded up to a power of two of at least 4 KiB; a put waits while the ring is full.
struct QueueOptions {
    std::size_t maxsize = 0;
    std::size_t capacity_bytes = std::size_t{1} << 20;
};

template <Serializable T>
class Queue {
public:
    /// Throws ValueError for a capacity past 1 TiB, OSError if shared memory cannot be had.
    Queue() : Queue(QueueOptions{}) {}
    explicit Queue(QueueOptions options) : Queue(detail::Placement::arena(), options, "Queue") {}
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;

    /// Appends `v`, blocking while the queue is full. Throws QueueClosed after close().
    void put(const T& v) { put_until(v, detail::Deadline::never()); }
    /// As put(), but gives up after `d`: returns false if the queue stayed full. A message larger
    /// than the free room that runs out of time half-sent is withdrawn (consumers never see it).
    template <class Rep, class Period>
    bool put_for(const T& v, std::chrono::duration<Rep, Period> d) {
        return put_until(v, detail::Deadline::after(d));
    }
    /// Appends `v` only if that needs no waiting.
    bool try_put(const T& v) { return put_until(v, detail::Deadline::after(std::chrono::seconds(0))); }

    /// Removes and returns the oldest message, blocking while the queue is empty. Throws QueueClosed
    /// once the queue is closed and drained, SerializationError if the bytes do not decode as T.
    T get() {
        T out{}; // value-initialised: g++ -O3 cannot see that get_into() fills it, and says so in users' builds
        get_into(out, detail::Deadline::never());
        return out; // NRVO: the message is copied once, out of the ring into the caller's object
    }
    /// As get(), but returns nullopt if nothing arrived within `d`.
    template <class Rep, class Period>
    std::optional<T> get_for(std::chrono::duration<Rep, Period> d) {
        return get_until(detail::Deadline::after(d));
    }
    /// A message if one is there now, else nullopt.
    std::optional<T> try_get() { return get_until(detail::Deadline::after(std::chrono::seconds(0))); }

    /// Messages queued now; a snapshot that others may change at once.
    std::size_t size() const noexcept { return ring_.size(); }
    bool empty() const noexcept { return size() == 0; }
    bool full() const noexcept { return ring_.full(); }
    std::size_t maxsize() const noexcept { return ring_.maxsize(); }
    std::size_t capacity_bytes() const noexcept { return ring_.capacity(); }

    /// No more puts: put() throws QueueClosed, and so does get() once the queue is drained. Blocked
    /// callers wake. Closing twice is harmless. The same as shutdown(false).
    void close() noexcept { ring_.close(); }

    /// Python 3.13's Queue.shutdown. Without `immediate`, the same as close(). With it, the queue
    /// also drops every message it holds, and every get(), the blocked ones included, throws
    /// QueueClosed at once. Blocks only while a put or get in progress finishes its current record.
    /// Throws StateError if called from inside a put or get on this thread (a codec hook).
    void shutdown(bool immediate = false) {
        if (immediate)
            ring_.close_and_drop();
        else
            ring_.close();
    }
    bool closed() const noexcept { return ring_.closed(); }

protected:
    /// A queue whose ring is placed as `p` says (NamedQueue: in its segment); `kind` names the class
    /// in error messages.
    Queue(detail::Placement p, const QueueOptions& options, const char* kind)
        : ring_(p, options.capacity_bytes, options.maxsize, kind) {}

    bool put_until(const T& v, detail::Deadline d) {
        const std::size_t size = encoded_size(v);
        if (size <= ring_.max_record_payload())
            return ring_.put(size, [&](std::byte* out) { encode_into(v, out); }, d);
        return ring_.put_fragmented(encode(v), d);
    }

    std::optional<T> get_until(detail::Deadline d) {
        std::optional<T> out;
        ring_.get([&](std::span<const std::byte> bytes) { decode_into(bytes, out.emplace()); }, d);
        return out;
    }
    bool get_into(T& out, detail::Deadline d) {
        return ring_.get([&](std::span<const std::byte> bytes) { decode_into(bytes, out); }, d);
    }

    detail::MessageRing& ring() noexcept { return ring_; }

private:
    template <Serializable U>
    friend class JoinableQueue; // holds a Queue, and counts its puts and drops
    detail::MessageRing ring_;
};

/// A queue that also counts unfinished messages: every put adds one, every task_done() removes one,
/// and join() waits for zero (Python's JoinableQueue). It has Queue's calls, with the same blocking,
/// errors and thread/process safety, but is not a Queue: it holds one, so it cannot be passed where
/// a Queue<T>& is expected, whose put() would not be counted (join() would return early).
template <Serializable T>
class JoinableQueue {
public:
    /// Throws ValueError for a capacity past 1 TiB, OSError if shared memory cannot be had.
    JoinableQueue() : JoinableQueue(QueueOptions{}) {}
    explicit JoinableQueue(QueueOptions options) : q_(options) {}
    JoinableQueue(const JoinableQueue&) = delete;
    JoinableQueue& operator=(const JoinableQueue&) = delete;

    /// As Queue::put, counting the message as unfinished.
    void put(const T& v) { counted_put(v, detail::Deadline::never()); }
    /// As Queue::put_for; a message that was not put is not counted.
    template <class Rep, class Period>
    bool put_for(const T& v, std::chrono::duration<Rep, Period> d) {
        return counted_put(v, detail::Deadline::after(d));
    }
    /// As Queue::try_put; a message that was not put is not counted.
    bool try_put(const T& v) { return counted_put(v, detail::Deadline::after(std::chrono::seconds(0))); }

    /// As Queue::get (blocks while empty; QueueClosed once closed and drained; SerializationError).
    T get() { return q_.get(); }
    /// As Queue::get_for.
    template <class Rep, class Period>
    std::optional<T> get_for(std::chrono::duration<Rep, Period> d) {
        return q_.get_for(d);
    }
    /// As Queue::try_get.
    std::optional<T> try_get() { return q_.try_get(); }

    /// As the Queue calls of the same names (snapshots).
    std::size_t size() const noexcept { return q_.size(); }
    bool empty() const noexcept { return q_.empty(); }
    bool full() const noexcept { return q_.full(); }
    std::size_t maxsize() const noexcept { return q_.maxsize(); }
    std::size_t capacity_bytes() const noexcept { return q_.capacity_bytes(); }
    /// As Queue::close.
    void close() noexcept { q_.close(); }
    bool closed() const noexcept { return q_.closed(); }

    /// Marks one message taken with get() as processed. Throws ValueError if called more times than
    /// messages were put.
    void task_done() {
        std::uint64_t n = s_->unfinished.load();
        do {
            if (n == 0) throw ValueError("JoinableQueue::task_done: called more times than messages were put");
        } while (!s_->unfinished.compare_exchange_weak(n, n - 1));
        if (n == 1) detail::notify(s_->all_done);
    }

    /// Blocks until every message put so far has been marked done.
    void join() { detail::await([this] { return s_->unfinished.load() == 0; }, s_->all_done, detail::Deadline::never()); }
    /// As join(), up to `d`; true if every message was done in time.
    template <class Rep, class Period>
    bool join_for(std::chrono::duration<Rep, Period> d) {
        return detail::await([this] { return s_->unfinished.load() == 0; }, s_->all_done, detail::Deadline::after(d));
    }
    /// As Queue::shutdown; an immediate shutdown also counts the messages it drops as done, so that
    /// join() returns once the messages already taken are marked done (Python's rule).
    void shutdown(bool immediate = false) {
        if (!immediate) return q_.close();
        std::uint64_t dropped = q_.ring().close_and_drop();
        std::uint64_t n = s_->unfinished.load();
        while (dropped && !s_->unfinished.compare_exchange_weak(n, n > dropped ? n - dropped : 0)) {
        }
        detail::notify(s_->all_done);
    }

    /// Messages put and not yet marked done.
    std::size_t unfinished() const noexcept { return static_cast<std::size_t>(s_->unfinished.load()); }

private:
    // Counted before the message is visible, so that a consumer's task_done() never runs ahead of it.
    // A producer killed between the count and the put leaves one unfinished message behind: bound
    // join() with join_for() where producers may be killed.
    bool counted_put(const T& v, detail::Deadline d) {
        s_->unfinished.fetch_add(1);
        bool ok = false;
        try {
            ok = q_.put_until(v, d);
        } catch (...) {
            undo();
            throw;
        }
        if (!ok) undo();
        return ok;
    }
    void undo() {
        if (s_->unfinished.fetch_sub(1) == 1) detail::notify(s_->all_done);
    }

    struct State {
        std::atomic<std::uint64_t> unfinished{0};
        detail::WaitQueue all_done;
    };
    Queue<T> q_;
    detail::SharedBlock<State> s_;
};

} // namespace mproc
