// expect: must be a function pointer, a capture-less lambda or a trivially copyable function object
#include <mproc/pool.hpp>
#include <string>
#include <vector>
int main() {
    mproc::Pool pool(1);
    std::string prefix = "item ";
    pool.map([prefix](int x) { return prefix + std::to_string(x); }, std::vector<int>{1, 2});
}
