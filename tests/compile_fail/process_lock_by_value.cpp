// expect: pass it by reference with std::ref
#include <mproc/process.hpp>
#include <mproc/sync.hpp>
int main() {
    mproc::Lock lock;
    mproc::Process p([](mproc::Lock& l) { l.lock(); }, lock);
}
