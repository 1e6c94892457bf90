// MessageRing: the multi-producer, multi-consumer byte-message ring under Queue<T>.
//
// Layout: a header and `capacity` bytes of data in one arena block. Messages are records
// [u32 size | u32 kind | payload padded to 8 bytes] written at a monotonically growing byte position;
// a record never wraps (a PAD record fills the end of the buffer instead). Messages too large for one
// record travel as FIRST, MIDDLE..., LAST fragments, so any size goes through a ring of any capacity.
//
// Producers serialise on one robust mutex and consumers on another, so one producer and one consumer
// run in parallel; they meet only at the record headers (consumers wait on the next one) and the
// published positions (producers read the head when the ring looks full).
//
// Crash safety (SIGKILL at any instruction):
// - A side publishes with a redo record: it writes the new position and count into `pending`, marks it
//   valid, stores them, clears the mark. Whoever next takes that side's mutex (the kernel reports the
//   death as EOWNERDEAD) re-applies a valid record, so a commit is all or nothing.
// - A record is published by its header, one 8-byte word stored after the payload; the slot where
//   the next header goes reads `unpublished` until then. So a producer killed while writing leaves
//   nothing behind, and one killed after the header store has published its record: the next holder
//   of the producer side moves the tail past it. A producer killed between fragments leaves
//   `in_message` set: the next producer (or a consumer waiting for the rest) writes an ABORT record,
//   and the consumer drops the partial message. Fragment writers always leave room for that ABORT
//   record.
// - A consumer copies and decodes a message before it publishes the new head, so a consumer killed
//   mid-get leaves the message for the next one. This holds for fragmented messages too: the
//   consumer reads their fragments ahead of the head, and publishes the head past them only once the
//   message is delivered, or once the producer waits for room (`wants_room`): a message that does
//   not fit in the free room must be taken piecewise, and from then on it is lost with a consumer
//   killed before delivering it; the next consumer skips its remaining fragments.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <pthread.h>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "../errors.hpp"
#include "placement.hpp"
#include "deadline.hpp"
#include "posix/mutex.hpp"
#include "wait.hpp"

namespace mproc::detail {

// A class template over nothing, so that its members are compiled only where a Queue or a Pool uses
// them (MessageRing below names it).
template <class = void>
class BasicMessageRing {
public:
    static constexpr std::size_t min_capacity = 4096;
    static constexpr std::size_t max_capacity = std::size_t{1} << 40;

    /// A ring placed as `p` says (placement.hpp). Where it is built: `capacity_bytes` is rounded up
    /// to a power of two (at least 4 KiB), `maxsize` 0 means no limit on the number of messages;
    /// throws ValueError for a capacity past 1 TiB. Where it is found (a NamedQueue attaching), the
    /// builder's capacity and maxsize hold and the arguments are not used; the caller checks that
    /// footprint(capacity()) bytes are mapped there; throws SerializationError if the capacity found
    /// is not one that a ring can have. A placed ring is left in place by the destructor, as other
    /// processes may still use it.
    BasicMessageRing(Placement p, std::size_t capacity_bytes, std::size_t maxsize, const char* owner)
        : h_(p, Footprint{p.builds() ? footprint(capacity_bytes, owner) : sizeof(Header)},
             p.builds() ? rounded_capacity(capacity_bytes, owner) : 0, maxsize),
          data_(reinterpret_cast<std::byte*>(h_.get() + 1)), owner_(owner), cap_(h_->capacity), maxsize_(h_->maxsize) {
        if (!std::has_single_bit(cap_) || cap_ < min_capacity || cap_ > max_capacity)
            corrupted_field("attach", "capacity", cap_);
        if (p.builds()) slot(0).store(unpublished); // the memory may be a reused block's
    }
    /// A ring in the arena, as above.
    BasicMessageRing(std::size_t capacity_bytes, std::size_t maxsize, const char* owner)
        : BasicMessageRing(Placement::arena(), capacity_bytes, maxsize, owner) {}

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
    BasicMessageRing(const BasicMessageRing&) = delete;
    BasicMessageRing& operator=(const BasicMessageRing&) = delete;

    /// The largest message that travels as one record: a quarter of the capacity (so that a producer
    /// never waits for more room than the ring has), at most 1 GiB (the record's 32-bit size field).
    std::size_t max_record_payload() const noexcept {
        return std::min<std::size_t>(cap_ / 4, std::size_t{1} << 30) - header_bytes;
    }

    /// Puts one message of `size` bytes (at most max_record_payload()); `write(std::byte*)` fills it.
    /// Returns false if `d` passed first. Throws QueueClosed.
    template <class Write>
    bool put(std::size_t size, Write&& write, Deadline d) {
        SideLock lock(*this, h_->put, d, "put");
        if (!lock) return false;
        // Room for the record and for the next record's header slot, which it leaves unpublished.
        if (!wait_for_room(record_bytes(size) + header_bytes, true, d, "put")) return false;
        std::uint64_t tail = h_->put.pos.load(std::memory_order_relaxed);
        tail = pad_if_needed(tail, record_bytes(size));
        write(data_ + offset(tail) + header_bytes);
        publish_put(tail, size, whole, 1, 0);
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
    /// is closed and drained (at once after close_and_drop()).
    ///
    /// A message leaves the ring in one step, after `read` returned: a consumer killed before that
    /// leaves it whole for the next one. The exception is a fragmented message that does not fit in
    /// the ring's free room: its producer waits for the consumer to free its first fragments, and
    /// from that moment the message belongs to this consumer (it is lost with it, and the get goes on
    /// past `d` until the last fragment, which a live producer sends or a dead one's ABORT replaces).
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
        bool assembling = false; // a FIRST fragment has been read, its LAST not yet
        bool taken = false;      // ...and the head has moved past it: the message is this consumer's
        // Where the next record is read. Ahead of the published head only while assembling: the
        // fragments read so far stay in the ring until the message is delivered or must make room.
        std::uint64_t pos = h_->get.pos.load(std::memory_order_relaxed);
        for (;;) {
            switch (wait_for_data(pos, taken ? Deadline::never() : d, assembling, assembling && !taken)) {
            case Data::timed_out:
                return false; // nothing was published: a message being assembled stays whole
            case Data::room_wanted:
                publish_get(pos, 0); // the producer needs the room: from here the message is ours
                taken = true;
                continue;
            case Data::ready:
                break;
            }
            const std::byte* rec = data_ + offset(pos);
            const auto [size, kind] = fields(slot(pos).load(std::memory_order_acquire));
            check_record(pos, size, kind);
            const std::span<const std::byte> payload(rec + header_bytes, size);
            const std::uint64_t next = pos + record_bytes(size);
            switch (kind) {
            case whole:
                if (assembling) corrupted(pos, size, kind);
                claim(payload, pos);
                deliver(read, payload, next);
                return true;
            case fragment_first:
                if (assembling) corrupted(pos, size, kind);
                claim(payload, pos);
                assembled.assign(payload.begin(), payload.end());
                assembling = true;
                pos = next;
                break;
            case fragment_middle:
                if (assembling) {
                    assembled.insert(assembled.end(), payload.begin(), payload.end());
                    pos = next;
                    if (taken) publish_get(pos, 0); // the message is ours already: free its room at once
                } else {
                    publish_get(pos = next, 0); // the rest of a message that a dead consumer took
                }
                break;
            case fragment_last:
                if (assembling) {
                    assembled.insert(assembled.end(), payload.begin(), payload.end());
                    deliver(read, std::span<const std::byte>(assembled), next);
                    return true;
                }
                publish_get(pos = next, 1);
                break;
            case abort_record:
                assembled.clear();
                assembling = taken = false;
                publish_get(pos = next, 0);
                break;
            default: // pad
                pos += cap_ - offset(pos);
                if (!assembling || taken) publish_get(pos, 0);
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
    std::size_t capacity() const noexcept { return cap_; }
    std::size_t maxsize() const noexcept { return maxsize_; }
    /// True when `maxsize` messages are queued or fewer than a small record's bytes are free.
    bool full() const noexcept {
        if (maxsize_ && size() >= maxsize_) return true;
        const std::uint64_t tail = h_->put.pos.load(), head = h_->get.pos.load();
        // head passes tail for a moment when a consumer took the record of a producer that died publishing it
        return tail > head && cap_ - (tail - head) < record_bytes(1) + 2 * header_bytes;
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
        tail_seen_ = h_->put.pos.load();
        notify(h_->room);
        return put_count > got ? put_count - got : 0;
    }


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
        // The only word the other side reads, on a line of its own: the holder writes the mutex and
        // the redo record several times per message, and must not lose the line to every poll.
        alignas(64) std::atomic<std::uint64_t> pos{0}; // tail for producers, head for consumers: bytes ever passed
        // Producers: one waits for free bytes. A consumer that holds the fragments of a message it
        // is assembling in the ring frees them when it sees this (see get()).
        std::atomic<std::uint32_t> wants_room{0};
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
        SideLock(BasicMessageRing& r, Side& s, Deadline d, const char* op) : side_(s) {
            auto result = posix::robust_mutex_lock_until(&s.mutex, d);
            if (result == posix::LockResult::already_owned)
                throw StateError(std::string(r.owner_) + "::" + op + ": called again from inside a put or get on this thread");
            held_ = result == posix::LockResult::acquired || result == posix::LockResult::owner_died;
            if (!held_) return;
            try {
                if (result == posix::LockResult::owner_died) r.recover(s, op);
                r.verify(s, op);
            } catch (...) {
                posix::robust_mutex_unlock(&s.mutex);
                held_ = false;
                throw;
            }
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
    std::size_t offset(std::uint64_t pos) const noexcept { return static_cast<std::size_t>(pos & (cap_ - 1)); }

    // A record's header is one 8-byte word, [u32 size | u32 kind] in memory order, stored with one
    // atomic store: that store publishes the record. The word at the producers' tail always reads
    // `unpublished` (no size and kind can), so consumers watch the header of the record they wait
    // for, not the producers' position: one cache line fetched per message instead of two, one after
    // the other (the position, then the record).
    static constexpr std::uint64_t unpublished = ~std::uint64_t{0};
    // Positions move by whole records, multiples of 8 bytes: one that is not was written by another
    // process, and an atomic access to a misaligned word is undefined, so it is refused here.
    std::atomic_ref<std::uint64_t> slot(std::uint64_t pos) const {
        if (pos % header_bytes != 0) [[unlikely]]
            throw SerializationError(std::string(owner_) + ": the shared ring is corrupted: position " + std::to_string(pos) +
                                     " is not on a record boundary (a multiple of " + std::to_string(header_bytes) + " bytes)");
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data_ + offset(pos)));
    }
    static std::uint64_t header_word(std::size_t size, Kind kind) noexcept {
        const std::uint32_t f[2] = {static_cast<std::uint32_t>(size), kind};
        std::uint64_t w;
        std::memcpy(&w, f, 8);
        return w;
    }
    struct Fields {
        std::uint32_t size, kind;
    };
    static Fields fields(std::uint64_t word) noexcept {
        std::uint32_t f[2];
        std::memcpy(f, &word, 8);
        return {f[0], f[1]};
    }
    static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= 8, "header words are 8-aligned");

    // Records never wrap: if `bytes` do not fit before the end, a PAD record (published on its own)
    // fills the end. wait_for_room() reserved room for the pad as well.
    std::uint64_t pad_if_needed(std::uint64_t tail, std::size_t bytes) {
        std::size_t to_end = cap_ - offset(tail);
        if (bytes <= to_end) return tail;
        publish_put(tail, to_end - header_bytes, pad, 0, h_->put.in_message);
        return tail + to_end;
    }

    void commit(Side& s, std::uint64_t pos, std::uint64_t count, std::uint32_t in_message) noexcept {
        s.pending_pos = pos;
        s.pending_count = count;
        s.pending_in_message = in_message;
        s.pending.store(1, std::memory_order_release);
        apply(s);
    }
    void apply(Side& s) noexcept {
        s.in_message = s.pending_in_message;
        s.count.store(s.pending_count, std::memory_order_release);
        // The head is seq_cst: pairs with the registration of a producer sleeping for room (await()).
        // Consumers sleep on record headers, not on the tail, which needs no such store.
        s.pos.store(s.pending_pos, &s == &h_->get ? std::memory_order_seq_cst : std::memory_order_release);
        s.pending.store(0, std::memory_order_release);
    }

    // Publishes the record of `size` bytes at `tail`, whose payload is written, then moves the tail
    // past it. The next header slot is marked unpublished first and the header stored last (seq_cst:
    // pairs with the registration of a consumer sleeping in await()), so a consumer that sees the
    // header sees the payload and an unpublished slot after it. A producer killed after the header
    // store and before the commit has published the record all the same: whoever takes the side
    // next moves the tail past it (recover()).
    void publish_put(std::uint64_t tail, std::size_t size, Kind kind, std::uint64_t messages, std::uint32_t in_message) {
        const std::uint64_t next = tail + record_bytes(size);
        slot(next).store(unpublished, std::memory_order_relaxed);
        slot(tail).store(header_word(size, kind));
        commit(h_->put, next, h_->put.count.load(std::memory_order_relaxed) + messages, in_message);
        notify(h_->data);
    }
    void publish_get(std::uint64_t head, std::uint64_t messages) {
        commit(h_->get, head, h_->get.count.load(std::memory_order_relaxed) + messages, 0);
        notify(h_->room);
    }

    // Shared memory is written by other processes: a record header is checked before it is trusted,
    // so that a corrupted ring gives SerializationError, never a read outside the buffer.
    // A record also ends within a capacity of the producers' tail (a live producer publishes at most
    // a pad and a record past it), which bounds how far a consumer can walk over forged headers.
    void check_record(std::uint64_t head, std::uint32_t size, std::uint32_t kind) {
        const std::size_t to_end = cap_ - offset(head);
        bool ok = kind <= abort_record && record_bytes(size) <= to_end && (kind != pad || size == to_end - header_bytes);
        const std::uint64_t end = head + record_bytes(size);
        if (ok && end > tail_seen_ + cap_) { // once a capacity or so, as tail_seen_ falls behind
            const std::uint64_t tail = h_->put.pos.load(std::memory_order_acquire);
            ok = tail <= head + cap_ && end <= tail + cap_;
            if (ok) tail_seen_ = tail;
        }
        if (!ok)
            throw SerializationError(std::string(owner_) + "::get: corrupted record at byte " + std::to_string(offset(head)) +
                                     " (size " + std::to_string(size) + ", kind " + std::to_string(kind) +
                                     "): the shared memory was overwritten");
    }

    [[noreturn]] void corrupted(std::uint64_t pos, std::uint32_t size, std::uint32_t kind) const {
        throw SerializationError(std::string(owner_) + "::get: corrupted record at byte " + std::to_string(offset(pos)) +
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
            // Room for this fragment and for an ABORT record, should this producer die after it, each
            // followed by an unpublished header slot.
            try {
                if (!wait_for_room(record_bytes(n) + 2 * header_bytes, first, d, "put")) return false;
            } catch (const QueueClosed&) {
                if (!first) abort_message();
                throw;
            }
            std::uint64_t tail = pad_if_needed(h_->put.pos.load(std::memory_order_relaxed), record_bytes(n));
            std::memcpy(data_ + offset(tail) + header_bytes, bytes.data() + done, n);
            publish_put(tail, n, first ? fragment_first : last ? fragment_last : fragment_middle, last ? 1 : 0, last ? 0 : 1);
            done += n;
        }
        return true;
    }

    // Shared memory is written by other processes, which may be buggy or hostile (see the trust
    // model in docs/guarantees.md): every shared field is checked before it is used, and what cannot
    // be true of a ring is SerializationError, never a read or write outside the buffer or a wait
    // that cannot end. Checked holding side `s`: its pos is stable, the other one only moves towards
    // it, so 0 <= tail - head <= capacity holds whatever the order of the two reads.
    // The positions are checked where they are read from the other side anyway (a refresh of
    // head_seen_ or tail_seen_), not here: reading the other side's line on every call would cost
    // the very cache misses that those copies avoid.
    void verify(Side&, const char* op) const {
        if (h_->capacity != cap_) corrupted_field(op, "capacity", h_->capacity);
        if (h_->maxsize != maxsize_) corrupted_field(op, "maxsize", h_->maxsize);
    }
    void check_positions(const char* op, std::uint64_t head, std::uint64_t tail) const {
        if (tail < head || tail - head > cap_)
            throw SerializationError(std::string(owner_) + "::" + op + ": the shared ring is corrupted: head " +
                                     std::to_string(head) + " and tail " + std::to_string(tail) +
                                     " are not within its capacity of " + std::to_string(cap_) + " bytes");
    }
    [[noreturn]] void corrupted_field(const char* op, const char* field, std::uint64_t value) const {
        throw SerializationError(std::string(owner_) + "::" + op + ": the shared ring is corrupted: its " + field +
                                 " reads " + std::to_string(value) + ", not the " +
                                 std::to_string(std::string_view(field) == "maxsize" ? maxsize_ : cap_) +
                                 " it was made with");
    }

    // Called holding a side's mutex after its previous holder died.
    void recover(Side& s, const char* op) {
        if (s.pending.load(std::memory_order_acquire)) {
            // The redo record must describe a move forward that the ring allows.
            const bool put = &s == &h_->put;
            const std::uint64_t to = s.pending_pos, from = s.pos.load();
            // A head may pass the tail by the record of a producer that died publishing it.
            const std::uint64_t head = h_->get.pos.load();
            const bool ok = to >= from && s.pending_count >= s.count.load() &&
                            (put ? to >= head && to - head <= cap_ : to <= h_->put.pos.load() + cap_);
            if (!ok) corrupted_field(op, put ? "producers' pending commit" : "consumers' pending commit", to);
            apply(s);
        }
        if (&s == &h_->put) roll_forward(op);
        if (&s == &h_->put) s.wants_room.store(0);
        if (&s == &h_->put && s.in_message) abort_message();
    }

    // Producer side held after its holder died: a record whose header that holder stored is published
    // (consumers may have taken it), though its commit may not have run. Moves the tail past it.
    // A holder publishes one record at a time, and the slot after a record reads unpublished.
    void roll_forward(const char* op) {
        Side& s = h_->put;
        const std::uint64_t tail = s.pos.load();
        const std::uint64_t word = slot(tail).load(std::memory_order_acquire);
        if (word == unpublished) return;
        const auto [size, kind] = fields(word);
        const std::size_t to_end = cap_ - offset(tail);
        const std::uint64_t end = tail + record_bytes(size), head = h_->get.pos.load();
        if (kind > abort_record || record_bytes(size) > to_end || (kind == pad && size != to_end - header_bytes) ||
            head > end || end - head > cap_)
            throw SerializationError(std::string(owner_) + "::" + op + ": the shared ring is corrupted: a dead producer's last record at byte " +
                                     std::to_string(offset(tail)) + " (size " + std::to_string(size) + ", kind " + std::to_string(kind) +
                                     ") does not fit the ring");
        const std::uint64_t messages = kind == whole || kind == fragment_last ? 1 : 0;
        const std::uint32_t in_message = kind == pad ? s.in_message : kind == fragment_first || kind == fragment_middle ? 1 : 0;
        commit(s, end, s.count.load() + messages, in_message);
    }

    // Ends a half-published fragmented message; its producer reserved room for this record.
    void abort_message() {
        std::uint64_t tail = pad_if_needed(h_->put.pos.load(std::memory_order_relaxed), header_bytes);
        publish_put(tail, 0, abort_record, 0, 0);
    }

    // Producer side held. Waits until `bytes` (plus a possible pad) fit and, when `counts`, the
    // message count is under maxsize. Throws QueueClosed if the ring is closed.
    bool wait_for_room(std::size_t bytes, bool counts, Deadline d, const char* op) {
        // The common case first, without the wait's machinery: room by the cached head, no count limit.
        if (room_by_cache(h_->put.pos.load(std::memory_order_relaxed), bytes) && (!counts || maxsize_ == 0) &&
            !h_->closed.load()) [[likely]]
            return true;
        struct Flag { // raised while this producer lacks bytes, lowered however the wait ends
            std::atomic<std::uint32_t>& word;
            bool raised = false;
            ~Flag() {
                if (raised) word.store(0);
            }
        } flag{h_->put.wants_room};
        auto fits = [&] {
            if (h_->closed.load()) return true;
            std::uint64_t tail = h_->put.pos.load(std::memory_order_relaxed);
            // A stale head_seen_ (other producers have moved the tail on since) is refreshed too.
            if (!room_by_cache(tail, bytes)) {
                head_seen_ = h_->get.pos.load(std::memory_order_acquire);
                check_positions("put", head_seen_, tail);
                if (!room_by_cache(tail, bytes)) {
                    if (!flag.raised) { // seq_cst store, then notify(): pairs with the consumer's await
                        flag.raised = true;
                        flag.word.store(1);
                        notify(h_->data);
                    }
                    return false;
                }
            }
            return !counts || maxsize_ == 0 || h_->put.count.load(std::memory_order_relaxed) - h_->get.count.load() < maxsize_;
        };
        if (!await(fits, h_->room, d)) return false;
        if (h_->closed.load()) throw QueueClosed(std::string(owner_) + "::" + op + ": the queue is closed");
        return true;
    }

    // Whether `bytes` (plus a pad, if they do not fit before the end) are free past `tail` by head_seen_.
    bool room_by_cache(std::uint64_t tail, std::size_t bytes) const noexcept {
        const std::size_t to_end = cap_ - offset(tail);
        const std::size_t need = bytes <= to_end ? bytes : bytes + to_end;
        return tail - head_seen_ <= cap_ && cap_ - (tail - head_seen_) >= need;
    }

    enum class Data { ready, timed_out, room_wanted };

    // Consumer side held. Waits until a record is published at `pos`. Closed and drained throws
    // QueueClosed. While `holding` (assembling a message whose fragments are still in the ring) it
    // also returns room_wanted when the producer waits for room. While `assembling`, every 20 ms it
    // takes the producer side, whose recovery ends a dead producer's message with an ABORT record.
    Data wait_for_data(std::uint64_t pos, Deadline d, bool assembling, bool holding) {
        auto published = [&] { return slot(pos).load() != unpublished; }; // seq_cst: pairs with publish_put()
        if (published() && h_->closed.load() != closed_dropping) [[likely]]
            return Data::ready; // the common case, without the wait's machinery
        auto ready = [&] { return published() || h_->closed.load() || (holding && h_->put.wants_room.load()); };
        for (;;) {
            Deadline step = d;
            if (assembling) {
                step = Deadline::after(std::chrono::milliseconds(20));
                if (!d.is_never() && d.at() < step.at()) step = d;
            }
            if (!await(ready, h_->data, step)) {
                if (d.expired()) return Data::timed_out;
                SideLock producer(*this, h_->put, Deadline::after(std::chrono::seconds(0)), "get");
                continue;
            }
            if (h_->closed.load() == closed_dropping)
                throw QueueClosed(std::string(owner_) + "::get: the queue was shut down, dropping what it held");
            // `ready` may have returned on `closed` alone while a last record was being published.
            if (published()) return Data::ready;
            if (holding && h_->put.wants_room.load()) return Data::room_wanted;
            if (h_->closed.load()) throw QueueClosed(std::string(owner_) + "::get: the queue is closed and empty");
            // `ready` returned on a room request that is withdrawn now, the ring neither closed nor
            // fed: its producer found room (a wait that ended, or a recovery that is about to write
            // an ABORT record) and publishes next. Wait for that, not "closed and empty".
        }
    }

    SharedBlock<Header> h_;
    std::byte* data_;
    const char* owner_;
    // The constants, copied at construction or attach and never read from shared memory again (a
    // process that overwrote them could otherwise steer this one's reads and writes out of the buffer).
    std::uint64_t cap_ = 0;
    std::uint64_t maxsize_ = 0;
    // The other side's pos as this process last read it, under this side's lock: a hint that is never
    // ahead of the truth (positions only grow), so the shared line is read only when the ring looks
    // full (producers: head_seen_), or by consumers once a capacity or so (tail_seen_, the bound of
    // check_record()). Kept in the process, where no other process can push it ahead.
    std::uint64_t head_seen_ = 0;
    std::uint64_t tail_seen_ = 0;
};

using MessageRing = BasicMessageRing<>;

} // namespace mproc::detail
