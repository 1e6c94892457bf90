// expect: mproc needs C++20: compile with -std=c++20
// std: c++17
// unexpected: mproc/(codec|errors|future|pipe|pool|process|queue|shared|shared_memory|sync)\.hpp:[0-9]+:[0-9]+: |mproc/detail/[a-z_/]+\.hpp:[0-9]+:[0-9]+: (error|warning)
// A C++17 build gets one message (and the fatal stop after it), not the ~3,000 lines of errors that
// the headers themselves would give. (The second pattern spares detail/cxx20.hpp: no digits.)
#include <mproc/mproc.hpp>
int main() {}
