// work_log — a pool of 4 runs 4 tasks of different lengths at once; they finish shortest first.
//
// The tasks are (name, seconds) pairs: A 5 s, B 2 s, C 1 s, D 3 s. Each worker announces its task,
// waits, and reports it finished. With 4 workers all four start together, so they finish in the
// order C, B, D, A and the whole run takes about 5 s (the longest task), not 11 s (their sum).
// imap_unordered hands the parent each result as soon as it is ready, so the order in which the
// results arrive is the finish order. Python: Pool(4).map(work_log, work) from the classic tutorial.
//
//   ./work_log [--quick]      (--quick: 0.5, 0.2, 0.1 and 0.3 s)
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

// What a worker reports: its task, and when it started and finished on the steady clock. That
// clock is CLOCK_MONOTONIC, one clock for every process of the machine, so the parent can compare
// the workers' times with its own. A plain aggregate: the codec sends it field by field.
struct WorkDone {
    std::string name;
    double started = 0;
    double finished = 0;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Runs in a worker: one (name, seconds) task.
WorkDone work_log(const std::pair<std::string, double>& task) {
    const auto& [name, seconds] = task;
    WorkDone done{name, now(), 0};
    demo::say("Process %s waiting %g seconds\n", name.c_str(), demo::scaled(seconds));
    demo::pause(seconds);
    demo::say("Process %s finished\n", name.c_str());
    done.finished = now();
    return done;
}

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
    return out;
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        const std::vector<std::pair<std::string, double>> work{{"A", 5}, {"B", 2}, {"C", 1}, {"D", 3}};
        const std::vector<std::string> expected_order{"C", "B", "D", "A"};
        double longest = 0, sum = 0;
        for (const auto& [name, seconds] : work) {
            longest = std::max(longest, demo::scaled(seconds));
            sum += demo::scaled(seconds);
        }

        // The iteration below waits without a limit of its own, so the pool bounds every task: one
        // that ran past 60 s would fail with TimeoutError (and end the demo with a FAIL line).
        mproc::Pool pool(mproc::PoolOptions{.processes = static_cast<int>(work.size()), .task_timeout = 60s});

        const double t0 = now();
        demo::Stopwatch clock;
        std::vector<std::string> order;
        std::vector<WorkDone> reports;
        for (const WorkDone& done : pool.imap_unordered(work_log, work)) {
            demo::say("main: %s done after %.2f s\n", done.name.c_str(), clock.seconds());
            order.push_back(done.name);
            reports.push_back(done);
        }
        const double elapsed = clock.seconds();
        pool.close();
        pool.join();

        int failures = 0;
        if (order != expected_order) {
            demo::say("FAIL: finished in order %s, expected %s\n", joined(order).c_str(), joined(expected_order).c_str());
            ++failures;
        }
        // All ran at once: every task had started before the first one finished. (Three workers
        // would give the same order and about the same total; this tells them apart.)
        double last_start = 0, first_finish = 1e300;
        for (const WorkDone& d : reports) {
            last_start = std::max(last_start, d.started - t0);
            first_finish = std::min(first_finish, d.finished - t0);
        }
        demo::say("main: last task started at %.2f s, first finished at %.2f s\n", last_start, first_finish);
        if (reports.size() != work.size() || last_start >= first_finish) {
            demo::say("FAIL: the %zu tasks did not all start before the first one finished\n", work.size());
            ++failures;
        }
        // About the longest task: well under the sum that one worker would need.
        const double limit = longest + (sum - longest) / 2;
        if (elapsed >= limit) {
            demo::say("FAIL: %.2f s in all; running at once it should take about %.1f s (one at a time: %.1f s)\n", elapsed,
                      longest, sum);
            ++failures;
        }
        if (failures != 0) return 1;
        demo::say("finished in order %s in %.1f s (longest task %.1f s, all together %.1f s)\n", joined(order).c_str(),
                  elapsed, longest, sum);
        return 0;
    });
}
