// expect: the function cannot be called with these arguments
#include <mproc/process.hpp>
#include <string>
int main() { mproc::Process p([](int) {}, std::string("not an int")); }
