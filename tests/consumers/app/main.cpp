// A program written against the installed mproc, as a user would write it.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <mutex>
#include <vector>

int main() {
    mproc::SharedValue<long> total(0);
    std::vector<mproc::Process> workers;
    for (int i = 1; i <= 4; ++i)
        workers.emplace_back([&total](int k) {
            std::lock_guard g(total.get_lock());
            total.value() += k;
        }, i);
    for (auto& p : workers) p.start();
    for (auto& p : workers) p.join();
    std::printf("consumer total = %ld\n", total.value());
    return total.value() == 10 ? 0 : 1;
}
