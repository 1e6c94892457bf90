#include "support.hpp"

#include <type_traits>

using namespace mproc;

TEST_CASE("every mproc error derives from mproc::Error and std::runtime_error") {
    STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, Error>);
    STATIC_REQUIRE(std::is_base_of_v<Error, TimeoutError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, ValueError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, StateError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, OSError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, RemoteError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, WorkerCrashed>);
    STATIC_REQUIRE(std::is_base_of_v<Error, QueueClosed>);
    STATIC_REQUIRE(std::is_base_of_v<Error, EOFError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, SerializationError>);
    STATIC_REQUIRE(std::is_base_of_v<Error, OwnerDied>);
    STATIC_REQUIRE(std::is_base_of_v<Error, BrokenBarrier>);
}

TEST_CASE("RemoteError and WorkerCrashed carry what happened where") {
    RemoteError r("std::invalid_argument", "bad input", 1234);
    CHECK(r.type_name() == "std::invalid_argument");
    CHECK(std::string(r.what()) == "bad input");
    CHECK(r.pid() == 1234);

    WorkerCrashed w("task 7: worker 99 was killed by SIGSEGV", 99, SIGSEGV, 0);
    CHECK(w.pid() == 99);
    CHECK(w.signal() == SIGSEGV);
    CHECK(w.exit_code() == 0);
    CHECK_THAT(w.what(), Catch::Contains("SIGSEGV"));
}

TEST_CASE("a failing system call becomes an OSError naming the call and the cause") {
    try {
        detail::posix::pidfd_open(-5);
        FAIL("pidfd_open(-5) should fail");
    } catch (const OSError& e) {
        CHECK(e.code() == EINVAL);
        CHECK_THAT(e.what(), Catch::Contains("pidfd_open(-5)") && Catch::Contains("Invalid argument"));
    }
}

TEST_CASE("signal names are spelled as users know them") {
    CHECK(detail::posix::signal_name(SIGSEGV) == "SIGSEGV");
    CHECK(detail::posix::signal_name(SIGKILL) == "SIGKILL");
    CHECK(detail::posix::signal_name(SIGTERM) == "SIGTERM");
}
