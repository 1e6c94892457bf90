// mproc/errors.hpp — every exception the library throws derives from mproc::Error.
#pragma once

#include <stdexcept>
#include <string>
#include <sys/types.h>

namespace mproc {

/// Base of everything mproc throws.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A bounded wait ran out where the API cannot answer "no" with a return value.
class TimeoutError : public Error {
public:
    using Error::Error;
};

/// Bad arguments, e.g. a pool of 0 processes or a release past a BoundedSemaphore's limit.
class ValueError : public Error {
public:
    using Error::Error;
};

/// An operation that the object's current state does not allow: starting a Process twice,
/// joining one that was never started, signalling one that was already reaped.
class StateError : public Error {
public:
    using Error::Error;
};

/// A system call failed. `code()` is its errno; `what()` names the call and the cause.
class OSError : public Error {
public:
    OSError(int err, const std::string& what) : Error(what), errno_(err) {}
    int code() const noexcept { return errno_; }

private:
    int errno_;
};

/// An exception escaped user code in another process.
/// `type_name()` is the demangled type of the original, `what()` its message, `pid()` the process.
class RemoteError : public Error {
public:
    RemoteError(std::string type_name, const std::string& message, pid_t pid)
        : Error(message), type_name_(std::move(type_name)), pid_(pid) {}
    const std::string& type_name() const noexcept { return type_name_; }
    pid_t pid() const noexcept { return pid_; }

private:
    std::string type_name_;
    pid_t pid_;
};

/// A process died while it owed us a result. `signal()` is 0 when it exited without one.
class WorkerCrashed : public Error {
public:
    WorkerCrashed(const std::string& what, pid_t pid, int signal, int exit_code)
        : Error(what), pid_(pid), signal_(signal), exit_code_(exit_code) {}
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
    using Error::Error;
};

/// recv() on a Connection whose other end is closed and whose data has all been read.
class EOFError : public Error {
public:
    using Error::Error;
};

/// Bytes that do not decode: truncated, corrupted, or of another type.
class SerializationError : public Error {
public:
    using Error::Error;
};

/// The holder of a lock (or of semaphore permits) died holding it. The lock has been made
/// consistent and released, so the caller may retry; the data it protected may be half-updated.
class OwnerDied : public Error {
public:
    using Error::Error;
};

/// wait() on a Barrier that was aborted, or broken by a party's timeout.
class BrokenBarrier : public Error {
public:
    using Error::Error;
};

} // namespace mproc
