// The one arena: every mproc shared object (lock word, shared value, result slot...) is carved out of
// anonymous MAP_SHARED chunks, so it stays shared with every process forked after its construction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <new>
#include <pthread.h>
#include <string>
#include <utility>
#include <vector>

#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>

#include "../errors.hpp"
#include "posix/memory.hpp"
#include "posix/mutex.hpp"

namespace mproc::detail {

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
        for (Chunk& c : chunks_)
            if (c.owned)
                if (void* p = c.allocate(bytes, align)) return p;
        Chunk& fresh = chunks_.emplace_back(Chunk::map(std::max(default_chunk_bytes, bytes + align + chunk_overhead)));
        if (void* p = fresh.allocate(bytes, align)) return p;
        throw OSError(ENOMEM, "mproc arena: cannot place " + std::to_string(bytes) + " bytes");
    }

    /// Returns bytes from allocate() to the chunk they came from, whichever process allocated them.
    void deallocate(void* p) noexcept {
        if (!p) return;
        std::lock_guard guard(local_);
        for (Chunk& c : chunks_)
            if (c.contains(p)) return c.deallocate(p);
    }

    /// Called in a freshly forked child (one thread only). Chunks inherited from the parent stay
    /// mapped and freeable, but the child allocates from chunks of its own, so a child that is killed
    /// never leaks blocks into its parent's chunks. The process-local mutex may have been held by
    /// another parent thread at the fork, so it is constructed anew.
    void after_fork_in_child() noexcept {
        new (&local_) std::mutex;
        for (Chunk& c : chunks_) c.owned = false;
    }

private:
    using Algorithm = boost::interprocess::rbtree_best_fit<boost::interprocess::null_mutex_family>;
    static constexpr std::size_t default_chunk_bytes = std::size_t{1} << 20;
    static constexpr std::size_t header_bytes = 128; // holds the cross-process mutex; keeps alignment
    static constexpr std::size_t chunk_overhead = 4096;
    static constexpr std::size_t release_threshold = std::size_t{64} << 10; // blocks from 64 KiB
    static constexpr std::size_t bookkeeping_margin = 256; // what a freed block's tree node may use

    struct Chunk {
        char* base;
        std::size_t size;
        bool owned;

        static Chunk map(std::size_t bytes) {
            bytes = (bytes + 4095) & ~std::size_t{4095};
            char* base = static_cast<char*>(posix::map_shared_anonymous(bytes));
            static_assert(sizeof(pthread_mutex_t) <= header_bytes);
            posix::robust_mutex_init(mutex_of(base), false);
            new (base + header_bytes) Algorithm(bytes - header_bytes, 0);
            return Chunk{base, bytes, true};
        }
        static pthread_mutex_t* mutex_of(char* base) { return reinterpret_cast<pthread_mutex_t*>(base); }
        Algorithm* algorithm() const { return reinterpret_cast<Algorithm*>(base + header_bytes); }
        bool contains(void* p) const { return p >= base && p < base + size; }

        // A process killed while it held this mutex leaves the allocator's tree possibly half-updated;
        // the robust mutex lets others go on rather than hang, which is the lesser evil. Only
        // allocations and frees of shared objects take it, never a lock or a queue operation.
        struct Guard {
            pthread_mutex_t* m;
            explicit Guard(pthread_mutex_t* mutex) : m(mutex) { posix::robust_mutex_lock(m); }
            ~Guard() { posix::robust_mutex_unlock(m); }
        };

        void* allocate(std::size_t bytes, std::size_t align) {
            Guard g(mutex_of(base));
            return align <= alignof(std::max_align_t) ? algorithm()->allocate(bytes)
                                                       : algorithm()->allocate_aligned(bytes, align);
        }
        void deallocate(void* p) {
            Guard g(mutex_of(base));
            // A large block's pages go back to the system before the block goes back to the
            // allocator (while nobody else can have it): otherwise a destroyed queue's ring stays
            // resident for good (60 queues of growing size kept +95 MB). The allocator's own
            // bookkeeping, at the block's start, is left alone.
            if (const std::size_t held = algorithm()->size(p); held >= release_threshold)
                posix::release_pages(static_cast<char*>(p) + bookkeeping_margin, held - bookkeeping_margin);
            algorithm()->deallocate(p);
        }
    };

    Arena() = default;
    std::mutex local_;
    std::vector<Chunk> chunks_;
};

/// Arena states start on a cache line of their own (see SharedBlock in placement.hpp).
inline constexpr std::size_t cache_line = 64;

} // namespace mproc::detail
