// expect: is not serializable
#include <mproc/codec.hpp>
#include <memory>
#include <vector>
struct Widget { std::unique_ptr<int> handle; };
int main() { auto bytes = mproc::encode(std::vector<Widget>(1)); }
