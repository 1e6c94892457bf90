// expect: use pool.starmap(f, tuples)
#include <mproc/pool.hpp>
#include <tuple>
#include <vector>
int add(int a, int b) { return a + b; }
int main() {
    mproc::Pool pool(1);
    pool.map(add, std::vector<std::tuple<int, int>>{{1, 2}});
}
