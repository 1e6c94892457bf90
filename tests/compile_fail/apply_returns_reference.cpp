// expect: returns a reference
#include <mproc/pool.hpp>
int global = 0;
int& ref(int) { return global; }
int main() {
    mproc::Pool pool(1);
    pool.apply_async(ref, 1);
}
