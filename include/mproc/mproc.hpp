// mproc/mproc.hpp — everything mproc offers to forked processes. Each component also has its own
// header. Two are opt-in, included by name only, as most programs need neither and they cost the
// most to compile: <mproc/shared_memory.hpp> (named memory for unrelated processes, over
// Boost.Interprocess's containers) and <mproc/mpi.hpp> (MPI; needs MPI's headers and library).
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include "codec.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "pipe.hpp"
#include "pool.hpp"
#include "process.hpp"
#include "queue.hpp"
#include "shared.hpp"
#include "spawn.hpp"
#include "sync.hpp"
#include "version.hpp"
