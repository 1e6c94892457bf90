// Tests of the mproc-shm tool, run as a user runs it (through the shell, bounded by timeout(1)):
// exit codes, which stream its text goes to, and that clean never removes a name whose creator is
// running. The named objects are real, made by live and killed child processes.
#include "support.hpp"

#include <mproc/shared_memory.hpp>
#include <mproc/version.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <vector>

#ifndef MPROC_SHM_TOOL
#error "MPROC_SHM_TOOL must name the mproc-shm program (see tools/CMakeLists.txt)"
#endif

using namespace mproc;
using test::bound;
using test::join_bounded;

namespace {

struct Run {
    int status = -1; // the exit status; -1 if the tool did not exit normally
    std::string out;
    std::string err;
};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs `mproc-shm ARGS`, killed after 60 s if it has not exited.
Run run_tool(const std::string& args) {
    const auto base = std::filesystem::temp_directory_path() /
                      ("mproc-shm-test." + std::to_string(current_process().pid));
    const std::string out = base.string() + ".out";
    const std::string err = base.string() + ".err";
    const std::string cmd = "timeout 60 '" MPROC_SHM_TOOL "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int st = std::system(cmd.c_str());
    Run r{st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
    std::filesystem::remove(out);
    std::filesystem::remove(err);
    return r;
}

/// This test's own name prefix, so that other tests' names are never touched.
std::string tag() { return "mproc-shm-test-" + std::to_string(current_process().pid); }

std::vector<std::string> names_under(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& info : list_shared_memory(prefix)) out.push_back(info.name);
    std::sort(out.begin(), out.end());
    return out;
}

/// One name whose creator is still running (until release() or destruction) and one whose creator
/// was killed (stale), both under tag().
class LiveAndStale {
public:
    LiveAndStale()
        : tag_(tag()),
          live_([this] {
              auto m = SharedMemory::create(tag_ + ".live", 4096);
              created_.release();
              (void)release_.wait_for(bound);
          }),
          dying_([this] {
              auto m = SharedMemory::create(tag_ + ".stale", 4096);
              created_.release();
              (void)release_.wait_for(bound); // killed before
          }) {
        live_.start();
        dying_.start();
        REQUIRE(created_.try_acquire_for(bound));
        REQUIRE(created_.try_acquire_for(bound));
        dying_.kill();
        join_bounded(dying_);
    }
    LiveAndStale(const LiveAndStale&) = delete;
    ~LiveAndStale() {
        release();
        (void)unlink_shared_memory(tag() + ".stale"); // if a failed check left it
    }
    void release() {
        if (live_.exitcode()) return;
        release_.set();
        join_bounded(live_);
    }
    pid_t live_pid() const { return live_.pid(); }

private:
    std::string tag_; // computed before the forks: the children's own pids would give other names
    Semaphore created_{0};
    Event release_;
    Process live_;
    Process dying_;
};

} // namespace

TEST_CASE("asking for --help prints the usage on stdout and exits 0, after a command too") {
    for (const char* args : {"--help", "-h", "clean --help", "list --stale --help"}) {
        INFO("mproc-shm " << args);
        Run r = run_tool(args);
        CHECK(r.status == 0);
        CHECK_THAT(r.out, Catch::StartsWith("usage: ") && Catch::Contains("clean [--all] [--dry-run] [PREFIX]"));
        CHECK(r.err.empty());
    }
}

TEST_CASE("asking for --version prints mproc's version and exits 0") {
    Run r = run_tool("--version");
    CHECK(r.status == 0);
    CHECK(r.out == "mproc-shm (mproc) " MPROC_VERSION_STRING "\n");
    CHECK(r.err.empty());
}

TEST_CASE("bad usage exits 2, says why and shows the usage on stderr, nothing on stdout") {
    for (const char* args : {"", "frobnicate", "clean --bogus", "list a b", "remove", "list --all"}) {
        INFO("mproc-shm " << args);
        Run r = run_tool(args);
        CHECK(r.status == 2);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Catch::StartsWith("mproc-shm: ") && Catch::Contains("usage: "));
    }
}

TEST_CASE("clean --all keeps a name whose creator is running, says so, and removes one whose creator died") {
    LiveAndStale objects;
    REQUIRE(names_under(tag()) == std::vector<std::string>{tag() + ".live", tag() + ".stale"});

    Run r = run_tool("clean --all " + tag());
    CHECK(r.status == 0);
    CHECK(r.err == "mproc-shm clean: kept " + tag() + ".live: its creator (pid " + std::to_string(objects.live_pid()) +
                       ") is running\n");
    CHECK(r.out == "removed " + tag() + ".stale\n1 name(s) removed\n");
    CHECK(names_under(tag()) == std::vector<std::string>{tag() + ".live"});

    objects.release(); // the creator removes its own name as it ends
    CHECK(names_under(tag()).empty());
}

TEST_CASE("clean --dry-run says what clean would remove and removes nothing") {
    LiveAndStale objects;
    const std::vector<std::string> both{tag() + ".live", tag() + ".stale"};

    Run r = run_tool("clean --dry-run " + tag());
    CHECK(r.status == 0);
    CHECK(r.out == "would remove " + tag() + ".stale\n1 name(s) would be removed\n");
    CHECK(r.err.empty());
    CHECK(names_under(tag()) == both);

    r = run_tool("clean --all --dry-run " + tag());
    CHECK(r.status == 0);
    CHECK(r.out == "would remove " + tag() + ".stale\n1 name(s) would be removed\n");
    CHECK_THAT(r.err, Catch::Contains("kept " + tag() + ".live: its creator"));
    CHECK(names_under(tag()) == both);

    // Without --dry-run, the same stale name goes and the live one stays.
    r = run_tool("clean " + tag());
    CHECK(r.status == 0);
    CHECK(r.out == "removed " + tag() + ".stale\n1 name(s) removed\n");
    CHECK(names_under(tag()) == std::vector<std::string>{tag() + ".live"});
}
