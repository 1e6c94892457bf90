// pipe — two processes talking through a Pipe, one way and then both ways.
//
// One way: a worker computes for a second, then sends its parent a report (its pid, its name and
// its results) through a one-way Pipe; the report is a plain struct with a std::string and a
// std::vector, which travels with no serialization code. Both ways: the parent sends 5 numbers
// through a duplex Pipe and the worker answers each with its square; when the parent closes its end
// the worker's recv() raises EOFError and it exits.
//
// As in Python, every process closes the ends it does not use right after the fork: a receiving
// end sees end-of-file only once no process holds the other end open any more. The parent poll()s
// with a timeout before each recv(), so a lost message fails the demo instead of hanging it.
// Python: multiprocessing.Pipe(duplex=False) and Pipe(), Connection.send/recv/poll/close.
//
//   ./pipe [--quick]      (--quick: the worker computes for 0.1 s, answers in 0.01 s)
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

namespace {

using namespace std::chrono_literals;

/// What the worker reports: an aggregate, so the codec encodes it field by field without user code.
struct Report {
    int pid = 0;
    std::string name;
    std::vector<long> results;
};

long cube(long n) { return n * n * n; }

constexpr long first_n = 1, last_n = 10;

// Part 1's worker. It gets both ends (a forked child holds them all anyway) so that it can close
// the one it does not use.
void report_to_parent(mproc::Connection<Report>& receiver, mproc::Connection<Report>& sender) {
    receiver.close(); // this process only sends
    const mproc::ProcessInfo me = mproc::current_process();
    Report report{static_cast<int>(me.pid), me.name, {}};
    for (long n = first_n; n <= last_n; ++n) {
        demo::pause(0.1); // simulated work
        report.results.push_back(cube(n));
    }
    sender.send(report);
    sender.close();
}

// After the report: the worker has closed its end and the parent closed its own copy, so the next
// recv() raises EOFError. True if it did.
bool expect_eof(mproc::Connection<Report>& receiver) {
    if (!receiver.poll(10s)) { // end-of-file also makes poll() true
        demo::say("FAIL: neither a message nor end-of-file within 10 s after the report\n");
        return false;
    }
    try {
        receiver.recv();
        demo::say("FAIL: a second message arrived\n");
        return false;
    } catch (const mproc::EOFError& e) {
        demo::say("[main] next recv(): EOFError (%s)\n", e.what());
        return true;
    }
}

// Part 1: worker -> parent, one way. True if the report arrived intact and then end-of-file.
bool one_way() {
    // Python's order: the first end receives, the second sends.
    auto [receiver, sender] = mproc::Pipe<Report>(false);

    std::vector<mproc::Process> procs;
    procs.emplace_back(mproc::ProcessOptions{.name = "reporter"}, report_to_parent, std::ref(receiver), std::ref(sender));
    procs[0].start();
    // The parent only receives. Without this close, the parent itself would hold the sending side
    // open and the recv() after the report would wait for ever instead of raising EOFError.
    sender.close();
    demo::say("[main] started %s (pid %d); poll() right away: %s\n", procs[0].name().c_str(),
              static_cast<int>(procs[0].pid()), receiver.poll() ? "a message is there" : "nothing yet");

    bool ok = false;
    if (!receiver.poll(10s)) {
        demo::say("FAIL: no report within 10 s\n");
    } else {
        const Report report = receiver.recv();
        std::string list;
        for (long r : report.results) list += " " + std::to_string(r);
        demo::say("[main] report from %s (pid %d): cubes of %ld..%ld:%s\n", report.name.c_str(), report.pid, first_n,
                  last_n, list.c_str());
        std::vector<long> expected;
        for (long n = first_n; n <= last_n; ++n) expected.push_back(cube(n));
        ok = report.pid == procs[0].pid() && report.name == procs[0].name() && report.results == expected;
        if (!ok) demo::say("FAIL: the report does not match the worker (pid %d, %s) or its results\n",
                           static_cast<int>(procs[0].pid()), procs[0].name().c_str());
    }

    if (ok) ok = expect_eof(receiver);
    receiver.close();
    return demo::join_all(procs) && ok;
}

// Part 2's worker: answers each number with its square until the parent closes its end.
void answer_squares(mproc::Connection<long>& main_end, mproc::Connection<long>& worker_end, mproc::Event& saw_eof) {
    main_end.close(); // the parent's end: this process must not keep it open
    for (int replies = 0;; ++replies) {
        long n = 0;
        try {
            n = worker_end.recv();
        } catch (const mproc::EOFError&) {
            demo::say("[squarer] EOFError: the parent closed its end; exiting after %d replies\n", replies);
            saw_eof.set();
            return;
        }
        demo::pause(0.1); // simulated work
        worker_end.send(n * n);
    }
}

// Part 2's parent side: sends each request and waits (bounded) for its reply. Returns the number of
// requests answered correctly; stops at the first problem, having printed a FAIL line.
int ask_squares(mproc::Connection<long>& conn, const std::vector<long>& requests) {
    int answered = 0;
    try {
        for (long n : requests) {
            conn.send(n);
            if (!conn.poll(10s)) {
                demo::say("FAIL: no reply to %ld within 10 s\n", n);
                return answered;
            }
            const long reply = conn.recv();
            demo::say("[main] sent %ld, received %ld\n", n, reply);
            if (reply != n * n) {
                demo::say("FAIL: %ld squared is not %ld\n", n, reply);
                return answered;
            }
            ++answered;
        }
    } catch (const mproc::Error& e) {
        demo::say("FAIL: after %d replies: %s\n", answered, e.what());
    }
    return answered;
}

// Part 2: requests and replies on one duplex pipe. True if all were answered and the worker then
// saw end-of-file and exited normally.
bool duplex() {
    auto [main_end, worker_end] = mproc::Pipe<long>();
    mproc::Event saw_eof;

    std::vector<mproc::Process> procs;
    procs.emplace_back(mproc::ProcessOptions{.name = "squarer"}, answer_squares, std::ref(main_end), std::ref(worker_end),
                       std::ref(saw_eof));
    procs[0].start();
    worker_end.close(); // the worker's end: the parent must not keep it open

    const std::vector<long> requests{3, 7, 12, 25, 100};
    const int answered = ask_squares(main_end, requests);
    main_end.close(); // every path: this is what lets the worker's recv() end
    if (!demo::join_all(procs)) return false;

    bool ok = answered == static_cast<int>(requests.size());
    if (!saw_eof.is_set() || procs[0].exitcode() != 0) {
        demo::say("FAIL: the worker should have seen EOFError and exited with 0 (exitcode %d)\n", *procs[0].exitcode());
        ok = false;
    }
    if (ok) demo::say("duplex exchange: %d requests answered\n", answered);
    return ok;
}

} // namespace

int main(int argc, char** argv) {
    return demo::run(argc, argv, [] {
        demo::say("-- one way: a worker reports to its parent\n");
        const bool first = one_way();
        demo::say("-- both ways: the parent asks, the worker answers\n");
        const bool second = duplex();
        return first && second ? 0 : 1;
    });
}
