// A program written against the installed mproc, as a user would write it.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#if MPROC_VERSION < 100
#error "MPROC_VERSION should be at least 100 (0.1.0)"
#endif

int main() {
#ifdef EXPECTED_VERSION
    // The installed headers must say the version that the package (or pkg-config) reported.
    if (std::strcmp(MPROC_VERSION_STRING, EXPECTED_VERSION) != 0) {
        std::printf("FAIL: headers say %s, the package %s\n", MPROC_VERSION_STRING, EXPECTED_VERSION);
        return 1;
    }
#endif
    mproc::SharedValue<long> total(0);
    std::vector<mproc::Process> workers;
    for (int i = 1; i <= 4; ++i)
        workers.emplace_back([&total](int k) {
            std::lock_guard g(total.get_lock());
            total.value() += k;
        }, i);
    for (auto& p : workers) p.start();
    for (auto& p : workers) p.join();
    std::printf("consumer total = %ld (mproc %s)\n", total.value(), MPROC_VERSION_STRING);
    return total.value() == 10 ? 0 : 1;
}
