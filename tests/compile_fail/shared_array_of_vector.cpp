// expect: SharedArray<T>: T must be trivially copyable
#include <mproc/shared.hpp>
#include <vector>
int main() { mproc::SharedArray<std::vector<int>> a(3); }
