// The classic algorithms (std::min, std::find_if, std::sort...) mproc uses. With libstdc++, only the
// internal headers that hold them: C++20's <algorithm> adds the std::ranges algorithms and the
// declarations of the parallel ones, about 5 MB in every translation unit. Elsewhere, <algorithm>. A
// program that uses std::ranges algorithms includes <algorithm> itself, as it should.
#pragma once

#include <version> // defines __GLIBCXX__ with libstdc++

#if defined(__GLIBCXX__) && __has_include(<bits/stl_algobase.h>) && __has_include(<bits/stl_algo.h>)
#include <bits/stl_algobase.h>
#include <bits/stl_algo.h>
#else
#include <algorithm>
#endif
