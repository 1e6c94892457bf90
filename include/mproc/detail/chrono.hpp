// The clocks, durations and time points mproc needs. With libstdc++, only <bits/chrono.h>, which
// <thread> and <future> include already: C++20's <chrono> adds calendars, time zones and stream output
// on top (<sstream>, <locale>...), about 8 MB and 0.1 s in every translation unit, none of which mproc
// uses. Elsewhere, <chrono>. A program that uses those parts includes <chrono> itself, as it should.
#pragma once

#include <version> // defines __GLIBCXX__ with libstdc++

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif
