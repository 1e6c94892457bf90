// The memory under SharedValue and SharedArray (shared.hpp): n objects of T in the shared arena.
#pragma once

#include <atomic>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>

#include "algorithm.hpp"
#include "../errors.hpp"
#include "arena.hpp"

namespace mproc::detail {

/// `n` objects of T in the arena, aligned for std::atomic_ref; freed with the owner.
template <class T>
class SharedStorage {
public:
    SharedStorage(std::size_t n, const char* owner) : n_(n) {
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
            throw ValueError(std::string(owner) + ": " + std::to_string(n) + " elements of " + std::to_string(sizeof(T)) +
                             " bytes do not fit in memory");
        p_ = static_cast<T*>(Arena::instance().allocate(std::max<std::size_t>(n, 1) * sizeof(T), alignment));
    }
    ~SharedStorage() {
        std::destroy_n(p_, n_);
        Arena::instance().deallocate(p_);
    }
    SharedStorage(const SharedStorage&) = delete;
    SharedStorage& operator=(const SharedStorage&) = delete;
    T* get() const noexcept { return p_; }
    std::size_t size() const noexcept { return n_; }

private:
    static constexpr std::size_t alignment = std::max({alignof(T), std::atomic_ref<T>::required_alignment, cache_line});
    T* p_;
    std::size_t n_;
};

} // namespace mproc::detail
