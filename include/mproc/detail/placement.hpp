// Where a shared object's state lives, decided once for every mproc type: in the calling process's
// arena (the default: built there, destroyed and freed with the object), or at an address in memory
// that someone else keeps mapped, a named segment (built there by its creator, used as found by
// whoever attaches; never destroyed or freed by the object, as other processes may still use it).
//
// As in Boost.Interprocess's named types (a segment plus a placeable state struct), a named mproc
// type is its segment plus the plain type built over Placement::at(segment payload, creating).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "algorithm.hpp"
#include "../errors.hpp"
#include "arena.hpp"

namespace mproc::detail {

class Placement {
public:
    /// In the calling process's arena.
    static Placement arena() noexcept { return Placement(nullptr, true); }
    /// At `where`, which its owner keeps mapped and aligned for the state: the state is built there
    /// when `build`, otherwise the one that another process built there is used.
    static Placement at(void* where, bool build) noexcept { return Placement(where, build); }

    /// Whether the state is to be constructed (arena, or a creator's segment) rather than found.
    bool builds() const noexcept { return build_; }
    /// Whether the object over the state destroys and frees it (arena only).
    bool owns() const noexcept { return where_ == nullptr; }

    /// `bytes` for the state, aligned to `align`: fresh arena memory, or the placed address. Throws
    /// OSError when the arena cannot grow; ValueError for a misaligned address.
    void* obtain(std::size_t bytes, std::size_t align) const {
        if (owns()) return Arena::instance().allocate(bytes, align);
        if (reinterpret_cast<std::uintptr_t>(where_) % align != 0)
            throw ValueError("mproc: a shared state placed at an address not aligned to " + std::to_string(align) + " bytes");
        return where_;
    }
    /// Undoes obtain() (a failed construction, or the owning object's end).
    void release(void* p) const noexcept {
        if (owns()) Arena::instance().deallocate(p);
    }

private:
    Placement(void* where, bool build) noexcept : where_(where), build_(build) {}
    void* where_;
    bool build_;
};

/// The bytes a state of T followed by a buffer of its own takes (MessageRing: header and data).
struct Footprint {
    std::size_t bytes;
};

/// A T in shared memory, placed as `Placement` says: the one handle every mproc type keeps its shared
/// state through. Not copyable or movable (processes reach the state at a fixed address).
template <class T>
class SharedBlock {
public:
    /// Built in the arena.
    SharedBlock() : SharedBlock(Placement::arena()) {}
    template <class A, class... Args>
        requires(!std::is_same_v<std::remove_cvref_t<A>, Placement> && !std::is_same_v<std::remove_cvref_t<A>, SharedBlock>)
    explicit SharedBlock(A&& a, Args&&... args) : SharedBlock(Placement::arena(), std::forward<A>(a), std::forward<Args>(args)...) {}
    /// Built (from `args`) or found where `p` says. Throws what T's constructor throws, or as obtain().
    template <class... Args>
    explicit SharedBlock(Placement p, Args&&... args) : SharedBlock(p, Footprint{sizeof(T)}, std::forward<Args>(args)...) {}
    /// As above, with `f.bytes` (at least sizeof(T)) reserved for T and what follows it.
    template <class... Args>
    SharedBlock(Placement p, Footprint f, Args&&... args) : owned_(p.owns()) {
        // Arena states start on a cache line of their own: two Locks used by different processes
        // must not share a line (false sharing made that case 5x slower).
        const std::size_t bytes = owned_ ? (std::max(f.bytes, sizeof(T)) + cache_line - 1) / cache_line * cache_line : f.bytes;
        void* m = p.obtain(bytes, owned_ ? std::max(alignof(T), cache_line) : alignof(T));
        if (!p.builds()) {
            p_ = static_cast<T*>(m);
            return;
        }
        try {
            p_ = new (m) T(std::forward<Args>(args)...);
        } catch (...) {
            p.release(m);
            throw;
        }
    }
    ~SharedBlock() {
        if (!owned_) return;
        p_->~T();
        Arena::instance().deallocate(p_);
    }
    SharedBlock(const SharedBlock&) = delete;
    SharedBlock& operator=(const SharedBlock&) = delete;
    T* operator->() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    T* get() const noexcept { return p_; }

private:
    T* p_;
    bool owned_;
};

} // namespace mproc::detail
