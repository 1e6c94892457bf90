// mproc/errors.hpp — every exception the library throws derives from mproc::Error.
//
// mproc::Error derives from std::system_error (itself a std::runtime_error), so that OSError can be a
// std::system_error and an mproc::Error at once with a single std::runtime_error inside:
// `catch (const mproc::Error&)`, `catch (const std::system_error&)`, `catch (const std::runtime_error&)`
// and `catch (const std::exception&)` all catch it. Like std::ios_base::failure, the library's own
// errors are std::system_errors of mproc::error_category() (one Errc per error type); an OSError's
// code() is the failed call's errno in std::system_category().
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <memory>
#include <string>
#include <system_error>
#include <sys/types.h>
#include <type_traits>

namespace mproc {

/// The codes of mproc's own errors in mproc::error_category(), one per error type. `other` for
/// errors with no code of their own (an mproc::Error thrown as such, and later additions).
enum class Errc {
    other = 1,
    timeout,
    value,
    state,
    remote,
    worker_crashed,
    queue_closed,
    eof,
    serialization,
    owner_died,
    broken_barrier,
    cancelled,
};

/// The category of Errc codes, named "mproc". One object per program; usable from any thread.
inline const std::error_category& error_category() noexcept {
    class Category final : public std::error_category {
    public:
        const char* name() const noexcept override { return "mproc"; }
        std::string message(int code) const override {
            switch (static_cast<Errc>(code)) {
            case Errc::other: return "mproc error";
            case Errc::timeout: return "timed out";
            case Errc::value: return "bad argument";
            case Errc::state: return "not allowed in the object's state";
            case Errc::remote: return "exception in another process";
            case Errc::worker_crashed: return "worker process died";
            case Errc::queue_closed: return "queue closed";
            case Errc::eof: return "connection closed";
            case Errc::serialization: return "bytes do not decode";
            case Errc::owner_died: return "lock owner died";
            case Errc::broken_barrier: return "barrier broken";
            case Errc::cancelled: return "cancelled";
            }
            return "unknown mproc error";
        }
    };
    static const Category category;
    return category;
}

/// Makes `e` a std::error_code of mproc::error_category() (also found by ADL: `ec == Errc::timeout`).
inline std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), error_category()}; }

} // namespace mproc

template <>
struct std::is_error_code_enum<mproc::Errc> : std::true_type {};

namespace mproc {

/// Base of everything mproc throws. `what()` is the message given, unchanged; `code()` says which
/// error it is (an Errc, or an OSError's errno). Copying never throws.
class Error : public std::system_error {
public:
    explicit Error(const std::string& what) : Error(Errc::other, what) {}
    Error(std::error_code code, const std::string& what)
        : std::system_error(code), what_(std::make_shared<const std::string>(what)) {}
    // std::system_error's own what() appends the code's message; ours is the message as given.
    const char* what() const noexcept override { return what_->c_str(); }

private:
    std::shared_ptr<const std::string> what_;
};

/// A bounded wait ran out where the API cannot answer "no" with a return value.
class TimeoutError : public Error {
public:
    explicit TimeoutError(const std::string& what) : Error(Errc::timeout, what) {}
};

/// Bad arguments, e.g. a pool of 0 processes or a release past a BoundedSemaphore's limit.
class ValueError : public Error {
public:
    explicit ValueError(const std::string& what) : Error(Errc::value, what) {}
};

/// An operation that the object's current state does not allow: starting a Process twice,
/// joining one that was never started, signalling one that was already reaped.
class StateError : public Error {
public:
    explicit StateError(const std::string& what) : Error(Errc::state, what) {}
};

/// A system call failed; `what()` names the call and the cause. A std::system_error whose `code()`
/// is the errno in std::system_category(), so `catch (const std::system_error& e)` sees
/// `e.code() == std::errc::no_such_file_or_directory`; OSError's own `code()` also compares equal to
/// the plain errno (`e.code() == ENOENT`).
class OSError : public Error {
public:
    /// A std::error_code that also compares with a plain errno value.
    class Code : public std::error_code {
    public:
        explicit Code(const std::error_code& c) noexcept : std::error_code(c) {}
        friend bool operator==(const Code& c, int errno_value) noexcept {
            return static_cast<const std::error_code&>(c) == std::error_condition(errno_value, std::generic_category());
        }
    };

    OSError(int err, const std::string& what) : Error(std::error_code(err, std::system_category()), what) {}
    OSError(std::error_code code, const std::string& what) : Error(code, what) {}
    Code code() const noexcept { return Code(std::system_error::code()); }
};

/// An exception escaped user code in another process.
/// `type_name()` is the demangled type of the original, `what()` its message, `pid()` the process.
class RemoteError : public Error {
public:
    RemoteError(std::string type_name, const std::string& message, pid_t pid)
        : Error(Errc::remote, message), type_name_(std::make_shared<const std::string>(std::move(type_name))),
          pid_(pid) {}
    const std::string& type_name() const noexcept { return *type_name_; }
    pid_t pid() const noexcept { return pid_; }

private:
    std::shared_ptr<const std::string> type_name_; // shared: copying an exception must not throw
    pid_t pid_;
};

/// A process died while it owed us a result. `signal()` is 0 when it exited without one.
class WorkerCrashed : public Error {
public:
    WorkerCrashed(const std::string& what, pid_t pid, int signal, int exit_code)
        : Error(Errc::worker_crashed, what), pid_(pid), signal_(signal), exit_code_(exit_code) {}
    pid_t pid() const noexcept { return pid_; }
    int signal() const noexcept { return signal_; }
    int exit_code() const noexcept { return exit_code_; }

private:
    pid_t pid_;
    int signal_;
    int exit_code_;
};

/// put() on a closed queue, or get() on a closed queue that has been drained.
class QueueClosed : public Error {
public:
    explicit QueueClosed(const std::string& what) : Error(Errc::queue_closed, what) {}
};

/// recv() on a Connection whose other end is closed and whose data has all been read.
class EOFError : public Error {
public:
    explicit EOFError(const std::string& what) : Error(Errc::eof, what) {}
};

/// Bytes that do not decode: truncated, corrupted, or of another type.
class SerializationError : public Error {
public:
    explicit SerializationError(const std::string& what) : Error(Errc::serialization, what) {}
};

/// The holder of a lock (Lock, RLock, NamedLock, a SharedValue's lock) died holding it. (Semaphores
/// never throw it: a permit taken by a process that died stays taken.) The lock has been made
/// consistent and released, so the caller may retry; the data it protected may be half-updated.
class OwnerDied : public Error {
public:
    explicit OwnerDied(const std::string& what) : Error(Errc::owner_died, what) {}
};

/// wait() on a Barrier that was aborted, or broken by a party's timeout.
class BrokenBarrier : public Error {
public:
    explicit BrokenBarrier(const std::string& what) : Error(Errc::broken_barrier, what) {}
};

/// get() (or exception()) of a Future that was cancelled before it settled.
class CancelledError : public Error {
public:
    explicit CancelledError(const std::string& what) : Error(Errc::cancelled, what) {}
};

} // namespace mproc

namespace mproc::mpi {

/// An MPI call of mproc::mpi::Pool returned an error (<mproc/mpi.hpp>). `code()` is the MPI error code;
/// `what()` names the call and MPI's own description.
class MPIError : public Error {
public:
    MPIError(int code, const std::string& what) : Error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

} // namespace mproc::mpi
