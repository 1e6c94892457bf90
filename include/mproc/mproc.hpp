// mproc/mproc.hpp — everything mproc offers. Each component also has its own header.
#pragma once

#include "errors.hpp"
#include "future.hpp"
#include "process.hpp"
#include "shared.hpp"
#include "sync.hpp"
