#include "support.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <set>
#include <string>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace mproc;
using test::bound;
using test::join_bounded;
using namespace std::chrono_literals;

TEST_CASE("a process runs its function with copied arguments and exits 0") {
    SharedValue<int> out(0);
    std::string text = "four";
    Process p([&out](std::string s, int k) { out.value() = static_cast<int>(s.size()) * k; }, text, 10);
    text = "changed after construction"; // the Process holds its own copy
    CHECK(p.pid() == 0);
    CHECK_FALSE(p.exitcode());
    p.start();
    CHECK(p.pid() > 0);
    join_bounded(p);
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.error());
    CHECK(out.value() == 40);
}

TEST_CASE("std::ref passes a shared object by reference") {
    SharedValue<long> v(1);
    Process p([](SharedValue<long>& x) { x.value() = 99; }, std::ref(v));
    p.start();
    join_bounded(p);
    CHECK(v.value() == 99);
}

TEST_CASE("processes get Python's default names unless named") {
    Process a([] {});
    Process b(ProcessOptions{.name = "watchdog", .daemon = true}, [] {});
    CHECK_THAT(a.name(), Catch::StartsWith("Process-"));
    CHECK(b.name() == "watchdog");
    CHECK(b.daemon());
    CHECK_FALSE(a.daemon());
}

TEST_CASE("an exception escaping the function gives exitcode 1 and error() with its type and message") {
    Process p([] { throw std::invalid_argument("bad input 42"); });
    p.start();
    join_bounded(p);
    CHECK(p.exitcode() == 1);
    auto e = p.error();
    REQUIRE(e);
    CHECK(e->type_name() == "std::invalid_argument");
    CHECK(std::string(e->what()) == "bad input 42");
    CHECK(e->pid() == p.pid());
}

TEST_CASE("an exception not derived from std::exception is reported by its type") {
    Process p([] { throw 42; });
    p.start();
    join_bounded(p);
    CHECK(p.exitcode() == 1);
    REQUIRE(p.error());
    CHECK(p.error()->type_name() == "int");
}

TEST_CASE("mproc::exit(N) and std::exit(N) set exitcode N") {
    Process a([] { mproc::exit(7); });
    Process b([] { std::exit(3); });
    a.start();
    b.start();
    join_bounded(a);
    join_bounded(b);
    CHECK(a.exitcode() == 7);
    CHECK(b.exitcode() == 3);
    CHECK_FALSE(a.error());
}

TEST_CASE("a process killed by a signal has exitcode -SIGNUM") {
    Event never;
    SECTION("kill") {
        Process p([&] { never.wait(); });
        p.start();
        p.kill();
        join_bounded(p);
        CHECK(p.exitcode() == -SIGKILL);
    }
    SECTION("terminate") {
        Process p([&] { never.wait(); });
        p.start();
        p.terminate();
        join_bounded(p);
        CHECK(p.exitcode() == -SIGTERM);
    }
    SECTION("a signal raised by the child itself") {
        Process p([] { std::raise(SIGUSR1); });
        p.start();
        join_bounded(p);
        CHECK(p.exitcode() == -SIGUSR1);
        CHECK_FALSE(p.error());
    }
}

TEST_CASE("join_for and is_alive report a running process without blocking past the timeout") {
    Event go;
    Process p([&] { go.wait(); });
    CHECK_FALSE(p.is_alive());
    p.start();
    CHECK(p.is_alive());
    CHECK_FALSE(p.join_for(50ms)); // still blocked on `go`
    CHECK_FALSE(p.exitcode());
    go.set();
    CHECK(p.join_for(bound));
    CHECK_FALSE(p.is_alive());
    CHECK(p.exitcode() == 0);
    p.join(); // joining again is a no-op
}

TEST_CASE("misuse of a Process raises StateError") {
    Process p([] {});
    CHECK_THROWS_AS(p.join(), StateError);
    CHECK_THROWS_AS(p.join_for(1ms), StateError);
    CHECK_THROWS_AS(p.terminate(), StateError);
    CHECK_THROWS_AS(p.kill(), StateError);
    CHECK_THROWS_WITH(p.join(), Catch::Contains("never started"));
    p.start();
    CHECK_THROWS_AS(p.start(), StateError);
    CHECK_THROWS_WITH(p.start(), Catch::Contains("already started"));
    join_bounded(p);
    CHECK_THROWS_AS(p.kill(), StateError);
    CHECK_THROWS_WITH(p.terminate(), Catch::Contains("already exited"));

    Process moved_to = std::move(p);
    CHECK(moved_to.exitcode() == 0);
    CHECK_THROWS_AS(p.join(), StateError); // NOLINT(bugprone-use-after-move): the point of the test
    CHECK_THROWS_WITH(p.start(), Catch::Contains("moved from"));
}

namespace {
/// Whether `fd` becomes readable within `timeout` (one poll).
bool readable_within(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    return n == 1 && (p.revents & POLLIN);
}
bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
} // namespace

TEST_CASE("sentinel() becomes readable when the process ends and stays so until close()") {
    Event go;
    Process p([&] { go.wait_for(bound); });
    p.start();
    int fd = p.sentinel();
    CHECK(fd >= 0);
    CHECK(p.sentinel() == fd); // the same descriptor every time
    CHECK_FALSE(readable_within(fd, 0ms));
    go.set();
    CHECK(readable_within(fd, std::chrono::duration_cast<std::chrono::milliseconds>(bound)));
    join_bounded(p);
    CHECK(p.exitcode() == 0);
    CHECK(readable_within(fd, 0ms)); // still readable after the reap
    CHECK(fd_open(fd));
    p.close();
    CHECK_FALSE(fd_open(fd)); // close() released it
}

TEST_CASE("sentinel() of a process already reaped is readable at once") {
    Process p([] {});
    p.start();
    join_bounded(p);
    int fd = p.sentinel();
    CHECK(readable_within(fd, 0ms));
}

TEST_CASE("interrupt() sends SIGINT") {
    Event never;
    Process p([&] { never.wait_for(bound); });
    CHECK_THROWS_WITH(p.interrupt(), Catch::Contains("never started"));
    p.start();
    p.interrupt();
    join_bounded(p);
    CHECK(p.exitcode() == -SIGINT);
    CHECK_THROWS_WITH(p.interrupt(), Catch::Contains("already exited"));
}

namespace {
std::atomic<int> usr2_seen{0};
void on_usr2(int) { usr2_seen.fetch_add(1); }
} // namespace

// fork_child blocks every signal across fork() and the child's setup, then restores the caller's
// mask in both processes: the child starts with the parent's mask and handlers, the parent keeps its
// mask, and a signal sent as soon as start() returns is delivered, not lost while blocked.
TEST_CASE("start() leaves the signal mask as it was in both processes and the child inherits the handlers") {
    sigset_t usr1, before;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    REQUIRE(pthread_sigmask(SIG_BLOCK, &usr1, &before) == 0);
    struct sigaction mine {}, old_usr2 {};
    mine.sa_handler = on_usr2;
    sigemptyset(&mine.sa_mask);
    REQUIRE(sigaction(SIGUSR2, &mine, &old_usr2) == 0);

    SharedValue<int> report(0); // bit 0: SIGUSR1 blocked, bit 1: SIGTERM not blocked, bit 2: our SIGUSR2 handler
    Process p([&report] {
        sigset_t now;
        pthread_sigmask(SIG_BLOCK, nullptr, &now);
        struct sigaction usr2 {};
        sigaction(SIGUSR2, nullptr, &usr2);
        report.value() = (sigismember(&now, SIGUSR1) == 1 ? 1 : 0) | (sigismember(&now, SIGTERM) == 0 ? 2 : 0) |
                         (usr2.sa_handler == on_usr2 ? 4 : 0);
    });
    p.start();
    join_bounded(p);
    CHECK(p.exitcode() == 0);
    CHECK(report.value() == 7);

    sigset_t after;
    REQUIRE(pthread_sigmask(SIG_BLOCK, nullptr, &after) == 0);
    CHECK(sigismember(&after, SIGUSR1) == 1);
    CHECK(sigismember(&after, SIGTERM) == 0);
    CHECK(sigismember(&after, SIGUSR2) == 0);

    Event never;
    Process q([&] { never.wait_for(bound); });
    q.start();
    q.terminate(); // at once: it may still be inside fork_child, with every signal blocked
    join_bounded(q);
    CHECK(q.exitcode() == -SIGTERM);

    sigaction(SIGUSR2, &old_usr2, nullptr);
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

TEST_CASE("close() releases a finished Process, refuses a running one, and later calls say it is closed") {
    Event go;
    Process p([&] { go.wait_for(bound); });
    CHECK_THROWS_WITH(p.sentinel(), Catch::Contains("never started"));
    p.start();
    CHECK_THROWS_AS(p.close(), StateError);
    CHECK_THROWS_WITH(p.close(), Catch::Contains("still running"));
    CHECK(p.is_alive()); // the refused close changed nothing
    go.set();
    join_bounded(p);
    const pid_t pid = p.pid();
    p.close();
    p.close(); // idempotent
    CHECK(test::reaped(pid));
    CHECK(p.pid() == pid);
    CHECK(p.name().rfind("Process-", 0) == 0);
    CHECK_THROWS_WITH(p.join(), Catch::Contains("closed"));
    CHECK_THROWS_AS(p.join_for(1ms), StateError);
    CHECK_THROWS_AS(p.is_alive(), StateError);
    CHECK_THROWS_AS(p.exitcode(), StateError);
    CHECK_THROWS_AS(p.error(), StateError);
    CHECK_THROWS_AS(p.sentinel(), StateError);
    CHECK_THROWS_AS(p.start(), StateError);
    CHECK_THROWS_AS(p.terminate(), StateError);
    CHECK_THROWS_AS(p.kill(), StateError);
    CHECK_THROWS_WITH(p.interrupt(), Catch::Contains("closed"));

    Process never_started([] {});
    never_started.close();
    CHECK_THROWS_WITH(never_started.start(), Catch::Contains("closed"));
}

TEST_CASE("close() reaps a child that exited but was never joined") {
    Process p([] {});
    p.start();
    const pid_t pid = p.pid();
    REQUIRE(test::poll_until([&] {
        try {
            p.close();
            return true;
        } catch (const StateError&) {
            return false; // not exited yet
        }
    }));
    CHECK(test::reaped(pid));
}

TEST_CASE("a moved Process keeps its child") {
    Event go;
    std::vector<Process> ps;
    for (int i = 0; i < 3; ++i) ps.emplace_back([&] { go.wait(); });
    for (auto& p : ps) p.start();
    ps.reserve(64); // reallocation moves every started Process
    std::set<pid_t> listed, started;
    for (auto& child : active_children()) listed.insert(child.pid);
    for (auto& p : ps) started.insert(p.pid());
    CHECK(listed.size() == 3);
    CHECK(listed == started);
    Process last = std::move(ps.back()); // a move-construction, then a move-assignment
    ps.back() = std::move(last);
    CHECK(active_children().size() == 3);
    go.set();
    for (auto& p : ps) join_bounded(p);
    for (auto& p : ps) CHECK(p.exitcode() == 0);
    CHECK(active_children().empty());
}

TEST_CASE("the destructor joins a non-daemon process and reaps it") {
    Event go;
    SharedValue<int> done(0);
    pid_t pid = 0;
    {
        Process p([&] {
            go.wait();
            done.value() = 1;
        });
        p.start();
        pid = p.pid();
        go.set();
    }
    CHECK(done.value() == 1);
    CHECK(test::reaped(pid));
}

TEST_CASE("the destructor terminates a daemon, even one that ignores SIGTERM") {
    Event never;
    Event ready;
    pid_t pid = 0;
    SECTION("plain daemon") {
        {
            Process p(ProcessOptions{.daemon = true}, [&] { never.wait(); });
            p.start();
            pid = p.pid();
        }
        CHECK(test::reaped(pid));
    }
    SECTION("daemon ignoring SIGTERM is killed after a grace period") {
        {
            Process p(ProcessOptions{.daemon = true}, [&] {
                std::signal(SIGTERM, SIG_IGN);
                ready.set();
                never.wait();
            });
            p.start();
            pid = p.pid();
            REQUIRE(ready.wait_for(bound));
        }
        CHECK(test::reaped(pid));
    }
}

TEST_CASE("stdout is flushed before fork, so buffered output is printed once") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    Process writer([&] {
        ::dup2(fds[1], STDOUT_FILENO); // a pipe: stdout is fully buffered here
        ::close(fds[0]);
        ::close(fds[1]);
        std::printf("buffered-before-fork;");
        std::fflush(stdout); // only so that the dup2 above cannot race the parent's buffer: start() must flush too
        std::printf("second-buffered;");
        Process child([] { std::printf("child;"); });
        child.start();
        child.join();
        std::printf("end\n");
    });
    writer.start();
    ::close(fds[1]);
    join_bounded(writer);
    std::string out;
    char buf[256];
    ssize_t n;
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK); // the writer has exited: everything is in the pipe
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    CHECK(out == "buffered-before-fork;second-buffered;child;end\n");
}

TEST_CASE("a child dies with its parent, even when the parent is SIGKILLed") {
    SharedValue<pid_t> grandchild(0);
    Event started;
    Event never;
    Process middle([&] {
        Process inner([&] {
            grandchild.value() = ::getpid();
            started.set();
            never.wait();
        });
        inner.start();
        never.wait();
    });
    middle.start();
    REQUIRE(started.wait_for(bound));
    // The grandchild is alive (blocked on `never`), so this pidfd names it and no reused pid.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, grandchild.value(), 0));
    REQUIRE(pidfd >= 0);
    middle.kill();
    join_bounded(middle);
    pollfd pfd{pidfd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(bound).count()));
    ::close(pidfd);
    CHECK(ready == 1); // the grandchild exited when its parent died
}

TEST_CASE("current_process and parent_process mirror Python") {
    CHECK(current_process().name == "MainProcess");
    CHECK(current_process().pid == ::getpid());
    CHECK_FALSE(parent_process());

    SharedArray<char> name(64, '\0');
    SharedValue<pid_t> ppid(0);
    SharedValue<int> has_parent(0);
    SharedValue<int> inherited_children(-1);
    Process p(ProcessOptions{.name = "inspector"}, [&] {
        std::strncpy(name.data(), current_process().name.c_str(), name.size() - 1);
        auto parent = parent_process();
        has_parent.value() = parent.has_value();
        if (parent) ppid.value() = parent->pid;
        inherited_children.value() = static_cast<int>(active_children().size());
    });
    p.start();
    join_bounded(p);
    CHECK(p.exitcode() == 0);
    CHECK(std::string(name.data()) == "inspector");
    CHECK(has_parent.value() == 1);
    CHECK(ppid.value() == ::getpid());
    CHECK(inherited_children.value() == 0); // the parent's children are not the child's
}

TEST_CASE("active_children lists running children and forgets finished ones") {
    Event go;
    Process a(ProcessOptions{.name = "a"}, [&] { go.wait(); });
    Process b(ProcessOptions{.name = "b"}, [&] { go.wait(); });
    CHECK(active_children().empty());
    a.start();
    b.start();
    auto kids = active_children();
    std::set<std::string> names;
    for (auto& k : kids) names.insert(k.name);
    CHECK(names == std::set<std::string>{"a", "b"});
    go.set();
    join_bounded(a);
    join_bounded(b);
    CHECK(active_children().empty());
}

TEST_CASE("cpu_count is at least one") { CHECK(cpu_count() >= 1); }

TEST_CASE("fifty processes at once all run and are all reaped") {
    SharedValue<long> total(0);
    std::vector<Process> ps;
    for (int i = 1; i <= 50; ++i) ps.emplace_back([&total](int k) { total.fetch_add(k); }, i);
    for (auto& p : ps) p.start();
    for (auto& p : ps) join_bounded(p);
    for (auto& p : ps) CHECK(p.exitcode() == 0);
    CHECK(total.load() == 50 * 51 / 2);
    for (auto& p : ps) CHECK(test::reaped(p.pid()));
}

TEST_CASE("forking while other threads allocate and print neither deadlocks nor goes unnoticed") {
    int err[2];
    REQUIRE(::pipe(err) == 0);
    Process owner([&] {
        ::unsetenv("MPROC_NO_FORK_WARNING"); // the test suite may silence it; here it is the point
        // stdout to /dev/null (the threads print a lot), stderr to the pipe (for the warning).
        int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
        std::atomic<bool> stop{false};
        std::vector<std::thread> busy;
        for (int t = 0; t < 2; ++t)
            busy.emplace_back([&stop, t] {
                for (long i = 0; !stop.load(); ++i) {
                    std::vector<char> v(static_cast<std::size_t>(64 + (i * 37 + t) % 4096), 'x'); // malloc's locks
                    std::printf("thread %d line %ld %c\n", t, i, v.back());                      // stdout's lock
                }
            });
        SharedValue<int> done(0);
        std::vector<Process> kids;
        for (int i = 0; i < 40; ++i)
            kids.emplace_back([&done](int k) {
                std::vector<int> v(static_cast<std::size_t>(1000 + k));
                std::printf("child %d\n", k);
                std::fflush(stdout);
                done.fetch_add(1);
            }, i);
        for (auto& k : kids) k.start();
        bool all = true;
        for (auto& k : kids) all = all && k.join_for(bound);
        stop.store(true);
        for (auto& t : busy) t.join();
        mproc::exit(all && done.load() == 40 ? 0 : 1);
    });
    owner.start();
    ::close(err[1]);
    join_bounded(owner);
    CHECK(owner.exitcode() == 0);
    std::string text;
    char buf[512];
    ::fcntl(err[0], F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(err[0]);
    // 3 threads: ours and the two busy ones (a sanitizer may add its own).
    CHECK_THAT(text, Catch::Contains("mproc: warning: forking while this process runs") && Catch::Contains("threads"));
}
