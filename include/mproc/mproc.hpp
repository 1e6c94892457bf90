// mproc/mproc.hpp — everything mproc offers. Each component also has its own header.
#pragma once

#include "codec.hpp"
#include "errors.hpp"
#include "future.hpp"
#include "pipe.hpp"
#include "pool.hpp"
#include "process.hpp"
#include "queue.hpp"
#include "shared.hpp"
#include "shared_memory.hpp"
#include "sync.hpp"
#include "version.hpp"
