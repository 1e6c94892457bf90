// expect: fetch_add
#include <mproc/shared.hpp>
int main() { mproc::SharedValue<double> d(1.0); d.fetch_add(1.0); }
