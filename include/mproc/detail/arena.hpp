// The one arena: every mproc shared object (lock word, shared value, result slot...) is carved out of
// anonymous MAP_SHARED chunks, so it stays shared with every process forked after its construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <pthread.h>
#include <string>
#include <utility>

#include "algorithm.hpp"
#include "../errors.hpp"
#include "posix/memory.hpp"
#include "posix/mutex.hpp"

namespace mproc::detail {

/// The allocator inside one chunk of shared memory; all of its state lives in the chunk, so every
/// process that maps the chunk allocates and frees through it. Small blocks (64 B to 32 KiB, in ten
/// power-of-two classes) are carved from the chunk's end downwards and kept on one free list per
/// class; large blocks (page-rounded) are carved from the start upwards and kept on one
/// address-ordered free list, first fit, split and merged with their free neighbours. Every block
/// starts on a cache line with its 16-byte head {size, next free}; the 8 bytes before the payload
/// say how far the payload is from the block's start. Offsets, not pointers, link the lists (the
/// chunk may sit at a different address in an unrelated process), and each one read back from the
/// shared memory is checked before use: a corrupt one throws SerializationError rather than crash.
/// Not thread-safe by itself: the caller holds the chunk's mutex (ChunkHeap::mutex()).
class ChunkHeap {
public:
    static constexpr std::size_t page = 4096;
    static constexpr std::size_t header_bytes = page; // the chunk's mutex and lists; large blocks then start page-aligned
    static constexpr std::size_t min_class = 64;
    static constexpr std::size_t max_class = std::size_t{32} << 10;
    static constexpr std::size_t class_count = 10; // 64 B .. 32 KiB
    static constexpr std::size_t head_bytes = 16;
    static constexpr std::size_t release_threshold = std::size_t{64} << 10; // blocks from 64 KiB give their pages back

    /// Sets up an empty heap over `size` bytes at `base` (page-aligned, size a multiple of pages).
    static ChunkHeap* create(void* base, std::size_t size) {
        static_assert(sizeof(State) <= header_bytes);
        auto* s = new (base) State{};
        posix::robust_mutex_init(&s->mutex, false);
        s->magic = chunk_magic;
        s->size = size;
        s->large_end = header_bytes;
        s->small_begin = size;
        return reinterpret_cast<ChunkHeap*>(base);
    }

    pthread_mutex_t* mutex() noexcept { return &state()->mutex; }
    std::size_t size() const noexcept { return state()->size; }
    bool contains(const void* p) const noexcept {
        auto* b = reinterpret_cast<const char*>(this);
        return p >= b && p < b + state()->size;
    }

    /// `bytes` aligned to `align` (a power of two), or nullptr when this chunk has no room left.
    /// Throws SerializationError when the chunk's lists are corrupt.
    void* allocate(std::size_t bytes, std::size_t align) {
        align = std::max(align, head_bytes);
        if (bytes > state()->size || align > state()->size) return nullptr;
        // Blocks start on a cache line: up to that alignment the payload follows the head; beyond
        // it, the payload is at most `align` bytes into its block.
        const std::size_t need = align + bytes;
        const std::size_t block = need <= max_class ? allocate_small(class_of(need)) : allocate_large(round_up(need, page));
        if (!block) return nullptr;
        const std::size_t lead = align <= min_class ? align : round_up(block + head_bytes, align) - block;
        char* payload = base() + block + lead;
        const std::uint64_t tag = (std::uint64_t{payload_magic} << 32) | lead;
        std::memcpy(payload - sizeof tag, &tag, sizeof tag);
        return payload;
    }

    /// Frees a block from allocate(). A pointer whose tags are not mproc's (a double free, or a
    /// corrupt chunk) is left alone rather than risk the lists.
    void deallocate(void* p) noexcept {
        const std::size_t block = block_of(p);
        if (!block) return;
        const std::uint64_t size = head(block).size;
        // Tag the payload as freed, so that a second free of it is recognised and ignored.
        std::memset(static_cast<char*>(p) - sizeof(std::uint64_t), 0, sizeof(std::uint64_t));
        if (block >= state()->small_begin) return push_small(block, class_of(static_cast<std::size_t>(size)));
        // A large block's pages go back to the system before the block goes back to the free list
        // (while nobody else can have it): otherwise a destroyed queue's ring stays resident for
        // good (60 queues of growing size kept +95 MB). The block's head page stays.
        if (size >= release_threshold) posix::release_pages(base() + block + head_bytes, size - head_bytes);
        free_large(block, static_cast<std::size_t>(size));
    }

    /// The block size behind a payload from allocate() (for tests), 0 when `p` is not one.
    std::size_t block_size(const void* p) const noexcept {
        const std::size_t block = block_of(p);
        return block ? static_cast<std::size_t>(head(block).size) : 0;
    }

    /// Test hook: the offset that heads small class `cls`'s free list, so a test can corrupt it.
    std::uint64_t& small_head_for_testing(std::size_t cls) noexcept { return state()->small_free[cls]; }

private:
    static constexpr std::uint32_t chunk_magic = 0x6d70'6368;   // "mpch"
    static constexpr std::uint32_t payload_magic = 0x6d70'626b; // "mpbk"

    struct State {
        pthread_mutex_t mutex;
        std::uint32_t magic;
        std::uint64_t size;
        std::uint64_t large_end;   // large blocks lie in [header_bytes, large_end)
        std::uint64_t small_begin; // small blocks lie in [small_begin, size)
        std::uint64_t large_free;  // first free large block, address order; 0: none
        std::uint64_t small_free[class_count];
    };
    struct Head {
        std::uint64_t size; // the whole block, head included
        std::uint64_t next; // while free: the next free block of its list; 0 ends it
    };

    static std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }
    static std::size_t class_size(std::size_t cls) noexcept { return min_class << cls; }
    static std::size_t class_of(std::size_t bytes) noexcept {
        std::size_t cls = 0;
        while (class_size(cls) < bytes) ++cls;
        return cls;
    }

    State* state() const noexcept { return reinterpret_cast<State*>(const_cast<ChunkHeap*>(this)); }
    char* base() const noexcept { return reinterpret_cast<char*>(const_cast<ChunkHeap*>(this)); }
    Head& head(std::size_t block) const noexcept { return *reinterpret_cast<Head*>(base() + block); }

    [[noreturn]] void corrupt(const char* what, std::uint64_t value) const {
        throw SerializationError("mproc arena: corrupt " + std::string(what) + " (" + std::to_string(value) +
                                 ") in the shared chunk of " + std::to_string(state()->size) + " bytes");
    }

    // A block offset taken from shared memory, checked against the region its kind lives in.
    std::size_t checked_small(std::uint64_t off, std::size_t cls) const {
        const State* s = state();
        const std::size_t bytes = class_size(cls);
        if (off < s->small_begin || off > s->size || s->size - off < bytes || off % min_class != 0 ||
            head(static_cast<std::size_t>(off)).size != bytes)
            corrupt("small free-list offset", off);
        return static_cast<std::size_t>(off);
    }
    std::size_t checked_large(std::uint64_t off) const {
        const State* s = state();
        if (off < header_bytes || off >= s->large_end || off % page != 0) corrupt("large free-list offset", off);
        const std::uint64_t size = head(static_cast<std::size_t>(off)).size;
        if (size == 0 || size % page != 0 || size > s->large_end - off) corrupt("large block size", size);
        return static_cast<std::size_t>(off);
    }

    std::size_t allocate_small(std::size_t cls) {
        State* s = state();
        if (std::uint64_t first = s->small_free[cls]) {
            const std::size_t block = checked_small(first, cls);
            s->small_free[cls] = head(block).next;
            return block;
        }
        const std::size_t bytes = class_size(cls);
        if (s->small_begin - s->large_end < bytes) return 0;
        s->small_begin -= bytes;
        const auto block = static_cast<std::size_t>(s->small_begin);
        head(block) = Head{bytes, 0};
        return block;
    }
    void push_small(std::size_t block, std::size_t cls) noexcept {
        head(block).next = state()->small_free[cls];
        state()->small_free[cls] = block;
    }

    std::size_t allocate_large(std::size_t bytes) {
        State* s = state();
        std::uint64_t* link = &s->large_free;
        std::uint64_t last = 0;
        while (*link) {
            if (*link <= last) corrupt("large free-list order", *link); // a cycle, never ending otherwise
            last = *link;
            const std::size_t block = checked_large(*link);
            Head& h = head(block);
            if (h.size >= bytes) {
                if (h.size - bytes >= page) { // split: the rest stays free, in the same place in the list
                    const std::size_t rest = block + bytes;
                    head(rest) = Head{h.size - bytes, h.next};
                    *link = rest;
                } else {
                    bytes = static_cast<std::size_t>(h.size);
                    *link = h.next;
                }
                h = Head{bytes, 0};
                return block;
            }
            link = &h.next;
        }
        if (s->small_begin - s->large_end < bytes) return 0;
        const auto block = static_cast<std::size_t>(s->large_end);
        s->large_end += bytes;
        head(block) = Head{bytes, 0};
        return block;
    }
    void free_large(std::size_t block, std::size_t bytes) noexcept {
        State* s = state();
        // Find the free neighbours: the last free block before this one, and the first after it.
        std::uint64_t prev = 0;
        std::uint64_t next = s->large_free;
        while (next && next < block) {
            prev = next;
            next = head(static_cast<std::size_t>(next)).next;
            // A corrupt list (out of range, or not ascending) loses this block rather than the heap.
            if (next && (next <= prev || next >= s->large_end || next % page != 0)) return;
        }
        if (next == block) return; // already free
        Head& h = head(block);
        h = Head{bytes, next};
        if (next && block + bytes == next) { // merge with the block after
            h.size += head(static_cast<std::size_t>(next)).size;
            h.next = head(static_cast<std::size_t>(next)).next;
        }
        if (prev && prev + head(static_cast<std::size_t>(prev)).size == block) { // merge into the block before
            Head& p = head(static_cast<std::size_t>(prev));
            p.size += h.size;
            p.next = h.next;
        } else if (prev) {
            head(static_cast<std::size_t>(prev)).next = block;
        } else {
            s->large_free = block;
        }
    }

    // The block behind payload `p`, 0 when its tags do not check out.
    std::size_t block_of(const void* p) const noexcept {
        const State* s = state();
        const auto* c = static_cast<const char*>(p);
        if (!p || c < base() + header_bytes + head_bytes || c > base() + s->size) return 0;
        std::uint64_t tag;
        std::memcpy(&tag, c - sizeof tag, sizeof tag);
        const std::uint64_t lead = tag & 0xffff'ffffU;
        if ((tag >> 32) != payload_magic || lead < head_bytes ||
            lead > static_cast<std::size_t>(c - base()) - header_bytes)
            return 0;
        const auto block = static_cast<std::size_t>(c - base()) - static_cast<std::size_t>(lead);
        if (block % min_class != 0) return 0;
        const std::uint64_t size = head(block).size;
        if (block >= s->small_begin) {
            if (size < min_class || size > max_class || (size & (size - 1)) != 0 || size > s->size - block) return 0;
        } else if (block + size > s->large_end || size % page != 0 || size == 0 || block % page != 0) {
            return 0;
        }
        return block;
    }
};

class Arena {
public:
    /// The calling process's arena.
    static Arena& instance() {
        static Arena arena;
        return arena;
    }

    /// Returns `bytes` of shared memory aligned to `align` (not zeroed: construct into it). Throws OSError when the
    /// system refuses more memory. Thread-safe; safe in forked children.
    void* allocate(std::size_t bytes, std::size_t align) {
        std::lock_guard guard(local_);
        for (Chunk* c = chunks_; c; c = c->next)
            if (c->owned)
                if (void* p = c->allocate(bytes, align)) return p;
        if (bytes <= max_block && align <= max_block) {
            const std::size_t need = ChunkHeap::header_bytes + (bytes + align + 2 * ChunkHeap::page) / ChunkHeap::page * ChunkHeap::page;
            Chunk& fresh = *(*tail_ = Chunk::map(std::max(default_chunk_bytes, need)));
            tail_ = &fresh.next;
            if (void* p = fresh.allocate(bytes, align)) return p;
        }
        throw OSError(ENOMEM, "mproc arena: cannot place " + std::to_string(bytes) + " bytes");
    }

    /// Returns bytes from allocate() to the chunk they came from, whichever process allocated them.
    void deallocate(void* p) noexcept {
        if (!p) return;
        std::lock_guard guard(local_);
        for (Chunk* c = chunks_; c; c = c->next)
            if (c->heap->contains(p)) return c->deallocate(p);
    }

    /// Called in a freshly forked child (one thread only). Chunks inherited from the parent stay
    /// mapped and freeable, but the child allocates from chunks of its own, so a child that is killed
    /// never leaks blocks into its parent's chunks. The process-local mutex may have been held by
    /// another parent thread at the fork, so it is constructed anew.
    void after_fork_in_child() noexcept {
        new (&local_) std::mutex;
        for (Chunk* c = chunks_; c; c = c->next) c->owned = false;
    }

private:
    static constexpr std::size_t default_chunk_bytes = std::size_t{1} << 20;
    static constexpr std::size_t max_block = std::size_t{1} << 56; // beyond any address space

    // The process's chunks, oldest first: a list of process-local nodes (the child's own chunks
    // must not appear in its parent's list). The mappings stay until the process ends.
    struct Chunk {
        ChunkHeap* heap;
        bool owned;
        Chunk* next;

        static Chunk* map(std::size_t bytes) {
            return new Chunk{ChunkHeap::create(posix::map_shared_anonymous(bytes), bytes), true, nullptr};
        }

        // A process killed while it held this mutex leaves the chunk's lists possibly half-updated;
        // the robust mutex lets others go on rather than hang, which is the lesser evil. Only
        // allocations and frees of shared objects take it, never a lock or a queue operation.
        struct Guard {
            pthread_mutex_t* m;
            explicit Guard(pthread_mutex_t* mutex) : m(mutex) { posix::robust_mutex_lock(m); }
            ~Guard() { posix::robust_mutex_unlock(m); }
        };

        void* allocate(std::size_t bytes, std::size_t align) {
            Guard g(heap->mutex());
            return heap->allocate(bytes, align);
        }
        void deallocate(void* p) noexcept {
            Guard g(heap->mutex());
            heap->deallocate(p);
        }
    };

    Arena() = default;
    ~Arena() {
        while (chunks_) delete std::exchange(chunks_, chunks_->next);
        tail_ = &chunks_;
    }
    std::mutex local_;
    Chunk* chunks_ = nullptr;
    Chunk** tail_ = &chunks_;
};

/// Arena states start on a cache line of their own (see SharedBlock in placement.hpp).
inline constexpr std::size_t cache_line = 64;

} // namespace mproc::detail
