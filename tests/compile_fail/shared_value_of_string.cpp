// expect: SharedValue<T>: T must be trivially copyable
#include <mproc/shared.hpp>
#include <string>
int main() { mproc::SharedValue<std::string> s; }
