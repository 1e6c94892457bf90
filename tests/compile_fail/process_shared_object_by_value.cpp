// expect: pass it by reference with std::ref
#include <mproc/process.hpp>
#include <mproc/queue.hpp>
// A Queue (like every shared object) is neither copyable nor movable: Process must say so in one
// message instead of failing deep inside std::tuple.
int main() {
    mproc::Queue<int> q;
    mproc::Process p([](mproc::Queue<int>& queue) { queue.put(1); }, q);
}
