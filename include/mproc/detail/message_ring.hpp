// MessageRing: the multi-producer, multi-consumer byte-message ring under Queue<T>.
//
// Layout: a header and `capacity` bytes of data in one arena block. Messages are records
// [u32 size | u32 kind | payload padded to 8 bytes] written at a monotonically growing byte position;
// a record never wraps (a PAD record fills the end of the buffer instead). Messages too large for one
// record travel as FIRST, MIDDLE..., LAST fragments, so any size goes through a ring of any capacity.
//
// Producers serialise on one robust mutex and consumers on another, so one producer and one consumer
// run in parallel; they meet only at the published positions (tail, head).
//
// Crash safety (SIGKILL at any instruction):
// - A side publishes with a redo record: it writes the new position and count into `pending`, marks it
//   valid, stores them, clears the mark. Whoever next takes that side's mutex (the kernel reports the
//   death as EOWNERDEAD) re-applies a valid record, so a commit is all or nothing.
// - Data past the published tail is invisible to consumers, so a producer killed while writing
//   leaves nothing behind. A producer killed between fragments leaves `in_message` set: the next
//   producer (or a consumer waiting for the rest) writes an ABORT record, and the consumer drops the
//   partial message. Fragment writers always leave room for that ABORT record.
// - A consumer copies and decodes a record before it publishes the new head, so a consumer killed
//   mid-get leaves the message for the next one. A consumer killed mid-way through a fragmented
//   message has taken it (it is lost with the consumer); the next consumer skips its remaining
//   fragments.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <pthread.h>
#include <span>
#include <string>
#include <vector>

#include "../errors.hpp"
#include "arena.hpp"
#include "deadline.hpp"
#include "posix/mutex.hpp"
#include "wait.hpp"

namespace mproc::detail {

class MessageRing {
public:
    static constexpr std::size_t min_capacity = 4096;
    static constexpr std::size_t max_capacity = std::size_t{1} << 40;

    /// `capacity_bytes` is rounded up to a power of two (at least 4 KiB); `maxsize` 0 means no limit
    /// on the number of messages. Throws ValueError for a capacity past 1 TiB.
    MessageRing(std::size_t capacity_bytes, std::size_t maxsize, const char* owner) : owner_(owner) {
        std::size_t cap = rounded_capacity(capacity_bytes, owner);
        void* mem = Arena::instance().allocate(sizeof(Header) + cap, alignof(Header));
        h_ = new (mem) Header(cap, maxsize);
        data_ = reinterpret_cast<std::byte*>(h_ + 1);
    }

    // Rings in caller-provided memory (NamedQueue puts one in a named segment). The caller keeps the
    // memory mapped while the ring is used and releases it; the destructor leaves the ring in place,
    // as other processes may still use it.

    /// The capacity a ring asked for `capacity_bytes` gets. Throws ValueError past 1 TiB.
    static std::size_t rounded_capacity(std::size_t capacity_bytes, const char* owner) {
        if (capacity_bytes > max_capacity)
            throw ValueError(std::string(owner) + ": capacity_bytes " + std::to_string(capacity_bytes) + " exceeds 1 TiB");
        return std::bit_ceil(std::max(capacity_bytes, min_capacity));
    }
    /// Bytes, aligned to `alignment`, that a ring of `capacity_bytes` occupies. Throws as above.
    static std::size_t footprint(std::size_t capacity_bytes, const char* owner) {
        return sizeof(Header) + rounded_capacity(capacity_bytes, owner);
    }
    static constexpr std::size_t alignment = 64;
    /// Builds a ring in `memory` (footprint(capacity_bytes) bytes, aligned to `alignment`).
    MessageRing(void* memory, std::size_t capacity_bytes, std::size_t maxsize, const char* owner)
        : h_(new (memory) Header(rounded_capacity(capacity_bytes, owner), maxsize)),
          data_(reinterpret_cast<std::byte*>(h_ + 1)), owner_(owner), owned_(false) {}
    struct AttachTag {
        explicit AttachTag() = default;
    };
    /// Uses the ring that the constructor above built in `memory`, maybe in another process.
    MessageRing(AttachTag, void* memory, const char* owner)
        : h_(static_cast<Header*>(memory)), data_(reinterpret_cast<std::byte*>(h_ + 1)), owner_(owner), owned_(false) {}

    ~MessageRing() {
        if (!owned_) return;
        h_->~Header();
        Arena::instance().deallocate(h_);
    }
    MessageRing(const MessageRing&) = delete;
    MessageRing& operator=(const MessageRing&) = delete;

    /// The largest message that travels as one record: a quarter of the capacity (so that a producer
    /// never waits for more room than the ring has), at most 1 GiB (the record's 32-bit size field).
    std::size_t max_record_payload() const noexcept {
        return std::min<std::size_t>(h_->capacity / 4, std::size_t{1} << 30) - header_bytes;
    }

    /// Puts one message of `size` bytes (at most max_record_payload()); `write(std::byte*)` fills it.
    /// Returns false if `d` passed first. Throws QueueClosed.
    template <class Write>
    bool put(std::size_t size, Write&& write, Deadline d) {
        SideLock lock(*this, h_->put, d, "put");
        if (!lock) return false;
        if (!wait_for_room(record_bytes(size), true, d, "put")) return false;
        std::uint64_t tail = h_->put.pos.load(std::memory_order_relaxed);
        tail = pad_if_needed(tail, record_bytes(size));
        write_header(tail, size, whole);
        write(data_ + offset(tail) + header_bytes);
        publish_put(tail + record_bytes(size), 1, 0);
        return true;
    }

    /// Puts a message of any size, as fragments when it is larger than max_record_payload(), holding
    /// the producer side until the last one. Returns false if `d` passed first: a message of which
    /// some fragments were published by then is ended with an ABORT record, which makes consumers
    /// drop it, so a timed-out put leaves nothing behind. Throws QueueClosed (aborting likewise).
    bool put_fragmented(std::span<const std::byte> bytes, Deadline d) {
        if (bytes.size() <= max_record_payload()) return put_whole(bytes, d); // an empty message too
        SideLock lock(*this, h_->put, d, "put");
        if (!lock) return false;
        std::size_t done = 0;
        if (put_fragments(bytes, done, d)) return true;
        if (done != 0) abort_message();
        return false;
    }

    /// Puts a message of any size in steps, for a ring whose only producer is the caller (the pool's
    /// task ring: the parent): each call publishes the fragments that fit before `d` and returns true
    /// once the last one is in; `done` (0 on the first call) counts the bytes already published. The
    /// producer side is not held between calls, so the caller can do other work (collect results)
    /// while the consumers make room. Throws QueueClosed, aborting a half-published message.
    bool put_in_steps(std::span<const std::byte> bytes, std::size_t& done, Deadline d) {
        if (done == 0 && bytes.size() <= max_record_payload()) return put_whole(bytes, d);
        SideLock lock(*this, h_->put, d, "put");
        if (!lock) return false;
        return put_fragments(bytes, done, d);
    }

    /// Takes the next message and calls `read(std::span<const std::byte>)` on its bytes before the
    /// message leaves the ring. Returns false if `d` passed first. Throws QueueClosed once the ring
    /// is closed and drained. A fragmented message, once started, is finished past the deadline.
    ///
    /// `claim(first_bytes, position)` runs before anything of the message is taken out of the ring:
    /// with its whole payload, or with the first fragment's. A consumer that records `position`
    /// somewhere others can read lets them ask consumed(position) after its death: was the message
    /// taken (and lost with it), or is it still in the ring for the next consumer?
    template <class Read, class Claim = void (*)(std::span<const std::byte>, std::uint64_t)>
    bool get(Read&& read, Deadline d, Claim&& claim = [](std::span<const std::byte>, std::uint64_t) {}) {
        SideLock lock(*this, h_->get, d, "get");
        if (!lock) return false;
        std::vector<std::byte> assembled;
        bool assembling = false;
        for (;;) {
            std::uint64_t head = h_->get.pos.load(std::memory_order_relaxed);
            if (!wait_for_data(head, assembling ? Deadline::never() : d, assembling)) return false;
            const std::byte* rec = data_ + offset(head);
            std::uint32_t size, kind;
            std::memcpy(&size, rec, 4);
            std::memcpy(&kind, rec + 4, 4);
            check_record(head, size, kind);
            const std::span<const std::byte> payload(rec + header_bytes, size);
            const std::uint64_t next = head + record_bytes(size);
            switch (kind) {
            case whole:
                claim(payload, head);
                deliver(read, payload, next);
                return true;
            case fragment_first:
                claim(payload, head);
                assembled.assign(payload.begin(), payload.end());
                assembling = true;
                publish_get(next, 0);
                break;
            case fragment_middle:
                if (assembling) assembled.insert(assembled.end(), payload.begin(), payload.end());
                publish_get(next, 0); // without `assembling`: the tail of a message a dead consumer took
                break;
            case fragment_last:
                if (assembling) {
                    assembled.insert(assembled.end(), payload.begin(), payload.end());
                    deliver(read, std::span<const std::byte>(assembled), next);
                    return true;
                }
                publish_get(next, 1);
                break;
            case abort_record:
                assembled.clear();
                assembling = false;
                publish_get(next, 0);
                break;
            default: // pad
                publish_get(head + (h_->capacity - offset(head)), 0);
                break;
            }
        }
    }

    /// Whether the message whose first record is at `position` has been taken out of the ring (see
    /// get()). Finishes a dead consumer's half-done commit first, so the answer is exact.
    bool consumed(std::uint64_t position) {
        // If a live consumer holds the side, it took it after the dead one and so has recovered it.
        SideLock lock(*this, h_->get, Deadline::after(std::chrono::seconds(0)), "consumed");
        return h_->get.pos.load() > position;
    }

    /// Messages in the ring now (a snapshot).
    std::size_t size() const noexcept {
        std::uint64_t got = h_->get.count.load(), put = h_->put.count.load();
        return put > got ? static_cast<std::size_t>(put - got) : 0;
    }
    std::size_t capacity() const noexcept { return h_->capacity; }
    std::size_t maxsize() const noexcept { return h_->maxsize; }
    /// True when `maxsize` messages are queued or fewer than a small record's bytes are free.
    bool full() const noexcept {
        if (h_->maxsize && size() >= h_->maxsize) return true;
        return h_->capacity - (h_->put.pos.load() - h_->get.pos.load()) < record_bytes(1) + header_bytes;
    }

    /// Refuses further puts and wakes every waiter; getters drain what is left.
    void close() noexcept {
        std::uint32_t open = 0; // a close after close_and_drop() keeps the drop
        h_->closed.compare_exchange_strong(open, closed_draining);
        notify(h_->data);
        notify(h_->room);
    }
    bool closed() const noexcept { return h_->closed.load() != 0; }

    /// Closes the ring and drops every message in it: getters, the waiting ones included, throw
    /// QueueClosed at once. Returns how many whole messages were dropped. Blocks while a put or get
    /// finishes its current record (they see the close and stop). Throws StateError if called from
    /// inside a put or get on this thread.
    std::uint64_t close_and_drop() {
        h_->closed.store(closed_dropping);
        notify(h_->data);
        notify(h_->room);
        SideLock producers(*this, h_->put, Deadline::never(), "shutdown");
        SideLock consumers(*this, h_->get, Deadline::never(), "shutdown");
        const std::uint64_t put_count = h_->put.count.load(), got = h_->get.count.load();
        commit(h_->get, h_->put.pos.load(), put_count, 0);
        h_->get.peer_pos = h_->put.pos.load();
        notify(h_->room);
        return put_count > got ? put_count - got : 0;
    }

    /// The data area, for tests and fuzzers that corrupt it on purpose.
    std::span<std::byte> data_for_testing() noexcept { return {data_, h_->capacity}; }

private:
    static constexpr std::size_t header_bytes = 8;
    static constexpr std::uint32_t closed_draining = 1, closed_dropping = 2; // values of Header::closed
    enum Kind : std::uint32_t { pad = 0, whole = 1, fragment_first = 2, fragment_middle = 3, fragment_last = 4, abort_record = 5 };

    struct alignas(64) Side {
        Side() { posix::robust_mutex_init(&mutex, false); }
        ~Side() { posix::robust_mutex_destroy(&mutex); }
        pthread_mutex_t mutex;
        std::atomic<std::uint64_t> count{0}; // whole messages ever put / taken
        std::uint32_t in_message = 0;        // producers: a fragmented message is half published
        // The redo record (see the file comment).
        std::atomic<std::uint32_t> pending{0};
        std::uint32_t pending_in_message = 0;
        std::uint64_t pending_pos = 0;
        std::uint64_t pending_count = 0;
        // The other side's pos as this side last read it: a hint that is never ahead of the truth,
        // so the shared line is read only when the ring looks full (producers) or empty (consumers).
        std::uint64_t peer_pos = 0;
        // The only word the other side reads, on a line of its own: the holder writes the mutex and
        // the redo record several times per message, and must not lose the line to every poll.
        alignas(64) std::atomic<std::uint64_t> pos{0}; // tail for producers, head for consumers: bytes ever passed
    };
    struct alignas(alignment) Header {
        Header(std::size_t cap, std::size_t max) : capacity(cap), maxsize(max) {}
        Side put;
        Side get;
        // Each on a line of its own: a sleeper's registration must not take from the other side the
        // line it polls, nor the line that holds the constants every call reads.
        alignas(64) WaitQueue data; // consumers wait here for records
        alignas(64) WaitQueue room; // producers wait here for free bytes
        alignas(64) std::atomic<std::uint32_t> closed{0};
        const std::uint64_t capacity;
        const std::uint64_t maxsize;
    };

    // Holds one side's mutex for a scope, finishing a dead holder's work first.
    class SideLock {
    public:
        SideLock(MessageRing& r, Side& s, Deadline d, const char* op) : side_(s) {
            auto result = posix::robust_mutex_lock_until(&s.mutex, d);
            if (result == posix::LockResult::already_owned)
                throw StateError(std::string(r.owner_) + "::" + op + ": called again from inside a put or get on this thread");
            held_ = result == posix::LockResult::acquired || result == posix::LockResult::owner_died;
            if (result == posix::LockResult::owner_died) r.recover(s);
        }
        ~SideLock() {
            if (held_) posix::robust_mutex_unlock(&side_.mutex);
        }
        explicit operator bool() const noexcept { return held_; }

    private:
        Side& side_;
        bool held_ = false;
    };

    static constexpr std::size_t record_bytes(std::size_t payload) noexcept {
        return header_bytes + ((payload + 7) & ~std::size_t{7});
    }
    std::size_t offset(std::uint64_t pos) const noexcept { return static_cast<std::size_t>(pos & (h_->capacity - 1)); }

    void write_header(std::uint64_t pos, std::size_t size, Kind kind) noexcept {
        std::uint32_t s = static_cast<std::uint32_t>(size), k = kind;
        std::memcpy(data_ + offset(pos), &s, 4);
        std::memcpy(data_ + offset(pos) + 4, &k, 4);
    }

    // Records never wrap: if `bytes` do not fit before the end, a PAD record (published on its own)
    // fills the end. wait_for_room() reserved room for the pad as well.
    std::uint64_t pad_if_needed(std::uint64_t tail, std::size_t bytes) {
        std::size_t to_end = h_->capacity - offset(tail);
        if (bytes <= to_end) return tail;
        write_header(tail, to_end - header_bytes, pad);
        publish_put(tail + to_end, 0, h_->put.in_message);
        return tail + to_end;
    }

    static void commit(Side& s, std::uint64_t pos, std::uint64_t count, std::uint32_t in_message) noexcept {
        s.pending_pos = pos;
        s.pending_count = count;
        s.pending_in_message = in_message;
        s.pending.store(1, std::memory_order_release);
        apply(s);
    }
    static void apply(Side& s) noexcept {
        s.in_message = s.pending_in_message;
        s.count.store(s.pending_count, std::memory_order_release);
        s.pos.store(s.pending_pos); // seq_cst: pairs with the sleeper registration in await()
        s.pending.store(0, std::memory_order_release);
    }

    void publish_put(std::uint64_t tail, std::uint64_t messages, std::uint32_t in_message) {
        commit(h_->put, tail, h_->put.count.load(std::memory_order_relaxed) + messages, in_message);
        notify(h_->data);
    }
    void publish_get(std::uint64_t head, std::uint64_t messages) {
        commit(h_->get, head, h_->get.count.load(std::memory_order_relaxed) + messages, 0);
        notify(h_->room);
    }

    // Shared memory is written by other processes: a record header is checked before it is trusted,
    // so that a corrupted ring gives SerializationError, never a read outside the buffer.
    void check_record(std::uint64_t head, std::uint32_t size, std::uint32_t kind) const {
        const std::uint64_t published = h_->put.pos.load() - head;
        const std::size_t to_end = h_->capacity - offset(head);
        const bool ok = kind <= abort_record && record_bytes(size) <= std::min<std::uint64_t>(to_end, published) &&
                        (kind != pad || size == to_end - header_bytes);
        if (!ok)
            throw SerializationError(std::string(owner_) + "::get: corrupted record at byte " + std::to_string(offset(head)) +
                                     " (size " + std::to_string(size) + ", kind " + std::to_string(kind) +
                                     "): the shared memory was overwritten");
    }

    template <class Read>
    void deliver(Read& read, std::span<const std::byte> bytes, std::uint64_t next) {
        try {
            read(bytes);
        } catch (...) {
            publish_get(next, 1); // undecodable: drop it rather than fail every later get on it
            throw;
        }
        publish_get(next, 1);
    }

    bool put_whole(std::span<const std::byte> bytes, Deadline d) {
        return put(bytes.size(), [&](std::byte* out) { std::copy(bytes.begin(), bytes.end(), out); }, d);
    }

    // Producer side held. Publishes the fragments of `bytes` from `done` on, until the last one is in
    // (true) or `d` passes before the next one has room (false: the message stays half published,
    // `in_message` set, for the caller to resume or abort). Throws QueueClosed, aborting the message.
    bool put_fragments(std::span<const std::byte> bytes, std::size_t& done, Deadline d) {
        const std::size_t chunk = max_record_payload();
        while (done < bytes.size()) {
            std::size_t n = std::min(chunk, bytes.size() - done);
            bool first = done == 0, last = done + n == bytes.size();
            // Room for this fragment and for an ABORT record, should this producer die after it.
            try {
                if (!wait_for_room(record_bytes(n) + header_bytes, first, d, "put")) return false;
            } catch (const QueueClosed&) {
                if (!first) abort_message();
                throw;
            }
            std::uint64_t tail = pad_if_needed(h_->put.pos.load(std::memory_order_relaxed), record_bytes(n));
            write_header(tail, n, first ? fragment_first : last ? fragment_last : fragment_middle);
            std::memcpy(data_ + offset(tail) + header_bytes, bytes.data() + done, n);
            publish_put(tail + record_bytes(n), last ? 1 : 0, last ? 0 : 1);
            done += n;
        }
        return true;
    }

    // Called holding a side's mutex after its previous holder died.
    void recover(Side& s) {
        if (s.pending.load(std::memory_order_acquire)) apply(s);
        if (&s == &h_->put && s.in_message) abort_message();
    }

    // Ends a half-published fragmented message; its producer reserved room for this record.
    void abort_message() {
        std::uint64_t tail = pad_if_needed(h_->put.pos.load(std::memory_order_relaxed), header_bytes);
        write_header(tail, 0, abort_record);
        publish_put(tail + header_bytes, 0, 0);
    }

    // Producer side held. Waits until `bytes` (plus a possible pad) fit and, when `counts`, the
    // message count is under maxsize. Throws QueueClosed if the ring is closed.
    bool wait_for_room(std::size_t bytes, bool counts, Deadline d, const char* op) {
        auto fits = [&] {
            if (h_->closed.load()) return true;
            std::uint64_t tail = h_->put.pos.load(std::memory_order_relaxed);
            std::size_t to_end = h_->capacity - offset(tail);
            std::size_t need = bytes <= to_end ? bytes : bytes + to_end;
            if (h_->capacity - (tail - h_->put.peer_pos) < need) {
                h_->put.peer_pos = h_->get.pos.load(std::memory_order_acquire);
                if (h_->capacity - (tail - h_->put.peer_pos) < need) return false;
            }
            return !counts || h_->maxsize == 0 || h_->put.count.load(std::memory_order_relaxed) - h_->get.count.load() < h_->maxsize;
        };
        if (!await(fits, h_->room, d)) return false;
        if (h_->closed.load()) throw QueueClosed(std::string(owner_) + "::" + op + ": the queue is closed");
        return true;
    }

    // Consumer side held. Waits until a record is published at `head`. Closed and drained throws
    // QueueClosed. While `assembling`, it also watches for the producer's death: every 20 ms it takes
    // the producer side, whose recovery ends the dead producer's message with an ABORT record.
    bool wait_for_data(std::uint64_t head, Deadline d, bool assembling) {
        // get.peer_pos is never behind head: every path that returns true leaves it at or past the
        // record it announces, so the fast path below never reads bytes nobody published.
        auto ready = [&] {
            if (h_->get.peer_pos > head) return true;
            h_->get.peer_pos = h_->put.pos.load();
            return h_->get.peer_pos > head || h_->closed.load();
        };
        for (;;) {
            Deadline step = assembling ? Deadline::after(std::chrono::milliseconds(20)) : d;
            if (await(ready, h_->data, step)) break;
            if (!assembling) return false;
            SideLock producer(*this, h_->put, Deadline::after(std::chrono::seconds(0)), "get");
        }
        if (h_->closed.load() == closed_dropping)
            throw QueueClosed(std::string(owner_) + "::get: the queue was shut down, dropping what it held");
        // `ready` may have returned on `closed` alone while a last record was being published: take
        // the tail again, into the cache, before reading past what the cache said.
        if (h_->get.peer_pos > head) return true;
        h_->get.peer_pos = h_->put.pos.load();
        if (h_->get.peer_pos > head) return true;
        throw QueueClosed(std::string(owner_) + "::get: the queue is closed and empty");
    }

    Header* h_;
    std::byte* data_;
    const char* owner_;
    bool owned_ = true;
};

} // namespace mproc::detail
