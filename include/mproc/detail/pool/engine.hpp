// What Pool's non-template members ask of the pool engine (detail/worker_pool.hpp), as virtual
// calls: the engine is a class template, compiled only in translation units that build a Pool, and
// a Pool's destructor, close() or join() must not instantiate it everywhere <mproc/pool.hpp> is seen.
#pragma once

#include <sys/types.h>
#include <vector>

#include "../deadline.hpp"

namespace mproc::detail {

class PoolEngine {
public:
    /// True in the process that built the pool.
    virtual bool owned_here() const noexcept = 0;
    virtual int processes() const noexcept = 0;
    /// No more tasks may be submitted; queued ones still run.
    virtual void close() noexcept = 0;
    virtual bool closed() = 0;
    /// Waits until every task has settled (or `d`), then stops the workers; false on timeout.
    virtual bool join(Deadline d = Deadline::never()) = 0;
    /// Kills the workers now; unsettled tasks fail with StateError.
    virtual void terminate() noexcept = 0;
    virtual std::vector<pid_t> worker_pids() = 0;

protected:
    PoolEngine() = default;
    PoolEngine(const PoolEngine&) = default;
    PoolEngine& operator=(const PoolEngine&) = default;
    ~PoolEngine() = default;
};

} // namespace mproc::detail
