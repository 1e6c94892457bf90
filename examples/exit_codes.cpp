// exit_codes — what a parent learns from exitcode() and error(): a process's own exit code
// (mproc::exit), 1 when an exception escaped (with its type and message), and -9 when SIGKILL
// ended it. Python: Process.exitcode, sys.exit(n).
//
//   ./exit_codes [--quick]      (--quick changes nothing here: there is no simulated delay)
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

// Process i sums 0..(i+1)*1000 and reports the sum modulo 256 as its exit code.
long long limit_of(int i) { return (i + 1) * 1000LL; }
int expected_code(int i) { return static_cast<int>(limit_of(i) * (limit_of(i) + 1) / 2 % 256); }

void summer(int i) {
    long long sum = 0;
    for (long long k = 0; k <= limit_of(i); ++k) sum += k;
    mproc::exit(static_cast<int>(sum % 256));
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        int mismatches = 0;
        auto check = [&](const char* what, bool ok) {
            if (!ok) {
                demo::say("FAIL: %s\n", what);
                ++mismatches;
            }
        };

        // One summing process per CPU.
        const int n = mproc::cpu_count();
        demo::say("%d CPUs: one summing process each\n", n);
        std::vector<mproc::Process> procs;
        for (int i = 0; i < n; ++i) procs.emplace_back(summer, i);
        for (auto& p : procs) p.start();
        if (!demo::join_all(procs)) return 1;
        for (int i = 0; i < n; ++i) {
            const int code = procs[demo::at(i)].exitcode().value();
            demo::say("process %d (pid %d): exitcode %d (sum of 0..%lld mod 256 = %d)\n", i,
                      static_cast<int>(procs[demo::at(i)].pid()), code, limit_of(i), expected_code(i));
            check("exit code differs from the sum", code == expected_code(i));
        }

        // An exception that escapes: exitcode 1, and error() tells what it was.
        mproc::Process thrower([] { throw std::runtime_error("the child could not go on"); });
        thrower.start();
        if (!thrower.join_for(60s)) {
            thrower.kill();
            thrower.join();
            check("the throwing process hung", false);
        } else {
            const int code = thrower.exitcode().value();
            demo::say("throwing process (pid %d): exitcode %d\n", static_cast<int>(thrower.pid()), code);
            check("exitcode of the throwing process should be 1", code == 1);
            if (auto e = thrower.error()) {
                demo::say("  error(): %s: %s\n", e->type_name().c_str(), e->what());
                check("error() should name std::runtime_error", e->type_name() == "std::runtime_error");
                check("error() should carry the message", std::string(e->what()) == "the child could not go on");
            } else {
                check("error() is empty after an escaped exception", false);
            }
        }

        // A process blocked for good, killed: exitcode -SIGKILL.
        mproc::Event waiting, never;
        mproc::Process blocked([&] {
            waiting.set();
            never.wait();
        });
        blocked.start();
        check("the blocked process did not start waiting", waiting.wait_for(60s));
        blocked.kill();
        if (!blocked.join_for(60s)) {
            check("the killed process did not exit", false);
        } else {
            const int code = blocked.exitcode().value();
            demo::say("killed process (pid %d): exitcode %d\n", static_cast<int>(blocked.pid()), code);
            check("exitcode of the killed process should be -9", code == -9);
        }

        if (mismatches != 0) {
            demo::say("FAIL: %d mismatches\n", mismatches);
            return 1;
        }
        demo::say("all %d exit codes as expected\n", n + 2);
        return 0;
    });
}
