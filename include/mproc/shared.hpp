// mproc/shared.hpp — SharedValue<T> and SharedArray<T>: plain data in shared memory (Python's Value
// and Array). Construct before forking the processes that use them; reach them by reference.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <atomic>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>

#include "detail/algorithm.hpp"
#include "detail/arena.hpp"
#include "detail/shared_storage.hpp"
#include "errors.hpp"
#include "sync.hpp"

namespace mproc {

/// One T in shared memory, with a Lock of its own. T must be trivially copyable.
///
/// value() is raw access: concurrent read-modify-writes race, as with Python's Value without its
/// lock. Guard them with get_lock(), or use the atomic load/store/fetch_add/fetch_sub.
template <class T>
class SharedValue {
    static_assert(std::is_trivially_copyable_v<T>,
                  "mproc::SharedValue<T>: T must be trivially copyable (it is shared byte for byte); "
                  "use a Queue or Pipe for other types");

public:
    SharedValue() : SharedValue(T{}) {}
    explicit SharedValue(const T& initial) : storage_(1, "SharedValue") {
        std::construct_at(storage_.get(), initial);
    }
    SharedValue(const SharedValue&) = delete;
    SharedValue& operator=(const SharedValue&) = delete;

    /// Raw, unsynchronised access.
    T& value() noexcept { return *storage_.get(); }
    const T& value() const noexcept { return *storage_.get(); }

    /// The lock that guards this value by convention (Python's get_lock()).
    Lock& get_lock() noexcept { return lock_; }

    /// An atomic read: lock-free where the hardware allows it for T, else under get_lock().
    T load() const {
        if constexpr (lock_free) {
            return std::atomic_ref<T>(*storage_.get()).load();
        } else {
            std::lock_guard g(lock_);
            return *storage_.get();
        }
    }
    /// An atomic write, as load().
    void store(const T& v) {
        if constexpr (lock_free) {
            std::atomic_ref<T>(*storage_.get()).store(v);
        } else {
            std::lock_guard g(lock_);
            *storage_.get() = v;
        }
    }
    /// Atomically adds `d` and returns the previous value. Lock-free; integral T only.
    T fetch_add(T d) noexcept
        requires std::integral<T>
    {
        return std::atomic_ref<T>(*storage_.get()).fetch_add(d);
    }
    /// Atomically subtracts `d` and returns the previous value. Lock-free; integral T only.
    T fetch_sub(T d) noexcept
        requires std::integral<T>
    {
        return std::atomic_ref<T>(*storage_.get()).fetch_sub(d);
    }

private:
    static constexpr bool lock_free = std::atomic_ref<T>::is_always_lock_free;
    detail::SharedStorage<T> storage_;
    mutable Lock lock_;
};

/// A fixed-size array of T in shared memory, with a Lock of its own. T must be trivially copyable.
/// Element access is raw (unsynchronised), as in Python's Array; guard with get_lock().
template <class T>
class SharedArray {
    static_assert(std::is_trivially_copyable_v<T>,
                  "mproc::SharedArray<T>: T must be trivially copyable (it is shared byte for byte); "
                  "use a Queue or Pipe for other types");

public:
    using value_type = T;
    using iterator = T*;
    using const_iterator = const T*;

    /// `n` copies of `initial`. Throws ValueError if n elements cannot fit in memory.
    explicit SharedArray(std::size_t n, const T& initial = T{}) : storage_(n, "SharedArray") {
        std::uninitialized_fill_n(storage_.get(), n, initial);
    }
    SharedArray(std::initializer_list<T> items) : storage_(items.size(), "SharedArray") {
        std::uninitialized_copy(items.begin(), items.end(), storage_.get());
    }
    SharedArray(const SharedArray&) = delete;
    SharedArray& operator=(const SharedArray&) = delete;

    std::size_t size() const noexcept { return storage_.size(); }
    bool empty() const noexcept { return size() == 0; }
    T& operator[](std::size_t i) noexcept { return storage_.get()[i]; }
    const T& operator[](std::size_t i) const noexcept { return storage_.get()[i]; }
    /// Bounds-checked access; throws ValueError naming the index and the size.
    T& at(std::size_t i) {
        if (i >= size())
            throw ValueError("SharedArray::at: index " + std::to_string(i) + " is out of range for size " +
                             std::to_string(size()));
        return storage_.get()[i];
    }
    T* data() noexcept { return storage_.get(); }
    const T* data() const noexcept { return storage_.get(); }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size(); }
    const T* begin() const noexcept { return data(); }
    const T* end() const noexcept { return data() + size(); }
    std::span<T> span() noexcept { return {data(), size()}; }
    std::span<const T> span() const noexcept { return {data(), size()}; }

    Lock& get_lock() noexcept { return lock_; }

private:
    detail::SharedStorage<T> storage_;
    Lock lock_;
};

} // namespace mproc
