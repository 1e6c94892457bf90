// The one place that calls MPI for mproc::mpi (as detail/posix/ is for the OS): a communicator that
// mproc::mpi::Pool owns, and byte messages over it. Every call's return code is checked and turned
// into mproc::mpi::MPIError naming the call. The communicator itself is set to MPI_ERRORS_ARE_FATAL,
// MPI's default, so in practice a failing MPI call aborts the whole job rather than leaving one rank
// throwing while the others wait for it forever.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../../errors.hpp"
#include "../backoff.hpp"

namespace mproc::detail::mpi {

/// Throws MPIError("<call>: <MPI's error string>") unless rc is MPI_SUCCESS.
inline void check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) [[likely]]
        return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
    throw mproc::mpi::MPIError(rc, std::string(call) + ": " + (len > 0 ? std::string(text, static_cast<std::size_t>(len)) : "MPI error " + std::to_string(rc)));
}

inline bool mpi_initialized() {
    int flag = 0;
    check(MPI_Initialized(&flag), "MPI_Initialized");
    return flag != 0;
}

inline bool mpi_finalized() {
    int flag = 0;
    check(MPI_Finalized(&flag), "MPI_Finalized");
    return flag != 0;
}

/// MPI counts are ints: a single message cannot exceed INT_MAX bytes (MPI 4's large-count calls are
/// not in Open MPI 4).
inline int byte_count(std::size_t bytes, const char* what) {
    if (bytes > static_cast<std::size_t>(INT_MAX))
        throw ValueError(std::string(what) + ": a message of " + std::to_string(bytes) +
                         " bytes exceeds MPI's limit of 2 GiB per message; use smaller chunks or items");
    return static_cast<int>(bytes);
}

/// A message matched by a probe and not yet received (MPI_Mprobe: no other receive can steal it).
struct Incoming {
    MPI_Message message = MPI_MESSAGE_NULL;
    int source = -1;
    int tag = -1;
    std::size_t bytes = 0;
};

/// A duplicate of the user's communicator, owned: the pool's traffic can never match a user's
/// receive, nor the user's traffic one of the pool's. Constructing and destroying it are collective.
class Communicator {
public:
    explicit Communicator(MPI_Comm parent) {
        check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
        check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_ARE_FATAL), "MPI_Comm_set_errhandler");
        check(MPI_Comm_set_name(comm_, "mproc::mpi::Pool"), "MPI_Comm_set_name");
        check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }
    Communicator(const Communicator&) = delete;
    Communicator& operator=(const Communicator&) = delete;
    ~Communicator() {
        // After MPI_Finalize nothing may be called; the handle is then simply gone with MPI.
        int finalized = 1;
        if (MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Comm_free(&comm_);
    }

    MPI_Comm get() const noexcept { return comm_; }
    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }

    /// Blocking standard-mode send (may wait until the receiver posts its receive).
    void send(int dest, int tag, std::span<const std::byte> bytes) const {
        check(MPI_Send(bytes.data(), byte_count(bytes.size(), "MPI_Send"), MPI_BYTE, dest, tag, comm_), "MPI_Send");
    }

    /// Non-blocking send; `bytes` must stay alive and unchanged until the request completes.
    MPI_Request isend(int dest, int tag, std::span<const std::byte> bytes) const {
        MPI_Request req = MPI_REQUEST_NULL;
        check(MPI_Isend(bytes.data(), byte_count(bytes.size(), "MPI_Isend"), MPI_BYTE, dest, tag, comm_, &req), "MPI_Isend");
        return req;
    }

    /// True once `req` has completed (it is then MPI_REQUEST_NULL).
    static bool test(MPI_Request& req) {
        int done = 0;
        check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        return done != 0;
    }
    static void wait(MPI_Request& req) { check(MPI_Wait(&req, MPI_STATUS_IGNORE), "MPI_Wait"); }

    /// Matches the next message from `source` with `tag` (MPI_ANY_SOURCE / MPI_ANY_TAG allowed),
    /// blocking until there is one.
    Incoming probe(int source, int tag) const {
        Incoming in;
        MPI_Status st;
        check(MPI_Mprobe(source, tag, comm_, &in.message, &st), "MPI_Mprobe");
        fill(in, st);
        return in;
    }

    /// As probe, without blocking: nullopt if no such message has arrived.
    std::optional<Incoming> try_probe(int source, int tag) const {
        Incoming in;
        MPI_Status st;
        int found = 0;
        check(MPI_Improbe(source, tag, comm_, &found, &in.message, &st), "MPI_Improbe");
        if (!found) return std::nullopt;
        fill(in, st);
        return in;
    }

    /// Receives a matched message into `out` (resized to fit; its capacity is reused).
    static void receive(Incoming& in, std::vector<std::byte>& out) {
        out.resize(in.bytes);
        check(MPI_Mrecv(out.data(), static_cast<int>(in.bytes), MPI_BYTE, &in.message, MPI_STATUS_IGNORE), "MPI_Mrecv");
    }

    /// Gives every rank `root`'s `bytes` (any size: sent in pieces of at most 1 GiB).
    void broadcast(std::vector<std::byte>& bytes, int root) const {
        std::uint64_t n = bytes.size();
        check(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm_), "MPI_Bcast");
        bytes.resize(static_cast<std::size_t>(n));
        constexpr std::size_t piece = std::size_t{1} << 30;
        for (std::size_t at = 0; at < bytes.size(); at += piece) {
            int count = static_cast<int>(std::min(piece, bytes.size() - at));
            check(MPI_Bcast(bytes.data() + at, count, MPI_BYTE, root, comm_), "MPI_Bcast");
        }
    }

    /// Every rank's `value` (trivially copyable), in rank order, on every rank.
    template <class T>
    std::vector<T> all_gather(const T& value) const {
        std::vector<T> out(static_cast<std::size_t>(size_));
        check(MPI_Allgather(&value, sizeof(T), MPI_BYTE, out.data(), sizeof(T), MPI_BYTE, comm_), "MPI_Allgather");
        return out;
    }

    /// A barrier that does not spin: MPI's blocking calls busy-poll, which would take the CPU from a
    /// rank doing serial work on the same core. Tests the barrier, sleeping between tests (up to 1 ms).
    void sleeping_barrier() const {
        MPI_Request req = MPI_REQUEST_NULL;
        check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
        Backoff backoff(std::chrono::microseconds(10), std::chrono::microseconds(1000));
        while (!test(req)) backoff.pause();
    }

    /// Ends the whole job: prints `why` on stderr, then MPI_Abort. For states the ranks cannot agree
    /// their way out of (they are in different pool calls).
    [[noreturn]] void abort_job(const std::string& why, int code = 70) const {
        std::fprintf(stderr, "mproc::mpi: rank %d: %s; aborting the MPI job\n", rank_, why.c_str());
        std::fflush(stderr);
        MPI_Abort(comm_, code);
        std::abort(); // MPI_Abort does not return; this keeps [[noreturn]] honest if it did
    }

private:
    static void fill(Incoming& in, const MPI_Status& st) {
        int count = 0;
        check(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count");
        in.source = st.MPI_SOURCE;
        in.tag = st.MPI_TAG;
        in.bytes = static_cast<std::size_t>(count);
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0;
    int size_ = 1;
};

} // namespace mproc::detail::mpi

