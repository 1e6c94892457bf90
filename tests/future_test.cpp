#include "support.hpp"

#include <csignal>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <unistd.h>

using namespace mproc;
using test::bound;
using namespace std::chrono_literals;

namespace {
struct Stats {
    long sum;
    double mean;
    pid_t pid;
};
long triangle(long n) { return n * (n + 1) / 2; }
} // namespace

TEST_CASE("spawn returns the function's value from another process") {
    auto f = spawn(triangle, 100L);
    CHECK(f.get() == 5050);
    CHECK(f.get() == 5050); // get() may be called again
    auto g = spawn([](int a, int b) { return Stats{a + b, (a + b) / 2.0, ::getpid()}; }, 3, 4);
    Stats s = g.get();
    CHECK(s.sum == 7);
    CHECK(s.mean == 3.5);
    CHECK(s.pid != ::getpid());
}

TEST_CASE("spawn returns any serializable value, large ones too") {
    auto f = spawn([](int n) { return std::vector<std::string>(static_cast<std::size_t>(n), std::string(1000, 'z')); }, 2000);
    auto v = f.get(); // 2 MB: more than the socket buffer, read before the child is reaped
    CHECK(v.size() == 2000);
    CHECK(v.back() == std::string(1000, 'z'));
    auto g = spawn([] { return std::map<std::string, std::optional<int>>{{"a", 1}, {"b", std::nullopt}}; });
    CHECK(g.get() == std::map<std::string, std::optional<int>>{{"a", 1}, {"b", std::nullopt}});
}

TEST_CASE("spawn of a void function settles when it returns") {
    SharedValue<int> ran(0);
    auto f = spawn([&] { ran.value() = 1; });
    f.get();
    CHECK(ran.value() == 1);
}

TEST_CASE("wait_for, ready and wait follow the child") {
    Event go;
    auto f = spawn([&] {
        go.wait();
        return 11;
    });
    CHECK_FALSE(f.ready());
    CHECK_FALSE(f.wait_for(30ms));
    go.set();
    CHECK(f.wait_for(bound));
    CHECK(f.ready());
    f.wait();
    CHECK(f.get() == 11);
}

TEST_CASE("an exception in the spawned function comes back as RemoteError") {
    auto f = spawn([]() -> int { throw std::out_of_range("index 12 of 3"); });
    try {
        f.get();
        FAIL("get() should throw");
    } catch (const RemoteError& e) {
        CHECK(e.type_name() == "std::out_of_range");
        CHECK(std::string(e.what()) == "index 12 of 3");
        CHECK(e.pid() > 0);
    }
}

TEST_CASE("a spawned process that dies without a result gives WorkerCrashed") {
    SECTION("killed by a signal") {
        auto f = spawn([]() -> int {
            std::raise(SIGKILL);
            return 0;
        });
        try {
            f.get();
            FAIL("get() should throw");
        } catch (const WorkerCrashed& e) {
            CHECK(e.signal() == SIGKILL);
            CHECK_THAT(e.what(), Catch::Contains("SIGKILL") && Catch::Contains("before returning a result"));
        }
    }
    SECTION("exited early") {
        auto f = spawn([]() -> int { mproc::exit(3); });
        try {
            f.get();
            FAIL("get() should throw");
        } catch (const WorkerCrashed& e) {
            CHECK(e.signal() == 0);
            CHECK(e.exit_code() == 3);
            CHECK_THAT(e.what(), Catch::Contains("exited with code 3"));
        }
    }
}

TEST_CASE("a moved-from Future refuses to be used") {
    auto f = spawn(triangle, 3L);
    auto g = std::move(f);
    CHECK(g.get() == 6);
    CHECK_THROWS_AS(f.get(), StateError); // NOLINT(bugprone-use-after-move): the point of the test
}
