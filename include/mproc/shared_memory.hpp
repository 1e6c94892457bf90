// mproc/shared_memory.hpp — memory, locks, queues and containers that unrelated processes share by
// name: Python's multiprocessing.shared_memory.SharedMemory, and the Manager().dict() use case
// without a server process.
//
// Everything else in mproc is shared with forked children only. The classes here live in named POSIX
// shared memory objects (/dev/shm/mproc.<name>), so any process of the same user that knows the name
// can use them: a second executable, a process started by a shell, a later run.
//
//   auto prices = mproc::SharedMap<std::string, double>::create("shop.prices");   // one program
//   auto prices = mproc::SharedMap<std::string, double>::attach("shop.prices");   // another one
//
// Each class has create(name, ...) and attach(name, ...), which return the object (none is movable
// but SharedMemory; C++17's guaranteed copy elision makes `auto x = T::create(...)` work).
//
// Names: 1 to 200 letters, digits, '.', '_' or '-', starting with a letter, a digit or '_'
// (anything else is a ValueError). mproc adds the prefix "mproc.", so the object of "shop.prices" is
// /dev/shm/mproc.shop.prices, and the cleanup helpers only ever touch mproc's own objects.
//
// Who removes the name: the creator. The object that create() returned removes the name when it is
// destroyed (in the process that created it, not in its forked children), unless created with
// CreateOptions{.unlink_on_close = false}; any handle may remove it earlier with unlink(). Removing a
// name never takes memory away from a process that has attached: the memory goes when the last
// mapping goes. Names are created with O_EXCL (an existing name is never taken over) and mode 0600.
//
// A creator that dies (crash, SIGKILL) cannot remove its names: they are then *stale*. Each segment
// records its creator's pid and start time, so list_shared_memory() tells stale names from live ones
// (a pid reused by another process does not count as the creator), and remove_stale_shared_memory()
// or the `mproc-shm clean` command removes them. CreateOptions{.replace_stale = true} makes create()
// replace a stale name instead of failing.
//
// Locks and crashes. NamedLock and the containers' locks are robust process-shared mutexes, with the
// same OwnerDied semantics as mproc::Lock; NamedQueue is mproc's crash-safe ring (see queue.hpp).
// A process killed in the middle of a SharedMap or SharedVector write makes the next operation throw
// OwnerDied; the lock is released, but the container may be inconsistent then: the operations after
// it check what they read and throw SerializationError where it does not hold; clear() repairs.
//
// Thread-safety: every call on these objects is safe from several threads and processes at once,
// except that one SharedMemory handle (its close(), moves) must not be raced. They may be used in
// forked children of the process that created or attached them.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <array>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <pthread.h>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <type_traits>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "detail/message_ring.hpp"
#include "detail/posix/shm.hpp"
#include "detail/shm_params.hpp"
#include "detail/shm_segment.hpp"
#include "detail/shm_store.hpp"
#include "errors.hpp"
#include "queue.hpp"
#include "sync.hpp"

namespace mproc {

/// How create() makes a named object.
struct CreateOptions {
    /// Permission bits of /dev/shm/mproc.<name>, applied exactly whatever the umask; must include 0600.
    /// 0600 (the default): only this user can attach.
    unsigned mode = 0600;
    /// Whether the creator's destructor removes the name. With false, the name outlives its creator
    /// (for a later process to attach); someone removes it with unlink() or unlink_shared_memory(),
    /// and remove_stale_shared_memory() leaves it alone.
    bool unlink_on_close = true;
    /// If the name is taken by a stale object (its creator is gone), remove it and create anew
    /// instead of failing. A name whose creator runs is never replaced.
    bool replace_stale = false;
};

/// How attach() finds a named object.
struct AttachOptions {
    /// How long to wait for the name to appear, when its creator may not have made it yet.
    /// 0 (the default): a missing name fails at once.
    std::chrono::duration<double> wait{0};
    /// attach() refuses an object that another user owns (OSError EPERM): whoever creates a name
    /// first owns it, and a squatter's object would feed this process the squatter's data. Set this
    /// to also accept objects owned by that uid (a service account that creates them, say).
    std::optional<uid_t> allowed_owner = std::nullopt;
};

/// A block of bytes that unrelated processes share by name (Python's SharedMemory). Movable, not
/// copyable; the destructor unmaps (and, in the creator, removes the name; see the top of this file).
///
/// The bytes start zeroed and are not synchronised: guard them with a NamedLock, or use atomics
/// (std::atomic_ref) on suitably aligned offsets. buf() is 64-byte aligned.
class SharedMemory {
public:
    /// Creates `name` with `size` bytes (at least 1). Throws ValueError (bad name, size or mode),
    /// OSError (code() EEXIST: the name is taken; others from the system).
    static SharedMemory create(std::string_view name, std::size_t size, CreateOptions options = {}) {
        return SharedMemory(detail::shm::Segment::create(name, detail::shm::Kind::bytes, "", size,
                                                         detail::shm::params(options), "SharedMemory::create"));
    }
    /// Attaches to `name`, whatever its size. Throws ValueError (bad name; it is not a SharedMemory),
    /// OSError (code() ENOENT: no such name; EACCES: another user's), StateError (its creator died
    /// before finishing it), TimeoutError.
    static SharedMemory attach(std::string_view name, AttachOptions options = {}) {
        return SharedMemory(detail::shm::Segment::attach(name, detail::shm::Kind::bytes, "", detail::shm::params(options),
                                                         "SharedMemory::attach"));
    }
    /// As above, and throws ValueError unless `name` has exactly `size` bytes.
    static SharedMemory attach(std::string_view name, std::size_t size, AttachOptions options = {}) {
        return SharedMemory(detail::shm::Segment::attach(name, detail::shm::Kind::bytes, "",
                                                         detail::shm::params(options, size), "SharedMemory::attach"));
    }

    SharedMemory(SharedMemory&&) noexcept = default;
    SharedMemory& operator=(SharedMemory&&) noexcept = default;

    /// The name given to create(), without the "mproc." prefix.
    const std::string& name() const noexcept { return segment_.name(); }
    /// The number of bytes; 0 after close().
    std::size_t size() const noexcept { return segment_.mapped() ? size_ : 0; }
    /// The bytes; empty after close().
    std::span<std::byte> buf() const noexcept { return {segment_.payload(), size()}; }
    std::byte* data() const noexcept { return segment_.payload(); }
    /// True in the process that created it.
    bool is_creator() const noexcept { return segment_.is_creator(); }
    /// The pid of the process that created it.
    pid_t creator_pid() const noexcept { return segment_.creator_pid(); }

    /// Removes the name now (any process may). Returns false if it was already removed, or if the name
    /// now belongs to another object (removed and created again), which is left alone. Mappings stay
    /// valid. Throws OSError if the system refuses.
    bool unlink() { return segment_.unlink(); }
    /// Unmaps now (Python's close()); the creator also removes the name unless it keeps it. The
    /// destructor does the same. buf() is empty afterwards.
    void close() noexcept { segment_.close(); }

private:
    explicit SharedMemory(detail::shm::Segment s) : segment_(std::move(s)), size_(segment_.payload_size()) {
        if (segment_.is_creator()) segment_.publish();
    }
    detail::shm::Segment segment_;
    std::size_t size_;
};

/// A mproc::Lock that unrelated processes share by name: a robust process-shared mutex in a named
/// segment. Everything mproc::Lock does, with the same errors (OwnerDied when a holder died holding
/// it, in any process). Not copyable or movable.
class NamedLock : public Lock {
public:
    /// Throws as SharedMemory::create.
    static NamedLock create(std::string_view name, CreateOptions options = {}) {
        return NamedLock(detail::shm::Segment::create(name, detail::shm::Kind::lock, "", Lock::state_size(),
                                                      detail::shm::params(options), "NamedLock::create"),
                         true);
    }
    /// Throws as SharedMemory::attach; ValueError if `name` is not a NamedLock.
    static NamedLock attach(std::string_view name, AttachOptions options = {}) {
        return NamedLock(detail::shm::Segment::attach(name, detail::shm::Kind::lock, "", detail::shm::params(options),
                                                      "NamedLock::attach"),
                         false);
    }
    const std::string& name() const noexcept { return segment_.name(); }
    /// As SharedMemory::unlink.
    bool unlink() { return segment_.unlink(); }

private:
    // The segment's mapping stays where it is when `s` moves into segment_. Members go before
    // bases at destruction, which is safe: a placed state is never destroyed (placement.hpp).
    NamedLock(detail::shm::Segment s, bool creating)
        : Lock(detail::Placement::at(s.payload(), creating), "NamedLock"), segment_(std::move(s)) {
        if (creating) segment_.publish();
    }
    detail::shm::Segment segment_;
};

/// A mproc::Semaphore that unrelated processes share by name (POSIX's sem_open, in mproc's terms).
/// It has no owner: permits taken by a process that dies are not returned, so bound such waits.
class NamedSemaphore : public Semaphore {
public:
    /// Throws ValueError for an initial value outside [0, 2^31), else as SharedMemory::create.
    static NamedSemaphore create(std::string_view name, std::ptrdiff_t initial = 1, CreateOptions options = {}) {
        return NamedSemaphore(detail::shm::Segment::create(name, detail::shm::Kind::semaphore, "", Semaphore::state_size(),
                                                           detail::shm::params(options), "NamedSemaphore::create"),
                              initial, true);
    }
    /// Throws as SharedMemory::attach; ValueError if `name` is not a NamedSemaphore.
    static NamedSemaphore attach(std::string_view name, AttachOptions options = {}) {
        return NamedSemaphore(detail::shm::Segment::attach(name, detail::shm::Kind::semaphore, "",
                                                           detail::shm::params(options), "NamedSemaphore::attach"),
                              0, false);
    }
    const std::string& name() const noexcept { return segment_.name(); }
    bool unlink() { return segment_.unlink(); }

private:
    NamedSemaphore(detail::shm::Segment s, std::ptrdiff_t initial, bool creating)
        : Semaphore(detail::Placement::at(s.payload(), creating), initial, "NamedSemaphore"), segment_(std::move(s)) {
        if (creating) segment_.publish();
    }
    detail::shm::Segment segment_;
};

/// A mproc::Queue<T> that unrelated processes share by name: the same crash-safe ring, in a named
/// segment of QueueOptions::capacity_bytes (rounded up to a power of two) plus a small header.
/// Everything Queue<T> does (put, get, close...), with the same errors. Attaching checks that the
/// queue was made for the same T (by type name: two different types of the same name are not caught).
template <Serializable T>
class NamedQueue : public Queue<T> {
public:
    /// Throws ValueError (bad name or options), else as SharedMemory::create.
    static NamedQueue create(std::string_view name, QueueOptions queue = {}, CreateOptions options = {}) {
        const std::size_t bytes = detail::MessageRing::footprint(queue.capacity_bytes, "NamedQueue::create");
        return NamedQueue(detail::shm::Segment::create(name, detail::shm::Kind::queue, detail::codec::type_name<T>(), bytes,
                                                       detail::shm::params(options), "NamedQueue::create"),
                          queue, true);
    }
    /// Throws as SharedMemory::attach; ValueError if `name` is not a NamedQueue<T>.
    static NamedQueue attach(std::string_view name, AttachOptions options = {}) {
        return NamedQueue(detail::shm::Segment::attach(name, detail::shm::Kind::queue, detail::codec::type_name<T>(),
                                                       detail::shm::params(options), "NamedQueue::attach"),
                          QueueOptions{}, false);
    }
    const std::string& name() const noexcept { return segment_.name(); }
    bool unlink() { return segment_.unlink(); }

private:
    // As NamedLock's. `options` are used only where the ring is built.
    NamedQueue(detail::shm::Segment s, const QueueOptions& options, bool creating)
        : Queue<T>(detail::Placement::at(s.payload(), creating), options, "NamedQueue"), segment_(std::move(s)) {
        if (creating) {
            segment_.publish();
            return;
        }
        const std::size_t cap = this->capacity_bytes();
        if (detail::MessageRing::footprint(cap, "NamedQueue::attach") != segment_.payload_size())
            throw ValueError("NamedQueue::attach: " + detail::shm::quote_name(segment_.name()) +
                             " is damaged: its ring does not match its size");
    }
    detail::shm::Segment segment_;
};

/// A dictionary that unrelated processes share by name: Python's Manager().dict() without a server
/// process. Its entries live in a named segment of `capacity_bytes` as a table of rows sorted by key
/// and a heap of bytes (detail/shm_store.hpp), guarded by a robust NamedLock-like mutex; every call
/// takes it, so each call is atomic, and update() makes a read-modify-write atomic.
///
/// Keys and values: any serializable type (<mproc/codec.hpp>). Trivially copyable types are stored
/// as they are, std::string as its bytes, anything else as its encoding; keys stored as they are must
/// have operator<. Iteration (keys(), items()) is in key order: operator< for trivially copyable
/// keys, std::string's order for strings, a fixed but unspecified order for other keys.
///
/// Capacity: an entry takes a row of its key's and its value's widths (sizeof rounded up to 8 for
/// a type stored as it is, 16 for a string or an encoding) plus, for a string or an encoding, its
/// bytes: 16 bytes for an int -> int map, 24 + the key's length for std::string -> double. Bytes of
/// overwritten or erased entries are reclaimed by compacting when the next entry would not fit.
/// When it still does not fit, the call throws ValueError naming the capacity and leaves the map as
/// it was. free_bytes() tells what is left.
///
/// Cost: get, contains and overwriting set are O(log n) key comparisons; inserting or erasing a key
/// moves the rows after it (O(n) bytes moved, a memmove); a compaction is O(n log n).
///
/// Corruption: every offset, length and count read from the segment is checked first, so bytes
/// written there by a buggy or hostile process give SerializationError (naming the operation and
/// what is wrong), never a crash or an endless loop; clear() empties and repairs the map (see
/// docs/guarantees.md for what is and is not detected).
template <class K, class V>
    requires Serializable<K> && detail::shm::MapKey<K> && Serializable<V>
class SharedMap {
    using Store = detail::shm::RowStore;
    using Op = Store::Op;
    using Rows = detail::shm::MapRows<K, V>;
    using Kind = detail::shm::Kind;

public:
    static constexpr std::size_t default_capacity = std::size_t{1} << 20;

    /// Creates an empty map with room for `capacity_bytes` (at least 4096) of entries.
    /// Throws ValueError (bad name, capacity or mode), else as SharedMemory::create.
    static SharedMap create(std::string_view name, std::size_t capacity_bytes = default_capacity, CreateOptions options = {}) {
        const std::size_t bytes = Store::payload_bytes(capacity_bytes, "SharedMap::create");
        return SharedMap(
            detail::shm::Segment::create(name, Kind::map, type(), bytes, detail::shm::params(options), "SharedMap::create"),
            capacity_bytes);
    }
    /// Throws as SharedMemory::attach; ValueError if `name` is not a SharedMap<K, V> of this mproc's
    /// layout (one made by an older mproc, with Boost.Interprocess containers, is refused, naming the cause).
    static SharedMap attach(std::string_view name, AttachOptions options = {}) {
        return SharedMap(
            detail::shm::Segment::attach(name, Kind::map, type(), detail::shm::params(options), "SharedMap::attach"));
    }
    SharedMap(const SharedMap&) = delete;
    SharedMap& operator=(const SharedMap&) = delete;

    // Every call below blocks on the map's lock (held only for the call), throws OwnerDied if a
    // process died holding it (see the top of this file), and SerializationError if the map's shared
    // memory is corrupted (all but clear(), which repairs it).

    /// Python's d[key] = value. Throws ValueError when full (the map is unchanged).
    void set(const K& key, const V& value) {
        detail::shm::Prepared<K> k(key);
        detail::shm::Prepared<V> v(value);
        store_.locked("set", [&](Op& op) { Rows::set(op, k, v.bytes()); });
    }
    /// Python's d.get(key): the value, or nullopt. Throws SerializationError if the bytes do not decode.
    std::optional<V> get(const K& key) {
        detail::shm::Prepared<K> k(key);
        return store_.locked("get", [&](Op& op) -> std::optional<V> {
            const auto [at, found] = Rows::find(op, k);
            if (!found) return std::nullopt;
            return detail::shm::load<V>(op.field(at, 1));
        });
    }
    /// Python's `key in d`.
    bool contains(const K& key) {
        detail::shm::Prepared<K> k(key);
        return store_.locked("contains", [&](Op& op) { return Rows::find(op, k).second; });
    }
    /// Python's d.pop(key, None) is not None: removes the entry; false if there was none.
    bool erase(const K& key) {
        detail::shm::Prepared<K> k(key);
        return store_.locked("erase", [&](Op& op) {
            const auto [at, found] = Rows::find(op, k);
            if (found) op.erase_row(at);
            return found;
        });
    }
    /// Atomically replaces the value of `key` with fn(old), where old is std::optional<V> (nullopt if
    /// absent), and returns the new value: `hits.update("home", [](auto n) { return n.value_or(0) + 1; })`.
    /// fn runs under the map's lock: keep it short, and do not call this map from it (StateError).
    /// If fn throws, nothing changes. Throws ValueError when full (the old value stays).
    template <class F>
        requires std::convertible_to<std::invoke_result_t<F&, std::optional<V>>, V>
    V update(const K& key, F fn) {
        detail::shm::Prepared<K> k(key);
        return store_.locked("update", [&](Op& op) -> V {
            const auto [at, found] = Rows::find(op, k);
            std::optional<V> old;
            if (found) old = detail::shm::load<V>(op.field(at, 1));
            V now = Store::call_user(fn, std::move(old));
            detail::shm::Prepared<V> v(now);
            Rows::set(op, k, v.bytes());
            return now;
        });
    }

    /// The number of entries now.
    std::size_t size() {
        return store_.locked("size", [](Op& op) { return op.count(); });
    }
    bool empty() { return size() == 0; }
    /// Removes every entry. Reads nothing from the map's memory, so it also repairs a corrupted map.
    void clear() {
        store_.locked("clear", [](Op& op) { op.clear(); }, false);
    }
    /// The keys, in key order (a snapshot).
    std::vector<K> keys() {
        return store_.locked("keys", [](Op& op) {
            std::vector<K> out;
            out.reserve(op.count());
            for (std::size_t i = 0; i < op.count(); ++i) {
                Rows::check_order(op, i);
                out.push_back(detail::shm::load<K>(op.field(i, 0)));
            }
            return out;
        });
    }
    /// The entries, in key order (a snapshot).
    std::vector<std::pair<K, V>> items() {
        return store_.locked("items", [](Op& op) {
            std::vector<std::pair<K, V>> out;
            out.reserve(op.count());
            for (std::size_t i = 0; i < op.count(); ++i) {
                Rows::check_order(op, i);
                out.emplace_back(detail::shm::load<K>(op.field(i, 0)), detail::shm::load<V>(op.field(i, 1)));
            }
            return out;
        });
    }

    /// The capacity given to create().
    std::size_t capacity_bytes() const noexcept { return store_.capacity(); }
    /// Bytes of the capacity not taken by entries (a snapshot; O(n)). A compaction makes all of
    /// them usable.
    std::size_t free_bytes() {
        return store_.locked("free_bytes", [](Op& op) { return op.free_bytes(); });
    }
    const std::string& name() const noexcept { return store_.segment().name(); }
    /// As SharedMemory::unlink.
    bool unlink() { return store_.segment().unlink(); }

private:
    SharedMap(detail::shm::Segment s, std::size_t capacity_bytes)
        : store_(std::move(s), capacity_bytes, "SharedMap", Rows::fields) {}
    explicit SharedMap(detail::shm::Segment s) : store_(std::move(s), "SharedMap", Rows::fields) {}
    static std::string type() { return detail::codec::type_name<K>() + ", " + detail::codec::type_name<V>(); }
    Store store_;
};

/// A vector that unrelated processes share by name: Python's Manager().list() without a server. Its
/// elements live in a named segment of `capacity_bytes` as a table of rows and a heap of bytes, as
/// SharedMap's; every call takes its robust mutex. Elements as SharedMap's values: any serializable
/// type.
///
/// Capacity: an element takes a row of sizeof(T) rounded up to 8 for a type stored as it is (a
/// SharedVector<int> of 1 MiB holds 131072 ints), or of 16 bytes plus its bytes for a string or an
/// encoding. Bytes of overwritten or removed elements are reclaimed by compacting when the next one
/// would not fit. When an element does not fit, the call throws ValueError naming the capacity and
/// leaves the vector as it was.
///
/// Cost: at, set, push_back and pop_back are O(1) (a compaction, O(n log n), when the heap is full
/// of old bytes). Corruption: as SharedMap's (SerializationError; clear() repairs).
template <Serializable T>
class SharedVector {
    using Store = detail::shm::RowStore;
    using Op = Store::Op;
    using Rows = detail::shm::VectorRows<T>;

public:
    static constexpr std::size_t default_capacity = std::size_t{1} << 20;

    /// Creates an empty vector. Throws as SharedMap::create.
    static SharedVector create(std::string_view name, std::size_t capacity_bytes = default_capacity, CreateOptions options = {}) {
        const std::size_t bytes = Store::payload_bytes(capacity_bytes, "SharedVector::create");
        return SharedVector(detail::shm::Segment::create(name, detail::shm::Kind::vector, detail::codec::type_name<T>(), bytes,
                                                         detail::shm::params(options), "SharedVector::create"),
                            capacity_bytes);
    }
    /// Throws as SharedMemory::attach; ValueError if `name` is not a SharedVector<T> of this mproc's
    /// layout.
    static SharedVector attach(std::string_view name, AttachOptions options = {}) {
        return SharedVector(detail::shm::Segment::attach(name, detail::shm::Kind::vector, detail::codec::type_name<T>(),
                                                         detail::shm::params(options), "SharedVector::attach"));
    }
    SharedVector(const SharedVector&) = delete;
    SharedVector& operator=(const SharedVector&) = delete;

    // Every call blocks on the vector's lock, held only for the call, and throws OwnerDied and
    // SerializationError as SharedMap's calls do.

    /// Python's append. Throws ValueError when full (the vector is unchanged).
    void push_back(const T& value) {
        detail::shm::Prepared<T> v(value);
        store_.locked("push_back", [&](Op& op) {
            const std::array<std::string_view, 1> values{v.bytes()};
            op.insert_row(op.count(), values);
        });
    }
    /// Removes and returns the last element; nullopt if empty.
    std::optional<T> pop_back() {
        return store_.locked("pop_back", [](Op& op) -> std::optional<T> {
            if (op.count() == 0) return std::nullopt;
            T out = detail::shm::load<T>(op.field(op.count() - 1, 0));
            op.erase_row(op.count() - 1);
            return out;
        });
    }
    /// The element at `i`. Throws ValueError when i >= size().
    T at(std::size_t i) {
        return store_.locked("at", [&](Op& op) { return detail::shm::load<T>(op.field(check(i, op), 0)); });
    }
    /// Replaces the element at `i`. Throws ValueError when i >= size(), or when full (unchanged).
    void set(std::size_t i, const T& value) {
        detail::shm::Prepared<T> v(value);
        store_.locked("set", [&](Op& op) { op.set_field(check(i, op), 0, v.bytes()); });
    }
    /// Atomically replaces the element at `i` with fn(old) and returns it; fn runs under the lock
    /// (see SharedMap::update). Throws ValueError when i >= size() or when full.
    template <class F>
        requires std::convertible_to<std::invoke_result_t<F&, T>, T>
    T update(std::size_t i, F fn) {
        return store_.locked("update", [&](Op& op) -> T {
            const std::size_t at = check(i, op);
            T now = Store::call_user(fn, detail::shm::load<T>(op.field(at, 0)));
            op.set_field(at, 0, detail::shm::Prepared<T>(now).bytes());
            return now;
        });
    }
    /// Keeps room for `n` elements' rows in all, so that growing to n elements never runs out of
    /// rows (strings and encodings still need room for their bytes). Throws ValueError when that
    /// does not fit.
    void reserve(std::size_t n) {
        store_.locked("reserve", [&](Op& op) { op.reserve_rows(n); });
    }
    std::size_t size() {
        return store_.locked("size", [](Op& op) { return op.count(); });
    }
    bool empty() { return size() == 0; }
    /// Removes every element (a reservation stays). Reads nothing from the vector's memory, so it
    /// also repairs a corrupted vector.
    void clear() {
        store_.locked("clear", [](Op& op) { op.clear(); }, false);
    }
    /// A copy of every element, in order (a snapshot).
    std::vector<T> to_vector() {
        return store_.locked("to_vector", [](Op& op) {
            std::vector<T> out;
            out.reserve(op.count());
            for (std::size_t i = 0; i < op.count(); ++i) out.push_back(detail::shm::load<T>(op.field(i, 0)));
            return out;
        });
    }

    std::size_t capacity_bytes() const noexcept { return store_.capacity(); }
    /// As SharedMap::free_bytes.
    std::size_t free_bytes() {
        return store_.locked("free_bytes", [](Op& op) { return op.free_bytes(); });
    }
    const std::string& name() const noexcept { return store_.segment().name(); }
    bool unlink() { return store_.segment().unlink(); }

private:
    SharedVector(detail::shm::Segment s, std::size_t capacity_bytes)
        : store_(std::move(s), capacity_bytes, "SharedVector", Rows::fields) {}
    explicit SharedVector(detail::shm::Segment s) : store_(std::move(s), "SharedVector", Rows::fields) {}
    std::size_t check(std::size_t i, const Op& op) const {
        if (i >= op.count())
            throw ValueError("SharedVector " + detail::shm::quote_name(name()) + ": " + op.op() + ": index " +
                             std::to_string(i) + " is out of range (size " + std::to_string(op.count()) + ")");
        return i;
    }
    Store store_;
};

/// One mproc name in /dev/shm, as list_shared_memory() sees it. Its fields (the struct it derives
/// from, in detail/shm_segment.hpp, documents each): name, path, holds, size, mode, owner,
/// creator_pid, creator_alive, kept, ready, state ("live", "kept", "stale", "building",
/// "incomplete", "foreign", "unreadable") and stale (what remove_stale_shared_memory() removes).
struct SharedMemoryInfo : detail::shm::SegmentInfo {};

/// The mproc names in /dev/shm whose name (after the "mproc." prefix) starts with `name_prefix`,
/// with what each holds and whether it is stale (see SharedMemoryInfo). Reads headers only; never
/// waits or changes anything. Throws OSError if /dev/shm cannot be read.
inline std::vector<SharedMemoryInfo> list_shared_memory(std::string_view name_prefix = "") {
    std::vector<SharedMemoryInfo> out;
    for (detail::shm::SegmentInfo& i : detail::shm::list(name_prefix))
        out.push_back(SharedMemoryInfo{std::move(i)});
    return out;
}

/// Removes the stale names (creator gone; see SharedMemoryInfo::stale) whose name starts with
/// `name_prefix`, and returns them. Processes still attached keep their memory. A name judged stale
/// is removed at once; a name removed and created anew in between by another process would be
/// removed too, a window of microseconds. Throws OSError if the system refuses.
inline std::vector<std::string> remove_stale_shared_memory(std::string_view name_prefix = "") {
    std::vector<std::string> removed;
    for (const detail::shm::SegmentInfo& info : detail::shm::list(name_prefix))
        if (info.stale && detail::posix::shm_remove(detail::shm::system_path(info.name))) removed.push_back(info.name);
    return removed;
}

/// Removes the name `name` (without the prefix) whatever holds it and whoever created it: for names
/// kept on purpose, or an object that cannot be attached. Returns false if there was no such name.
/// Throws ValueError for an empty name or one containing '/', OSError if the system refuses.
inline bool unlink_shared_memory(std::string_view name) {
    if (name.empty() || name.find('/') != std::string_view::npos)
        throw ValueError("unlink_shared_memory: bad name " + detail::shm::quote_name(name) + ": it is empty or contains '/'");
    return detail::posix::shm_remove(detail::shm::system_path(name));
}

} // namespace mproc
