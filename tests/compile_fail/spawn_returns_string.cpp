// expect: spawn: the function's return type must be trivially copyable
#include <mproc/future.hpp>
#include <string>
int main() { auto f = mproc::spawn([] { return std::string("text"); }); }
