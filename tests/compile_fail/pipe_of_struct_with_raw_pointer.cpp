// expect: U is not serializable: it holds a pointer or a view, an address that means nothing in another process
#include <mproc/pipe.hpp>
struct Reading {
    double value = 0;
    const char* sensor = nullptr;
};
int main() { auto [a, b] = mproc::Pipe<Reading>(); }
