// process_bench.cpp — mproc::Process start()+join() of a child that does nothing, against a raw
// fork() / _exit(0) / waitpid().
//
// Reference numbers on a 2-core VM of the kind this is developed on: raw fork+waitpid ~220 us;
// Python's multiprocessing Process(target=f).start(); join() ~2 ms.
//
// Each iteration is ~0.2 ms of mostly kernel work (copying page tables, scheduling the child), and it
// is timed in real time: the parent's CPU time would miss the child's and the wait. The mproc side
// includes constructing the Process object, as Python's figure includes constructing Process().
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <mproc/process.hpp>

#include "bench_support.hpp"

namespace {

void mproc_process_start_join(benchmark::State& state) {
    for (auto _ : state) {
        mproc::Process p([] {});
        p.start();
        p.join();
        if (p.exitcode() != 0) {
            state.SkipWithError("the child did not exit with 0");
            break;
        }
    }
}
BENCHMARK(mproc_process_start_join)->Name("mproc/Process_start_join")->UseRealTime()->Unit(benchmark::kMicrosecond);

void raw_fork_waitpid(benchmark::State& state) {
    for (auto _ : state) {
        const pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        if (pid < 0) {
            state.SkipWithError("fork failed");
            break;
        }
        const int status = mproc_bench::reap(pid);
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            state.SkipWithError("the child did not exit with 0");
            break;
        }
    }
}
BENCHMARK(raw_fork_waitpid)->Name("raw/Process_start_join")->UseRealTime()->Unit(benchmark::kMicrosecond);

} // namespace
