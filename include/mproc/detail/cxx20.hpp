// mproc/detail/cxx20.hpp — the first thing every public header includes: mproc needs C++20, and a
// compiler in an older mode hears so in one message rather than in the ~1,500 lines of errors the
// rest of the headers would give (g++ 12 -std=c++17 on <mproc/mproc.hpp>).
#pragma once

#if __cplusplus < 202002L
#error "mproc needs C++20: compile with -std=c++20 (supported: g++ 12 or later, clang 16 or later)"
// #error lets the compiler go on; a missing header is fatal and stops it here, before the rest.
#include <mproc: compilation stopped, see the error above>
#endif
