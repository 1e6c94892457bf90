// How SharedMap and SharedVector keep keys and values in a named segment: Boost.Interprocess managed
// memory (the segment manager, allocators and containers of managed_shared_memory) over a buffer in
// the segment's payload, and one storage rule per type:
//   - trivially copyable serializable types are stored as they are (an int is 4 bytes in place);
//   - std::string is stored as its bytes, in a shared-memory string;
//   - any other serializable type is stored as its codec encoding, in a shared-memory string.
// Map keys are ordered: by operator< for the types stored as they are (which must have one), byte
// by byte for strings (which is std::string's own order) and for encodings (a fixed, unspecified
// order; two keys are the same key when their encodings are equal).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <pthread.h>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/container/map.hpp>
#include <boost/container/string.hpp>
#include <boost/container/throw_exception.hpp>
#include <boost/container/vector.hpp>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/offset_ptr.hpp>

#include "../errors.hpp"
#include "codec/bytes.hpp"
#include "shared_mutex.hpp"
#include "shm_segment.hpp"

namespace mproc::detail::shm {

namespace bip = boost::interprocess;

/// The allocator works without a mutex of its own: every container operation runs under the
/// container's robust Lock, so a dead process never leaves a Boost mutex locked forever.
using Buffer = bip::managed_external_buffer;
using SegmentManager = Buffer::segment_manager;
template <class T>
using Alloc = bip::allocator<T, SegmentManager>;
using Blob = boost::container::basic_string<char, std::char_traits<char>, Alloc<char>>;

template <class T>
inline constexpr bool stored_in_place = std::is_trivially_copyable_v<T> && !std::is_same_v<T, std::string>;

/// What a T becomes in the segment.
template <class T>
using Stored = std::conditional_t<stored_in_place<T>, T, Blob>;

/// The bytes a T is stored as, outside the segment (for lookups and before copying in).
template <class T>
class Bytes {
public:
    Bytes(const Bytes&) = delete; // view_ may point into encoded_
    Bytes& operator=(const Bytes&) = delete;
    explicit Bytes(const T& v) {
        if constexpr (std::is_same_v<T, std::string>) {
            view_ = v;
        } else {
            encoded_ = codec::encode(v);
            view_ = std::string_view(reinterpret_cast<const char*>(encoded_.data()), encoded_.size());
        }
    }
    std::string_view view() const noexcept { return view_; }

private:
    std::vector<std::byte> encoded_;
    std::string_view view_;
};

/// A slot for `v`, made with the segment's allocator. Throws boost::interprocess::bad_alloc when full.
template <class T>
Stored<T> make_stored(const T& v, const Bytes<T>* bytes, SegmentManager* sm) {
    if constexpr (stored_in_place<T>) {
        return v;
    } else {
        return Blob(bytes->view().data(), bytes->view().size(), Alloc<char>(sm));
    }
}

/// Overwrites a slot; on bad_alloc the old value stays.
template <class T>
void assign_stored(Stored<T>& slot, const T& v, const Bytes<T>* bytes) {
    if constexpr (stored_in_place<T>) {
        slot = v;
    } else {
        slot.assign(bytes->view().data(), bytes->view().data() + bytes->view().size());
    }
}

template <class T>
T load_stored(const Stored<T>& slot) {
    if constexpr (stored_in_place<T>) {
        return slot;
    } else if constexpr (std::is_same_v<T, std::string>) {
        return std::string(slot.data(), slot.size());
    } else {
        return codec::decode<T>(std::span<const std::byte>(reinterpret_cast<const std::byte*>(slot.data()), slot.size()));
    }
}

/// Orders blobs byte by byte, and finds them by a std::string_view without copying it in.
struct BlobLess {
    using is_transparent = void;
    static std::string_view view(const Blob& b) noexcept { return {b.data(), b.size()}; }
    static std::string_view view(std::string_view s) noexcept { return s; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
        return view(a) < view(b);
    }
};

template <class K>
concept MapKey = codec::is_serializable<K> && (!stored_in_place<K> || std::totally_ordered<K>);

template <class K>
using KeyLess = std::conditional_t<stored_in_place<K>, std::less<K>, BlobLess>;

template <class K, class V>
using Map = boost::container::map<Stored<K>, Stored<V>, KeyLess<K>, Alloc<std::pair<const Stored<K>, Stored<V>>>>;

template <class T>
using Vector = boost::container::vector<Stored<T>, Alloc<Stored<T>>>;

/// A value ready to be copied into the segment: for the types not stored in place, its bytes are
/// made before the container's lock is taken, so that encoding never runs under it.
template <class T>
class Prepared {
public:
    explicit Prepared(const T& v) : value_(v), bytes_(v) {}
    Stored<T> make(SegmentManager* sm) const { return make_stored<T>(value_, bytes(), sm); }
    void assign_to(Stored<T>& slot) const { assign_stored<T>(slot, value_, bytes()); }
    /// What a map's find() takes: the key itself, or its bytes.
    decltype(auto) probe() const noexcept {
        if constexpr (stored_in_place<T>) {
            return (value_);
        } else {
            return bytes_.view();
        }
    }

private:
    struct Nothing {
        explicit Nothing(const T&) noexcept {}
    };
    const Bytes<T>* bytes() const noexcept {
        if constexpr (stored_in_place<T>) {
            return nullptr;
        } else {
            return &bytes_;
        }
    }
    const T& value_;
    std::conditional_t<stored_in_place<T>, Nothing, Bytes<T>> bytes_;
};

/// One container C (a Map or a Vector) in a named segment, with its robust lock:
///
///   [Control: the lock, where C is, the buffer's size][Boost managed buffer holding C and its data]
///
/// Every access runs under the lock, through locked(), which turns the allocator's bad_alloc into
/// ValueError naming the capacity.
template <class C>
class ContainerStore {
public:
    static constexpr std::size_t min_capacity = 4096;

    struct alignas(64) Control {
        pthread_mutex_t mutex; // a SharedMutex's state (RobustMutexState) is built here
        bip::offset_ptr<C> container;
        std::uint64_t capacity = 0;
    };
    static constexpr std::size_t control_bytes = (sizeof(Control) + 63) / 64 * 64;

    /// The segment's payload size for a container of `capacity_bytes`. Throws ValueError.
    static std::size_t payload_bytes(std::size_t capacity_bytes, const std::string& op) {
        if (capacity_bytes < min_capacity || capacity_bytes > max_payload_bytes)
            throw ValueError(op + ": capacity_bytes must be in [4096, 2^40], got " + std::to_string(capacity_bytes));
        return control_bytes + capacity_bytes;
    }

    /// Builds the container in a segment just created.
    ContainerStore(Segment s, std::size_t capacity_bytes, const char* kind)
        : segment_(std::move(s)),
          control_(new (segment_.payload()) Control{}),
          lock_(Placement::at(&control_->mutex, true), false, kind),
          buffer_(bip::create_only, segment_.payload() + control_bytes, capacity_bytes),
          kind_(kind) {
        control_->capacity = capacity_bytes;
        control_->container = buffer_.construct<C>(bip::anonymous_instance)(Alloc<char>(buffer_.get_segment_manager()));
        segment_.publish();
    }

    /// Uses the container in a segment attached to. Throws ValueError if the segment is inconsistent.
    ContainerStore(Segment s, const char* kind)
        : segment_(std::move(s)),
          control_(reinterpret_cast<Control*>(segment_.payload())),
          lock_(Placement::at(&control_->mutex, false), false, kind),
          buffer_(bip::open_only, segment_.payload() + control_bytes, checked_capacity(segment_, control_)),
          kind_(kind) {}

    /// Runs f(container, segment manager) under the lock. Throws OwnerDied (the lock is released:
    /// retry; the container may be damaged), StateError if this thread is already inside an
    /// operation on it (from a callback), ValueError when the capacity is exhausted.
    template <class F>
    decltype(auto) locked(const char* op, F&& f) {
        std::lock_guard guard(lock_);
        try {
            return f(*control_->container, buffer_.get_segment_manager());
        } catch (const UserFailure& u) {
            std::rethrow_exception(u.error);
        } catch (const bip::bad_alloc&) {
            throw full(op);
        } catch (const boost::container::bad_alloc_t&) {
            throw full(op);
        } catch (const boost::container::length_error_t&) { // a request past the allocator's max_size()
            throw full(op);
        }
    }

    /// Calls user code (update's callback) inside locked(): its exceptions pass through as they are,
    /// not taken for the container's.
    template <class F, class... A>
    static decltype(auto) call_user(F& f, A&&... args) {
        try {
            return f(std::forward<A>(args)...);
        } catch (...) {
            throw UserFailure{std::current_exception()};
        }
    }

    std::size_t capacity() const noexcept { return static_cast<std::size_t>(control_->capacity); }
    std::size_t free_bytes() {
        std::lock_guard guard(lock_);
        return buffer_.get_free_memory();
    }
    Segment& segment() noexcept { return segment_; }
    const Segment& segment() const noexcept { return segment_; }

private:
    struct UserFailure {
        std::exception_ptr error;
    };
    ValueError full(const char* op) {
        return ValueError(std::string(kind_) + " " + quote_name(segment_.name()) + ": " + op + ": full: its capacity of " +
                          std::to_string(control_->capacity) + " bytes has " + std::to_string(buffer_.get_free_memory()) +
                          " bytes free, too few for this; create it with a larger capacity_bytes");
    }
    static std::size_t checked_capacity(const Segment& s, const Control* c) {
        if (c->capacity < min_capacity || control_bytes + c->capacity != s.payload_size() || !c->container)
            throw ValueError(std::string("attach: ") + quote_name(s.name()) + " is damaged: its control block does not match its size");
        return static_cast<std::size_t>(c->capacity);
    }

    Segment segment_;
    Control* control_;
    SharedMutex lock_;
    Buffer buffer_;
    const char* kind_;
};

} // namespace mproc::detail::shm
