// expect: T is not serializable: it holds a pointer or a view, an address that means nothing in another process
#include <mproc/codec.hpp>
#include <span>
struct Batch {
    int id = 0;
    std::span<const double> values;
};
int main() { auto bytes = mproc::encode(Batch{}); }
