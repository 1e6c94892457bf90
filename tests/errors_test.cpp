#include "support.hpp"

#include <exception>
#include <system_error>
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

TEST_CASE("every mproc error has its own code in mproc's error category, and what() is its message as given") {
    CHECK(TimeoutError("t").code() == Errc::timeout);
    CHECK(ValueError("v").code() == Errc::value);
    CHECK(StateError("s").code() == Errc::state);
    CHECK(RemoteError("std::logic_error", "r", 1).code() == Errc::remote);
    CHECK(WorkerCrashed("w", 1, SIGKILL, 0).code() == Errc::worker_crashed);
    CHECK(QueueClosed("q").code() == Errc::queue_closed);
    CHECK(EOFError("e").code() == Errc::eof);
    CHECK(SerializationError("s").code() == Errc::serialization);
    CHECK(OwnerDied("o").code() == Errc::owner_died);
    CHECK(BrokenBarrier("b").code() == Errc::broken_barrier);
    CHECK(Error("plain").code() == Errc::other);
    CHECK(std::string(error_category().name()) == "mproc");
    CHECK(make_error_code(Errc::timeout).message() == "timed out");
    CHECK(std::string(TimeoutError("Queue::get: nothing within 1s").what()) == "Queue::get: nothing within 1s");
    // Thrown exceptions are copied; a copy that could throw would terminate the program.
    STATIC_REQUIRE(std::is_nothrow_copy_constructible_v<Error>);
    STATIC_REQUIRE(std::is_nothrow_copy_constructible_v<RemoteError>);
    STATIC_REQUIRE(std::is_nothrow_copy_constructible_v<OSError>);
}

TEST_CASE("a closed queue's QueueClosed is caught as mproc::Error, std::system_error and std::runtime_error") {
    Queue<int> q;
    q.close();
    try {
        q.get();
        FAIL("get() on a closed, drained queue should throw");
    } catch (const std::system_error& e) {
        CHECK(e.code() == Errc::queue_closed);
        CHECK(e.code().category() == error_category());
        CHECK(dynamic_cast<const QueueClosed*>(&e) != nullptr);
    }
    CHECK_THROWS_AS(q.get(), Error);
    CHECK_THROWS_AS(q.get(), std::runtime_error);
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

TEST_CASE("OSError is a std::system_error whose code() is the errno, caught by every base without ambiguity") {
    std::exception_ptr thrown;
    try {
        detail::posix::pidfd_open(-5);
    } catch (...) {
        thrown = std::current_exception();
    }
    REQUIRE(thrown);
    try {
        std::rethrow_exception(thrown);
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::invalid_argument);
        CHECK(e.code().value() == EINVAL);
        CHECK(e.code().category() == std::system_category());
        CHECK_THAT(e.what(), Catch::StartsWith("pidfd_open(-5)") && Catch::EndsWith("Invalid argument"));
    }
    // Each base catches it: one std::runtime_error inside (an ambiguous base would not match at all).
    CHECK_THROWS_AS(std::rethrow_exception(thrown), Error);
    CHECK_THROWS_AS(std::rethrow_exception(thrown), OSError);
    CHECK_THROWS_AS(std::rethrow_exception(thrown), std::runtime_error);
    CHECK_THROWS_AS(std::rethrow_exception(thrown), std::exception);
    // An error_code made elsewhere keeps its category.
    OSError wrapped(std::make_error_code(std::errc::no_such_file_or_directory), "open(/x): No such file or directory");
    CHECK(wrapped.code() == std::errc::no_such_file_or_directory);
    CHECK(wrapped.code() == ENOENT);
    CHECK_FALSE(OSError(ENOENT, "x").code() == EEXIST);
}

TEST_CASE("signal names are spelled as users know them") {
    CHECK(detail::posix::signal_name(SIGSEGV) == "SIGSEGV");
    CHECK(detail::posix::signal_name(SIGKILL) == "SIGKILL");
    CHECK(detail::posix::signal_name(SIGTERM) == "SIGTERM");
}
