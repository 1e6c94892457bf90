// MPROC_VERSION_* (include/mproc/version.hpp, where the version is written) against the project
// version CMake read from it (CMAKE_VERSION_*, given on the command line by tests/CMakeLists.txt).
#include <mproc/version.hpp>

#include <cstdio>
#include <cstring>

static_assert(MPROC_VERSION_MAJOR == CMAKE_VERSION_MAJOR && MPROC_VERSION_MINOR == CMAKE_VERSION_MINOR &&
                  MPROC_VERSION_PATCH == CMAKE_VERSION_PATCH,
              "include/mproc/version.hpp and CMake's project version differ");
static_assert(MPROC_VERSION == CMAKE_VERSION_MAJOR * 10000 + CMAKE_VERSION_MINOR * 100 + CMAKE_VERSION_PATCH,
              "MPROC_VERSION is not major * 10000 + minor * 100 + patch");
static_assert(MPROC_VERSION_MINOR < 100 && MPROC_VERSION_PATCH < 100, "MPROC_VERSION has two digits per part");

int main() {
    if (std::strcmp(MPROC_VERSION_STRING, CMAKE_VERSION_STRING) != 0) {
        std::printf("FAIL: MPROC_VERSION_STRING is %s, CMake's project version %s\n", MPROC_VERSION_STRING,
                    CMAKE_VERSION_STRING);
        return 1;
    }
    std::printf("mproc %s (MPROC_VERSION %d) as CMake says\n", MPROC_VERSION_STRING, MPROC_VERSION);
    return 0;
}
