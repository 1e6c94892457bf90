// mproc/version.hpp — which mproc this is. The one place the version is written: CMake's
// project(mproc VERSION ...) reads it from here (see the top-level CMakeLists.txt), and the installed
// package config, pkg-config file and `mproc-shm --version` all follow.
#pragma once

#define MPROC_VERSION_MAJOR 0
#define MPROC_VERSION_MINOR 1
#define MPROC_VERSION_PATCH 0

/// One number that grows with every release, as {fmt}'s FMT_VERSION: major * 10000 + minor * 100 +
/// patch (0.1.0 is 100), for `#if MPROC_VERSION >= 200`.
#define MPROC_VERSION (MPROC_VERSION_MAJOR * 10000 + MPROC_VERSION_MINOR * 100 + MPROC_VERSION_PATCH)

#define MPROC_VERSION_STRINGIFY_(x) #x
#define MPROC_VERSION_STRINGIFY(x) MPROC_VERSION_STRINGIFY_(x)
/// "0.1.0".
#define MPROC_VERSION_STRING                                                                                          \
    MPROC_VERSION_STRINGIFY(MPROC_VERSION_MAJOR) "." MPROC_VERSION_STRINGIFY(MPROC_VERSION_MINOR) "." MPROC_VERSION_STRINGIFY(MPROC_VERSION_PATCH)
