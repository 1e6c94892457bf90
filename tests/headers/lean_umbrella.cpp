// <mproc/mproc.hpp> stays out of the standard headers that cost the most to compile and that it does
// not need (issue #12; bench/README.md, "Compile cost"): with libstdc++, whose include guards name
// them, the build fails if one of them comes back through an mproc header. A program that uses them
// includes them itself. (Other standard libraries get the full headers: nothing to check there.)
#include <mproc/mproc.hpp>

#if defined(__GLIBCXX__)
#if defined(_GLIBCXX_FILESYSTEM) || defined(_GLIBCXX_CHRONO)
#error "<mproc/mproc.hpp> includes <filesystem> or <chrono> (detail/chrono.hpp takes <bits/chrono.h>)"
#endif
#if defined(_GLIBCXX_SET) || defined(_GLIBCXX_UNORDERED_MAP) || defined(_GLIBCXX_UNORDERED_SET)
#error "<mproc/mproc.hpp> includes <set>, <unordered_map> or <unordered_set> (the codec recognises them by interface)"
#endif
#if defined(_GLIBCXX_FUNCTIONAL) || defined(_GLIBCXX_RANGES) || defined(_GLIBCXX_ALGORITHM)
#error "<mproc/mproc.hpp> includes <functional>, <ranges> or <algorithm> (see detail/functional.hpp, ranges.hpp, algorithm.hpp)"
#endif
#endif
