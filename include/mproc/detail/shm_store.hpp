// How SharedMap and SharedVector keep their entries in a named segment: a table of fixed-size rows
// and a heap of bytes, with no pointer anywhere, every offset and length checked before use.
//
//   payload: [Control: the robust lock, the layout magic, sizes, row count, heap start]
//            [area of `capacity` bytes: rows 0, 1, ... growing up --> free <-- heap growing down]
//
// A row holds one field per stored thing (a map's key and value, a vector's element):
//   - a trivially copyable serializable type is stored as it is, inside the row (an int takes 8
//     bytes: its 4, rounded up to 8 so that the next field's words stay aligned);
//   - std::string is stored as its bytes, any other serializable type as its codec encoding: both
//     in the heap, the row holding their offset in the area and their length (16 bytes).
// A map's rows are sorted by key: by operator< for the types stored as they are (which must have
// one), byte by byte for strings (std::string's own order) and encodings (a fixed, unspecified
// order; two keys are the same key when their encodings are equal). A vector's rows are its elements.
//
// Other processes write this memory, and a buggy or hostile one may write anything (see the trust
// model in docs/guarantees.md). So every shared word is read once into a local and checked before
// it is used: the control block against this process's own copy of the constants (capacity, row
// size), the row count and heap start against the area, each heap offset and length against the
// heap, and, where an operation walks the rows anyway, the keys' order and that no two fields share
// bytes. A violation is SerializationError ("... is corrupted: ..."); no read or write leaves the
// area, and every loop is bounded by a count checked against the area's size. clear() rewrites the
// control block from this process's constants without reading the rows: it makes a corrupted
// container usable again.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <pthread.h>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "codec/bytes.hpp"
#include "shared_mutex.hpp"
#include "shm_segment.hpp"

namespace mproc::detail::shm {

template <class T>
inline constexpr bool stored_in_place = std::is_trivially_copyable_v<T> && !std::is_same_v<T, std::string>;

template <class K>
concept MapKey = codec::is_serializable<K> && (!stored_in_place<K> || std::totally_ordered<K>);

/// A value ready to be copied into the segment: its bytes are made before the container's lock is
/// taken, so that encoding never runs under it.
template <class T>
class Prepared {
public:
    explicit Prepared(const T& v) : value_(v) {
        if constexpr (std::is_same_v<T, std::string>) {
            bytes_ = v;
        } else if constexpr (stored_in_place<T>) {
            bytes_ = std::string_view(reinterpret_cast<const char*>(std::addressof(value_)), sizeof(T));
        } else {
            encoded_ = codec::encode(v);
            bytes_ = std::string_view(reinterpret_cast<const char*>(encoded_.data()), encoded_.size());
        }
    }
    Prepared(const Prepared&) = delete; // bytes_ may point into encoded_
    Prepared& operator=(const Prepared&) = delete;
    /// What is stored: the object's own bytes, the string's or the encoding's.
    std::string_view bytes() const noexcept { return bytes_; }
    const T& value() const noexcept { return value_; }

private:
    const T& value_;
    std::vector<std::byte> encoded_;
    std::string_view bytes_;
};

/// The T whose stored bytes are `b` (a field of a row, in the segment). For a type stored in place
/// the length is the type's (the row's layout fixes it); the others are copied out before decoding,
/// so that a writer changing them meanwhile cannot change what the decoder has checked.
/// Throws SerializationError if an encoding does not decode.
template <class T>
T load(std::string_view b) {
    if constexpr (stored_in_place<T>) {
        std::array<std::byte, sizeof(T)> raw;
        std::memcpy(raw.data(), b.data(), sizeof(T));
        return std::bit_cast<T>(raw);
    } else if constexpr (std::is_same_v<T, std::string>) {
        return std::string(b);
    } else {
        std::vector<std::byte> copy(b.size());
        if (!b.empty()) std::memcpy(copy.data(), b.data(), b.size());
        return codec::decode<T>(std::span<const std::byte>(copy));
    }
}

/// "mproc.c2" in memory order: the container layout of rows and heap (layout 1 was Boost.Interprocess
/// containers, whose control block held an offset pointer here).
inline constexpr std::uint64_t store_magic = 0x32632e636f72706dULL;

/// Where one field of a row is and how it is stored.
struct FieldSpec {
    const char* name = "";         // "key", "value", "element": for error messages
    std::size_t at = 0;            // byte offset in the row
    std::size_t inline_size = 0;   // bytes of a type stored in the row; 0 for a field in the heap
    constexpr bool in_heap() const noexcept { return inline_size == 0; }
    constexpr std::size_t width() const noexcept { return in_heap() ? 16 : (inline_size + 7) / 8 * 8; }
};

/// The field of a T placed at byte `at` of the row.
template <class T>
constexpr FieldSpec field_of(const char* name, std::size_t at) {
    return FieldSpec{name, at, stored_in_place<T> ? sizeof(T) : 0};
}

/// One word of the segment, read or written exactly once (other processes may change it at any moment).
inline std::uint64_t load_word(std::byte* p) noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).load(std::memory_order_relaxed);
}
inline void store_word(std::byte* p, std::uint64_t v) noexcept {
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(v, std::memory_order_relaxed);
}

/// The rows and heap of one SharedMap or SharedVector in a named segment, with its robust lock.
/// Every access runs under the lock, through locked(), as an Op that read and checked the control
/// block first.
class RowStore {
public:
    static constexpr std::size_t min_capacity = 4096;

    struct alignas(64) Control {
        pthread_mutex_t mutex; // first, as in every named container: a SharedMutex's state is built here
        std::atomic<std::uint64_t> magic{0};
        std::atomic<std::uint64_t> capacity{0};      // bytes of the area
        std::atomic<std::uint64_t> row_bytes{0};
        std::atomic<std::uint64_t> count{0};         // rows in use: [0, count * row_bytes)
        std::atomic<std::uint64_t> reserved_rows{0}; // rows the heap keeps clear of (SharedVector::reserve)
        std::atomic<std::uint64_t> heap_low{0};      // the heap is [heap_low, capacity)
    };
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
    static_assert(offsetof(Control, magic) % 8 == 0);
    static constexpr std::size_t control_bytes = (sizeof(Control) + 63) / 64 * 64;

    /// The segment's payload size for a container of `capacity_bytes`. Throws ValueError.
    static std::size_t payload_bytes(std::size_t capacity_bytes, const std::string& op) {
        if (capacity_bytes < min_capacity || capacity_bytes > max_payload_bytes)
            throw ValueError(op + ": capacity_bytes must be in [4096, 2^40], got " + std::to_string(capacity_bytes));
        return control_bytes + capacity_bytes;
    }

    /// Builds an empty container in a segment just created, and publishes the segment.
    RowStore(Segment s, std::size_t capacity_bytes, const char* kind, std::span<const FieldSpec> fields)
        : segment_(std::move(s)),
          control_(new (segment_.payload()) Control{}),
          lock_(Placement::at(&control_->mutex, true), false, kind),
          area_(segment_.payload() + control_bytes),
          capacity_(capacity_bytes),
          row_bytes_(row_bytes_of(fields)),
          kind_(kind) {
        std::copy(fields.begin(), fields.end(), fields_.begin());
        field_count_ = fields.size();
        reset(0);
        segment_.publish();
    }

    /// Uses the container in a segment attached to. Throws ValueError if its control block is not
    /// this layout's (an older mproc's segment, or a damaged one) or does not match its size.
    RowStore(Segment s, const char* kind, std::span<const FieldSpec> fields)
        : segment_(std::move(s)),
          control_(reinterpret_cast<Control*>(segment_.payload())),
          lock_(Placement::at(&control_->mutex, false), false, kind),
          area_(segment_.payload() + control_bytes),
          capacity_(checked_capacity(segment_, control_, kind)),
          row_bytes_(row_bytes_of(fields)),
          kind_(kind) {
        std::copy(fields.begin(), fields.end(), fields_.begin());
        field_count_ = fields.size();
        if (const std::uint64_t rb = control_->row_bytes.load(std::memory_order_relaxed); rb != row_bytes_)
            throw ValueError(std::string(kind) + "::attach: " + quote_name(segment_.name()) + " is damaged: its rows are " +
                             std::to_string(rb) + " bytes, its types make them " + std::to_string(row_bytes_));
    }

    class Op;

    /// Runs f(Op&) under the lock. Throws OwnerDied (the lock is released: retry; the container may
    /// be inconsistent, which the next operations detect), StateError if this thread is already
    /// inside an operation on it (from a callback), ValueError when the capacity is exhausted,
    /// SerializationError when the shared bytes are corrupted (except for clear, which reads none).
    template <class F>
    decltype(auto) locked(const char* op, F&& f, bool check_control = true);

    /// Calls user code (update's callback) inside locked(): its exceptions pass through as they are.
    template <class F, class... A>
    static decltype(auto) call_user(F& f, A&&... args) {
        try {
            return f(std::forward<A>(args)...);
        } catch (...) {
            throw UserFailure{std::current_exception()};
        }
    }

    std::size_t capacity() const noexcept { return capacity_; }
    Segment& segment() noexcept { return segment_; }
    const Segment& segment() const noexcept { return segment_; }
    const char* kind() const noexcept { return kind_; }

private:
    struct UserFailure {
        std::exception_ptr error;
    };
    static std::size_t row_bytes_of(std::span<const FieldSpec> fields) noexcept {
        std::size_t n = 0;
        for (const FieldSpec& f : fields) n += f.width();
        return std::max<std::size_t>(n, 8);
    }
    static std::size_t checked_capacity(const Segment& s, const Control* c, const char* kind) {
        const std::string who = std::string(kind) + "::attach: " + quote_name(s.name());
        if (const std::uint64_t m = c->magic.load(std::memory_order_relaxed); m != store_magic)
            throw ValueError(who + " does not have this mproc's container layout (layout magic " + hex(m) + ", expected " +
                             hex(store_magic) + "): it was made by an older mproc (Boost.Interprocess containers) or "
                             "is damaged; remove it and create it again");
        const std::uint64_t cap = c->capacity.load(std::memory_order_relaxed);
        if (cap < min_capacity || cap > max_payload_bytes || control_bytes + cap != s.payload_size())
            throw ValueError(who + " is damaged: its control block does not match its size");
        return static_cast<std::size_t>(cap);
    }
    static std::string hex(std::uint64_t v) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string out = "0x";
        for (int shift = 60; shift >= 0; shift -= 4) out += digits[(v >> shift) & 15];
        return out;
    }
    /// Rewrites the control block from this process's constants: an empty container.
    void reset(std::uint64_t reserved_rows) noexcept {
        control_->magic.store(store_magic, std::memory_order_relaxed);
        control_->capacity.store(capacity_, std::memory_order_relaxed);
        control_->row_bytes.store(row_bytes_, std::memory_order_relaxed);
        control_->count.store(0, std::memory_order_relaxed);
        control_->reserved_rows.store(reserved_rows, std::memory_order_relaxed);
        control_->heap_low.store(capacity_, std::memory_order_relaxed);
    }

    Segment segment_;
    Control* control_;
    SharedMutex lock_;
    std::byte* area_;
    // The constants, from create() or checked at attach; never read from shared memory again, only
    // compared with the shared copies.
    std::size_t capacity_;
    std::size_t row_bytes_;
    std::array<FieldSpec, 2> fields_{};
    std::size_t field_count_ = 0;
    const char* kind_;
};

/// One operation on a RowStore, under its lock: the row count, heap start and reservation read once
/// and checked, then kept here and written back as they change.
class RowStore::Op {
public:
    Op(RowStore& s, const char* op, bool check_control) : s_(s), op_(op) {
        Control& c = *s_.control_;
        const std::uint64_t magic = c.magic.load(std::memory_order_relaxed);
        const std::uint64_t cap = c.capacity.load(std::memory_order_relaxed);
        const std::uint64_t rb = c.row_bytes.load(std::memory_order_relaxed);
        count_ = c.count.load(std::memory_order_relaxed);
        reserved_ = c.reserved_rows.load(std::memory_order_relaxed);
        heap_low_ = c.heap_low.load(std::memory_order_relaxed);
        if (!check_control) return;
        if (magic != store_magic || cap != s_.capacity_ || rb != s_.row_bytes_)
            throw corrupt("its control block was overwritten (layout magic " + hex(magic) + ", capacity " +
                          std::to_string(cap) + ", row size " + std::to_string(rb) + "; this process attached with " +
                          std::to_string(s_.capacity_) + " and " + std::to_string(s_.row_bytes_) + ")");
        if (heap_low_ > s_.capacity_)
            throw corrupt("its heap start " + std::to_string(heap_low_) + " lies past its capacity of " +
                          std::to_string(s_.capacity_) + " bytes");
        if (!rows_fit(count_))
            throw corrupt("its row count " + std::to_string(count_) + " exceeds the " + std::to_string(max_rows()) +
                          " rows that fit below its heap");
        if (!rows_fit(reserved_))
            throw corrupt("its reserved row count " + std::to_string(reserved_) + " exceeds the " +
                          std::to_string(max_rows()) + " rows that fit below its heap");
    }

    std::size_t count() const noexcept { return static_cast<std::size_t>(count_); }

    /// The stored bytes of field `f` of row `i` (< count()), in the segment: checked to lie in the heap.
    std::string_view field(std::size_t i, std::size_t f) const {
        const FieldSpec& spec = s_.fields_[f];
        std::byte* p = row(i) + spec.at;
        if (!spec.in_heap()) return {reinterpret_cast<const char*>(p), spec.inline_size};
        const std::uint64_t off = load_word(p);
        const std::uint64_t len = load_word(p + 8);
        check_range(off, len, i, spec);
        return {reinterpret_cast<const char*>(s_.area_ + off), static_cast<std::size_t>(len)};
    }

    /// Overwrites field `f` of row `i` with `bytes` (a type's own bytes for a field in the row).
    /// Throws ValueError when full (the field is unchanged).
    void set_field(std::size_t i, std::size_t f, std::string_view bytes) {
        const FieldSpec& spec = s_.fields_[f];
        if (!spec.in_heap()) {
            std::memcpy(row(i) + spec.at, bytes.data(), spec.inline_size);
            return;
        }
        const std::string_view old = field(i, f);
        if (bytes.size() <= old.size()) { // in place; a shorter value leaves its tail to the next compaction
            const auto off = static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(old.data()) - s_.area_);
            if (!bytes.empty()) std::memcpy(s_.area_ + off, bytes.data(), bytes.size());
            store_word(row(i) + spec.at + 8, bytes.size());
            return;
        }
        make_room(bytes.size(), count_);
        put_in_heap(row(i) + spec.at, bytes);
    }

    /// Inserts a row at `at` (<= count()) with one value per field. Throws ValueError when full
    /// (nothing changes).
    void insert_row(std::size_t at, std::span<const std::string_view> values) {
        std::uint64_t heap_bytes = 0;
        for (std::size_t f = 0; f < s_.field_count_; ++f)
            if (s_.fields_[f].in_heap()) heap_bytes += values[f].size();
        make_room(heap_bytes, count_ + 1);
        // The heap bytes first, the rows last: the count is written when the row is complete.
        std::array<std::uint64_t, 2> offsets{};
        for (std::size_t f = 0; f < s_.field_count_; ++f)
            if (s_.fields_[f].in_heap()) offsets[f] = take(values[f]);
        std::byte* r = row(at);
        std::memmove(r + s_.row_bytes_, r, (count_ - at) * s_.row_bytes_);
        std::memset(r, 0, s_.row_bytes_);
        for (std::size_t f = 0; f < s_.field_count_; ++f) {
            const FieldSpec& spec = s_.fields_[f];
            if (spec.in_heap()) {
                store_word(r + spec.at, offsets[f]);
                store_word(r + spec.at + 8, values[f].size());
            } else {
                std::memcpy(r + spec.at, values[f].data(), spec.inline_size);
            }
        }
        set_count(count_ + 1);
    }

    /// Removes row `i` (< count()). Heap bytes at the heap's start are given back at once, the
    /// others at the next compaction.
    void erase_row(std::size_t i) {
        std::array<std::string_view, 2> held{};
        for (std::size_t f = 0; f < s_.field_count_; ++f)
            if (s_.fields_[f].in_heap()) held[f] = field(i, f);
        for (int pass = 0; pass < 2; ++pass) // the key and the value may lie in either order
            for (std::string_view& b : held) {
                if (b.empty()) continue;
                const auto off = static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(b.data()) - s_.area_);
                if (off == heap_low_) {
                    set_heap_low(heap_low_ + b.size());
                    b = {};
                }
            }
        std::byte* r = row(i);
        std::memmove(r, r + s_.row_bytes_, (count_ - i - 1) * s_.row_bytes_);
        set_count(count_ - 1);
    }

    /// Keeps room for `n` rows in all clear of the heap. Throws ValueError when they cannot fit.
    void reserve_rows(std::uint64_t n) {
        if (n <= reserved_) return;
        make_room(0, n);
        reserved_ = n;
        s_.control_->reserved_rows.store(n, std::memory_order_relaxed);
    }

    /// Empties the container and rewrites its control block from this process's constants (it reads
    /// no row: this repairs a corrupted container). Keeps a reservation that still fits.
    void clear() noexcept {
        const std::uint64_t keep = reserved_ <= s_.capacity_ / s_.row_bytes_ ? reserved_ : 0;
        s_.reset(keep);
        count_ = 0;
        reserved_ = keep;
        heap_low_ = s_.capacity_;
    }

    /// Bytes not taken by rows (or reserved ones) or by the heap bytes rows refer to.
    std::size_t free_bytes() const {
        std::uint64_t live = 0;
        for (std::size_t i = 0; i < count_; ++i)
            for (std::size_t f = 0; f < s_.field_count_; ++f)
                if (s_.fields_[f].in_heap()) live += field(i, f).size();
        if (live > s_.capacity_ - heap_low_)
            throw corrupt("its rows refer to " + std::to_string(live) + " bytes, more than its heap of " +
                          std::to_string(s_.capacity_ - heap_low_) + " holds (fields share bytes)");
        return static_cast<std::size_t>(s_.capacity_ - rows_end(count_) - live);
    }

    /// SerializationError "<kind> "<name>": <op>: the shared <kind> is corrupted: <what>".
    SerializationError corrupt(const std::string& what) const {
        return SerializationError(std::string(s_.kind_) + " " + quote_name(s_.segment_.name()) + ": " + op_ +
                                  ": its shared memory is corrupted: " + what +
                                  " (clear() empties and repairs it)");
    }
    const char* op() const noexcept { return op_; }
    const std::string& name() const noexcept { return s_.segment_.name(); }

private:
    std::uint64_t max_rows() const noexcept { return heap_low_ / s_.row_bytes_; }
    /// Whether `n` rows end at or below the heap's start. A multiplication, not max_rows()'s division
    /// (tens of cycles, on every call).
    bool rows_fit(std::uint64_t n) const noexcept {
        std::uint64_t bytes = 0;
        return !__builtin_mul_overflow(n, std::uint64_t{s_.row_bytes_}, &bytes) && bytes <= heap_low_;
    }
    std::uint64_t rows_end(std::uint64_t rows) const noexcept { return std::max(rows, reserved_) * s_.row_bytes_; }
    std::byte* row(std::size_t i) const noexcept { return s_.area_ + i * s_.row_bytes_; }
    void set_count(std::uint64_t n) noexcept {
        count_ = n;
        s_.control_->count.store(n, std::memory_order_relaxed);
    }
    void set_heap_low(std::uint64_t v) noexcept {
        heap_low_ = v;
        s_.control_->heap_low.store(v, std::memory_order_relaxed);
    }
    void check_range(std::uint64_t off, std::uint64_t len, std::size_t i, const FieldSpec& spec) const {
        if (off < heap_low_ || off > s_.capacity_ || len > s_.capacity_ - off)
            throw corrupt("row " + std::to_string(i) + "'s " + spec.name + " (offset " + std::to_string(off) + ", " +
                          std::to_string(len) + " bytes) lies outside the heap [" + std::to_string(heap_low_) + ", " +
                          std::to_string(s_.capacity_) + ")");
    }
    bool fits(std::uint64_t heap_bytes, std::uint64_t rows) const noexcept {
        const std::uint64_t need_rows = std::max(rows, reserved_);
        if (!rows_fit(need_rows)) return false;
        return heap_low_ - need_rows * s_.row_bytes_ >= heap_bytes;
    }
    /// Makes sure that `rows` rows and `heap_bytes` more heap bytes fit, compacting the heap if they
    /// do not as it is. Throws ValueError when they cannot.
    void make_room(std::uint64_t heap_bytes, std::uint64_t rows) {
        if (fits(heap_bytes, rows)) return;
        compact();
        if (fits(heap_bytes, rows)) return;
        const std::uint64_t end = rows_end(count_);
        const std::uint64_t free = heap_low_ >= end ? heap_low_ - end : 0;
        throw ValueError(std::string(s_.kind_) + " " + quote_name(s_.segment_.name()) + ": " + op_ +
                         ": full: its capacity of " + std::to_string(s_.capacity_) + " bytes has " + std::to_string(free) +
                         " bytes free, too few for this; create it with a larger capacity_bytes");
    }
    /// Copies `bytes` to the heap (room made) and points the field at `where` to them.
    void put_in_heap(std::byte* where, std::string_view bytes) noexcept {
        const std::uint64_t off = take(bytes);
        store_word(where, off);
        store_word(where + 8, bytes.size());
    }
    /// Copies `bytes` to the start of the heap (room made); returns their offset. Empty bytes sit
    /// at the end of the area.
    std::uint64_t take(std::string_view bytes) noexcept {
        if (bytes.empty()) return s_.capacity_;
        set_heap_low(heap_low_ - bytes.size());
        std::memcpy(s_.area_ + heap_low_, bytes.data(), bytes.size());
        return heap_low_;
    }
    /// Moves every field's bytes to the end of the area, in their order, so that the free space is
    /// one gap. O(n log n) in the fields. Checks, before moving anything, that no two fields share a
    /// byte (a move would then corrupt the other).
    void compact() {
        struct Piece {
            std::uint64_t off, len;
            std::size_t row, field;
        };
        std::vector<Piece> pieces;
        for (std::size_t i = 0; i < count_; ++i)
            for (std::size_t f = 0; f < s_.field_count_; ++f) {
                if (!s_.fields_[f].in_heap()) continue;
                const std::string_view b = field(i, f);
                if (b.empty()) {
                    store_word(row(i) + s_.fields_[f].at, s_.capacity_);
                    continue;
                }
                pieces.push_back(
                    {static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(b.data()) - s_.area_), b.size(), i, f});
            }
        std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.off > b.off; });
        for (std::size_t k = 1; k < pieces.size(); ++k)
            if (pieces[k].off + pieces[k].len > pieces[k - 1].off)
                throw corrupt("row " + std::to_string(pieces[k].row) + "'s " + s_.fields_[pieces[k].field].name + " and row " +
                              std::to_string(pieces[k - 1].row) + "'s " + s_.fields_[pieces[k - 1].field].name +
                              " share heap bytes");
        // Highest first: each piece moves up, over bytes no piece still to move occupies.
        std::uint64_t top = s_.capacity_;
        for (const Piece& p : pieces) {
            top -= p.len;
            if (top != p.off) std::memmove(s_.area_ + top, s_.area_ + p.off, p.len);
            store_word(row(p.row) + s_.fields_[p.field].at, top);
        }
        set_heap_low(top);
    }
    static std::string hex(std::uint64_t v) { return RowStore::hex(v); }

    RowStore& s_;
    const char* op_;
    std::uint64_t count_ = 0;
    std::uint64_t reserved_ = 0;
    std::uint64_t heap_low_ = 0;
};

template <class F>
decltype(auto) RowStore::locked(const char* op, F&& f, bool check_control) {
    std::lock_guard guard(lock_);
    try {
        Op o(*this, op, check_control);
        return f(o);
    } catch (const UserFailure& u) {
        std::rethrow_exception(u.error);
    }
}

/// A map's rows: field 0 the key, field 1 the value, sorted by key.
template <class K, class V>
struct MapRows {
    static constexpr std::array<FieldSpec, 2> fields{field_of<K>("key", 0), field_of<V>("value", field_of<K>("key", 0).width())};

    /// -1, 0 or 1 as row i's key is before, equal to or after `k`.
    static int compare(const RowStore::Op& op, std::size_t i, const Prepared<K>& k) {
        const std::string_view b = op.field(i, 0);
        if constexpr (stored_in_place<K>) {
            const K stored = load<K>(b);
            return stored < k.value() ? -1 : k.value() < stored ? 1 : 0;
        } else {
            const int c = b.compare(k.bytes());
            return c < 0 ? -1 : c > 0 ? 1 : 0;
        }
    }
    /// Whether row i's key is before row j's.
    static bool before(const RowStore::Op& op, std::size_t i, std::size_t j) {
        if constexpr (stored_in_place<K>) {
            return load<K>(op.field(i, 0)) < load<K>(op.field(j, 0));
        } else {
            return op.field(i, 0) < op.field(j, 0);
        }
    }
    /// The first row whose key is not before `k`, and whether it is `k`. O(log n).
    static std::pair<std::size_t, bool> find(const RowStore::Op& op, const Prepared<K>& k) {
        std::size_t lo = 0, hi = op.count();
        while (lo < hi) {
            const std::size_t mid = lo + (hi - lo) / 2;
            if (compare(op, mid, k) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return {lo, lo < op.count() && compare(op, lo, k) == 0};
    }
    /// Sets `k` to `v`: overwrites its value, or inserts a row where find() said, after checking that
    /// its neighbours are in order (so that rows out of order are not made worse). O(n) row moves.
    static void set(RowStore::Op& op, const Prepared<K>& k, std::string_view v) {
        const auto [at, found] = find(op, k);
        if (found) {
            op.set_field(at, 1, v);
            return;
        }
        if ((at > 0 && compare(op, at - 1, k) >= 0) || (at < op.count() && compare(op, at, k) <= 0))
            throw op.corrupt("its rows are not in key order around row " + std::to_string(at));
        const std::array<std::string_view, 2> values{k.bytes(), v};
        op.insert_row(at, values);
    }
    /// Checks that row i (> 0) comes after row i - 1, for the walks over every row.
    static void check_order(const RowStore::Op& op, std::size_t i) {
        if (i > 0 && !before(op, i - 1, i))
            throw op.corrupt("rows " + std::to_string(i - 1) + " and " + std::to_string(i) + " are not in key order");
    }
};

/// A vector's rows: one field, the element.
template <class T>
struct VectorRows {
    static constexpr std::array<FieldSpec, 1> fields{field_of<T>("element", 0)};
};

} // namespace mproc::detail::shm
