// mproc/mpi.hpp — the Pool's map, starmap, imap and apply across machines, over MPI: mpi::Pool.
//
// Opt-in: <mproc/mproc.hpp> does not include this header and nothing else in mproc depends on MPI.
// Link with MPI (CMake: `find_package(MPI COMPONENTS CXX)`, then `target_link_libraries(app PRIVATE
// mproc::mproc MPI::MPI_CXX)`) and start the program with `mpirun -n N ./app` or `srun ./app`.
//
// SPMD, as MPI programs are: every rank runs main. Create one mpi::Environment at the top of main
// (it initialises and finalises MPI), then an mpi::Pool, and make the same pool calls on every rank:
//
//     int square(int x) { return x * x; }
//     int main(int argc, char** argv) {
//         mproc::mpi::Environment env(argc, argv);
//         mproc::mpi::Pool pool;
//         std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4, 5});
//         if (pool.is_root()) ...            // r == {1, 4, 9, 16, 25} on rank 0, empty elsewhere
//     }
//
// Rank 0 (of the pool's communicator) is the root: it reads the inputs, hands chunks out as ranks ask
// for them (a slow rank gets fewer), computes chunks itself between answering the others, and
// gathers the results in input order. Arguments and results travel through mproc's codec
// (<mproc/codec.hpp>); the function does not travel at all: every rank calls its own copy of the one
// it passed, so it may be any callable, capturing lambdas included.
//
// The rules, all from MPI:
//   - Collective calls. Constructing and destroying a Pool, and every map, starmap, apply, imap,
//     imap_unordered and barrier, must be made by every rank of the communicator, in the same order,
//     with the same function. A rank found in another call than the root's aborts the job with a
//     message saying so (calls are numbered and their types fingerprinted; two different function
//     pointers of the same type cannot be told apart). A rank that never makes the call leaves the
//     others waiting: MPI cannot tell "slow" from "missing".
//   - Threads. Environment asks for MPI_THREAD_FUNNELED by default: a program may have threads, but
//     only the thread that created the Environment calls MPI — so a Pool is used from that thread.
//   - Failures. A task's exception is not a failure of the job: it comes back, and every rank throws
//     the same mpi::RemoteError (see map). A rank that dies (signal, exit, lost machine) is: MPI
//     aborts the whole job (docs/mpi.md says what to do about it).
//   - The pool's messages go over its own duplicate of the communicator, never mixing with the
//     user's MPI traffic; that communicator aborts the job on any MPI error (MPI's default).
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>
#include <unistd.h>

#include "codec.hpp"
#include "detail/mpi/comm.hpp"
#include "detail/mpi/dispatch.hpp"
#include "detail/pool/chunk_plan.hpp"
#include "detail/pool/lazy_range.hpp"
#include "detail/progress.hpp"
#include "errors.hpp"

namespace mproc::mpi {

// MPIError (an MPI call returned an error code: `code()`, and `what()` naming the call) is declared
// in detail/mpi/comm.hpp, beside the calls that throw it.

/// An exception escaped the function on some rank. Every rank that takes part in the call throws the
/// same one. `rank()` and `host()` say where, `index()` which item (0 for apply), `type_name()` the
/// original type, `message()` the original what(); `what()` says all of it, e.g.
/// "mpi::Pool::map: item 17 raised std::runtime_error on rank 2 (pid 4242 on node-b): bad input".
/// Catch it as mproc::RemoteError too; `pid()` is the failing process on its host.
class RemoteError : public mproc::RemoteError {
public:
    RemoteError(const std::string& op, std::size_t index, int rank, std::string host, pid_t pid, std::string type_name,
                std::string message)
        : mproc::RemoteError(type_name, describe(op, index, rank, host, pid, type_name, message), pid), rank_(rank),
          index_(index), host_(std::move(host)), message_(std::move(message)) {}
    int rank() const noexcept { return rank_; }
    std::size_t index() const noexcept { return index_; }
    const std::string& host() const noexcept { return host_; }
    const std::string& message() const noexcept { return message_; }

private:
    static std::string describe(const std::string& op, std::size_t index, int rank, const std::string& host, pid_t pid,
                                const std::string& type, const std::string& message) {
        std::string where = op == "apply" ? std::string("the call") : "item " + std::to_string(index);
        return "mpi::Pool::" + op + ": " + where + " raised " + type + " on rank " + std::to_string(rank) + " (pid " +
               std::to_string(pid) + " on " + host + "): " + message;
    }
    int rank_;
    std::size_t index_;
    std::string host_;
    std::string message_;
};

/// MPI's thread support levels (MPI_THREAD_SINGLE ... MPI_THREAD_MULTIPLE).
enum class ThreadLevel { single, funneled, serialized, multiple };

/// `thread_level`: what to ask MPI for. mpi::Pool needs no more than `funneled` (all its MPI calls
/// come from the thread that uses it). `abort_on_exception`: if the Environment is destroyed by an
/// exception unwinding the stack, call MPI_Abort rather than MPI_Finalize — a rank that leaves on an
/// exception of its own would otherwise leave the others waiting forever.
struct EnvironmentOptions {
    ThreadLevel thread_level = ThreadLevel::funneled;
    bool abort_on_exception = true;
};

/// MPI for the lifetime of the object: MPI_Init_thread when built, MPI_Finalize when destroyed. Make
/// one at the top of main on every rank, before any Pool (Pools must be destroyed before it). If MPI
/// is already initialised (by the user or another library), it neither initialises nor finalises.
/// Not copyable or movable. Throws StateError if MPI was already finalised (MPI cannot start twice in
/// a process), MPIError if MPI_Init_thread fails.
class Environment {
public:
    Environment() : Environment(EnvironmentOptions{}) {}
    explicit Environment(EnvironmentOptions options) { init(nullptr, nullptr, options); }
    /// Passes argc and argv to MPI_Init_thread, as MPI programs traditionally do.
    Environment(int& argc, char**& argv, EnvironmentOptions options = {}) { init(&argc, &argv, options); }
    Environment(const Environment&) = delete;
    Environment& operator=(const Environment&) = delete;

    ~Environment() {
        if (!owner_) return;
        int finalized = 1;
        if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
        if (abort_on_exception_ && std::uncaught_exceptions() > uncaught_at_init_) {
            std::fprintf(stderr, "mproc::mpi::Environment: an exception is leaving the MPI scope on rank %d; "
                                 "aborting the job so that the other ranks do not wait for this one forever\n", world_rank());
            std::fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Finalize();
    }

    /// The thread level MPI provides (may be lower than asked for: check it if you need threads).
    ThreadLevel thread_level() const noexcept { return provided_; }
    /// True if this object initialised MPI (and so will finalise it).
    bool owns_mpi() const noexcept { return owner_; }
    /// This process's rank in MPI_COMM_WORLD, and the number of ranks.
    int rank() const { return world_rank(); }
    int size() const {
        int n = 1;
        detail::mpi::check(MPI_Comm_size(MPI_COMM_WORLD, &n), "MPI_Comm_size");
        return n;
    }
    /// MPI_Get_processor_name: usually the host name.
    static std::string processor_name() {
        char name[MPI_MAX_PROCESSOR_NAME] = {};
        int len = 0;
        detail::mpi::check(MPI_Get_processor_name(name, &len), "MPI_Get_processor_name");
        return std::string(name, static_cast<std::size_t>(len));
    }
    /// Ends every rank of the job now (MPI_Abort on MPI_COMM_WORLD) with exit code `code`.
    [[noreturn]] static void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();
    }

private:
    static int world_rank() {
        int r = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
        return r;
    }
    static int to_mpi(ThreadLevel level) {
        switch (level) {
        case ThreadLevel::single: return MPI_THREAD_SINGLE;
        case ThreadLevel::funneled: return MPI_THREAD_FUNNELED;
        case ThreadLevel::serialized: return MPI_THREAD_SERIALIZED;
        case ThreadLevel::multiple: return MPI_THREAD_MULTIPLE;
        }
        return MPI_THREAD_FUNNELED;
    }
    static ThreadLevel from_mpi(int level) {
        if (level >= MPI_THREAD_MULTIPLE) return ThreadLevel::multiple;
        if (level >= MPI_THREAD_SERIALIZED) return ThreadLevel::serialized;
        if (level >= MPI_THREAD_FUNNELED) return ThreadLevel::funneled;
        return ThreadLevel::single;
    }
    void init(int* argc, char*** argv, EnvironmentOptions options) {
        abort_on_exception_ = options.abort_on_exception;
        if (detail::mpi::mpi_finalized())
            throw StateError("mpi::Environment: MPI was already finalized in this process and cannot be initialized again");
        int provided = MPI_THREAD_SINGLE;
        if (detail::mpi::mpi_initialized()) {
            detail::mpi::check(MPI_Query_thread(&provided), "MPI_Query_thread");
        } else {
            detail::mpi::check(MPI_Init_thread(argc, argv, to_mpi(options.thread_level), &provided), "MPI_Init_thread");
            owner_ = true;
        }
        provided_ = from_mpi(provided);
        uncaught_at_init_ = std::uncaught_exceptions();
    }

    bool owner_ = false;
    bool abort_on_exception_ = true;
    ThreadLevel provided_ = ThreadLevel::single;
    int uncaught_at_init_ = 0;
};

/// Which ranks a call's results are returned on: rank 0 only (the others get an empty vector, or a
/// default-constructed value from apply, and imap yields nothing on them — as MPI_Gather), or every
/// rank (one MPI_Bcast of the encoded results after the call; imap sends each chunk to every rank).
enum class ResultsOn { root, all_ranks };

/// `comm`: the ranks that take part (the pool works on its own duplicate; rank 0 of it is the root).
/// `results`: see ResultsOn. `root_computes`: rank 0 computes chunks too, between answering the
/// others (with false it only hands out and gathers; with a single rank it computes regardless).
/// `progress`: map, starmap, imap and imap_unordered draw a progress bar on rank 0's stderr, counting
/// items as their chunks come back (and as rank 0 computes its own). `on_progress(done, total)`:
/// called on rank 0 as items complete (total 0 for an imap over an unsized range), on the thread that
/// makes the pool call; an exception from it is reported on stderr and ignored. Both are as the
/// fork-based Pool's, and are ignored on the other ranks.
struct PoolOptions {
    MPI_Comm comm = MPI_COMM_WORLD;
    ResultsOn results = ResultsOn::root;
    bool root_computes = true;
    bool progress = false;
    std::function<void(std::size_t done, std::size_t total)> on_progress = {};
};

/// Who computed what in the last call: `chunks[r]` and `items[r]` for rank r, and the call's wall
/// time on rank 0. The same on every rank after the call.
struct MapStats {
    std::vector<std::size_t> chunks;
    std::vector<std::size_t> items;
    double seconds = 0;
};

/// A pool of MPI ranks with the fork-based Pool's map, starmap, imap, imap_unordered and apply. Every
/// member function that communicates is collective (see the top of this header) and blocks until the
/// call is over on this rank. Not copyable or movable. Thread-safety: use it from the thread that
/// created the Environment (MPI_THREAD_FUNNELED), one call at a time; never from a forked child (a
/// child of an MPI process must not call MPI).
class Pool {
public:
    /// Over MPI_COMM_WORLD.
    Pool() : Pool(PoolOptions{}) {}
    /// Collective over `options.comm`. Throws StateError if MPI is not initialised (create an
    /// Environment first), ValueError for MPI_COMM_NULL, MPIError if duplicating the communicator fails.
    explicit Pool(PoolOptions options)
        : comm_(checked(options.comm)), results_on_(options.results), root_computes_(options.root_computes),
          progress_(options.progress), on_progress_(std::move(options.on_progress)) {
        RankInfo me{static_cast<std::int64_t>(::getpid()), {}};
        int len = 0;
        detail::mpi::check(MPI_Get_processor_name(me.host, &len), "MPI_Get_processor_name");
        ranks_ = comm_.all_gather(me);
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    /// Collective: rank 0 tells every rank the pool is going, so that a rank which made fewer or more
    /// calls than rank 0 is caught here (the job is aborted with a message saying so) rather than
    /// left waiting; then the pool's communicator is freed. Must run before the Environment's
    /// destructor; does nothing once MPI is finalized.
    ~Pool() {
        int finalized = 1;
        if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
        in_step(detail::mpi::Op::close, [&] { close_on_every_rank(); });
    }

    /// This rank in the pool's communicator, and the number of ranks.
    int rank() const noexcept { return comm_.rank(); }
    int size() const noexcept { return comm_.size(); }
    /// True on rank 0, the rank that reads the inputs and gets the results.
    bool is_root() const noexcept { return comm_.rank() == 0; }
    /// The pool's own communicator (a duplicate of PoolOptions::comm). Do not send on it.
    MPI_Comm comm() const noexcept { return comm_.get(); }
    ResultsOn results_on() const noexcept { return results_on_; }
    /// Who computed what in the last map, starmap, apply or (once finished) imap.
    const MapStats& last_map_stats() const noexcept { return stats_; }

    /// Collective: returns when every rank has called it. Waits by testing and sleeping rather than
    /// spinning as MPI's blocking calls do, so ranks waiting here leave the CPU to a rank that is
    /// still busy (serial work on rank 0, timing runs).
    void barrier() const { comm_.sleeping_barrier(); }

    // ------------------------------------------------------------------ map and starmap

    /// f(x) for every x of `inputs`, in order. Collective: every rank calls it with the same f; the
    /// inputs are read on rank 0 only (other ranks may pass the same range, as SPMD code naturally
    /// does, or an empty one of the same element type). Chunks are handed out dynamically: guided
    /// sizes (large first, shrinking), or `chunksize` items each if not 0.
    /// Returns the results on rank 0 (on every rank with ResultsOn::all_ranks; elsewhere an empty
    /// vector). Blocks until every chunk has settled; if any item threw, every rank throws the
    /// RemoteError of the lowest failing index (the rest of that item's chunk is not computed).
    /// f(Item&) must return a serializable, non-void type; Item must be serializable.
    template <class F, std::ranges::sized_range Range>
    auto map(F f, const Range& inputs, std::size_t chunksize = 0) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        using Call = detail::mpi::ItemCall<F, Item, false>;
        static_assert(!std::is_void_v<typename Call::Raw>, "mproc::mpi::Pool::map: the function returns void; use apply for side effects");
        Call call{std::move(f)};
        return run_map<Item>(detail::mpi::Op::map, call, inputs, chunksize);
    }

    /// g(std::get<0>(t), std::get<1>(t), ...) for every tuple (or pair) t of `inputs`; as map.
    template <class G, std::ranges::sized_range Range>
    auto starmap(G g, const Range& inputs, std::size_t chunksize = 0) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        using Call = detail::mpi::ItemCall<G, Item, true>;
        static_assert(!std::is_void_v<typename Call::Raw>, "mproc::mpi::Pool::starmap: the function returns void; use apply for side effects");
        Call call{std::move(g)};
        return run_map<Item>(detail::mpi::Op::starmap, call, inputs, chunksize);
    }

    // ------------------------------------------------------------------ apply

    /// f(args...) once, on another rank if there is one (rank 1), else on rank 0. Collective; the
    /// arguments are read on rank 0 and travel through the codec. Returns the result on rank 0 (on
    /// every rank with ResultsOn::all_ranks; elsewhere a default-constructed value); void for a void f.
    /// Throws RemoteError on every rank if f threw.
    template <class F, class... Args>
    auto apply(F f, Args&&... args) {
        using Tuple = std::tuple<std::decay_t<Args>...>;
        using Call = detail::mpi::ItemCall<F, Tuple, true>;
        using R = typename Call::Result;
        Call call{std::move(f)};
        std::vector<Tuple> one;
        one.emplace_back(std::forward<Args>(args)...);
        std::vector<R> out = run_map<Tuple>(detail::mpi::Op::apply, call, one, 1);
        if constexpr (std::is_void_v<typename Call::Raw>)
            return;
        else
            return out.empty() ? R{} : std::move(out.front());
    }

    // ------------------------------------------------------------------ imap

    template <class Item, class Call, class Range, bool Ordered>
    class LazyMap;

    /// f(x) for every x of `inputs`, lazily and in order: rank 0 reads inputs and hands chunks out
    /// as the loop advances, with at most about two chunks per rank ahead of it, so a huge or endless
    /// range is never materialised. Collective: every rank calls imap and then iterates the returned
    /// range (or destroys it); the call ends on every rank when rank 0's loop ends (or its range is
    /// destroyed: leaving the loop early is fine). On rank 0 the loop yields the results; on the others
    /// it yields nothing (it serves chunks until rank 0 is done), or, with ResultsOn::all_ranks, the
    /// same results as rank 0. A failed chunk yields its RemoteError once, in place of its items, on
    /// the ranks that get results. `inputs` must outlive the loop if it is an lvalue; a temporary is
    /// moved into the returned range. `chunksize` 0 adapts chunks to about 2 ms of work each, from
    /// the rate measured so far.
    template <class F, std::ranges::input_range Range>
    auto imap(F f, Range&& inputs, std::size_t chunksize = 0) {
        return make_lazy<true>(detail::mpi::Op::imap, std::move(f), std::forward<Range>(inputs), chunksize);
    }
    /// As imap, yielding chunks as they finish (in the same order on every rank that gets results).
    template <class F, std::ranges::input_range Range>
    auto imap_unordered(F f, Range&& inputs, std::size_t chunksize = 0) {
        return make_lazy<false>(detail::mpi::Op::imap_unordered, std::move(f), std::forward<Range>(inputs), chunksize);
    }

private:
    template <class Item, class Call, class Range, bool Ordered>
    class ImapSource;

    struct RankInfo {
        std::int64_t pid;
        char host[MPI_MAX_PROCESSOR_NAME];
    };

    static MPI_Comm checked(MPI_Comm comm) {
        if (!detail::mpi::mpi_initialized() || detail::mpi::mpi_finalized())
            throw StateError("mpi::Pool: MPI is not initialized (or already finalized): create an mpi::Environment first, on every rank");
        if (comm == MPI_COMM_NULL) throw ValueError("mpi::Pool: PoolOptions::comm is MPI_COMM_NULL");
        return comm;
    }

    template <class Call>
    detail::mpi::CallId next_call(detail::mpi::Op op) {
        return detail::mpi::CallId{++calls_, detail::mpi::signature_of<Call>() ^ static_cast<std::uint64_t>(op), op};
    }

    void close_on_every_rank() {
        using detail::mpi::Header;
        const Header close{calls_ + 1, 0, 0, 0, static_cast<std::uint32_t>(detail::mpi::Op::close), 0};
        std::vector<std::byte> message(sizeof close);
        if (is_root()) {
            std::memcpy(message.data(), &close, sizeof close);
            std::vector<MPI_Request> sent;
            for (int r = 1; r < size(); ++r) sent.push_back(comm_.isend(r, detail::mpi::close_tag, message));
            for (MPI_Request& req : sent) detail::mpi::Communicator::wait(req);
            return;
        }
        detail::mpi::Incoming in = comm_.probe(0, MPI_ANY_TAG);
        detail::mpi::Communicator::receive(in, message);
        Header h{};
        if (message.size() >= sizeof h) std::memcpy(&h, message.data(), sizeof h);
        if (in.tag != detail::mpi::close_tag || h.call != close.call) {
            const bool known = h.op >= 1 && h.op <= 6;
            comm_.abort_job("mpi::Pool calls out of step: this rank destroys its pool after " + std::to_string(calls_) +
                            " call(s), but rank 0 " +
                            (in.tag == detail::mpi::close_tag ? "made " + std::to_string(h.call - 1) + " call(s)"
                                                              : "is in call #" + std::to_string(h.call) + " (" +
                                                                    (known ? detail::mpi::op_name(static_cast<detail::mpi::Op>(h.op)) : "?") + ")") +
                            ". Every rank must make the same mpi::Pool calls in the same order");
        }
    }

    RemoteError remote_error(detail::mpi::Op op, const detail::mpi::Failure& f) const {
        const bool known = f.rank >= 0 && static_cast<std::size_t>(f.rank) < ranks_.size();
        std::string host = known ? std::string(ranks_[static_cast<std::size_t>(f.rank)].host) : std::string("?");
        pid_t pid = known ? static_cast<pid_t>(ranks_[static_cast<std::size_t>(f.rank)].pid) : 0;
        return RemoteError(detail::mpi::op_name(op), static_cast<std::size_t>(f.index), f.rank, std::move(host), pid, f.error.type,
                           f.error.message);
    }

    // The progress of a call on rank 0 (none elsewhere, or when not asked for).
    std::unique_ptr<detail::Progress> make_progress(std::size_t total, detail::mpi::Op op) const {
        if ((!progress_ && !on_progress_) || !is_root() || op == detail::mpi::Op::apply) return nullptr;
        return std::make_unique<detail::Progress>(progress_, on_progress_, total, detail::mpi::op_name(op));
    }
    static void finish_progress(detail::Progress* progress) {
        if (!progress) return;
        if (auto call = progress->finish()) detail::run_callback(call, "mproc::mpi::Pool");
    }

    void record(const detail::mpi::Outcome& outcome) {
        stats_.chunks.assign(outcome.chunks.begin(), outcome.chunks.end());
        stats_.items.assign(outcome.items.begin(), outcome.items.end());
        stats_.seconds = outcome.seconds;
    }

    // The pool's part of a call must end the same way on every rank. An exception there that is not
    // a task's (allocation, an MPI error under a non-fatal handler, the user's input iterator) would
    // leave one rank throwing while the others wait for it: the job is aborted instead, saying why.
    template <class Body>
    void in_step(detail::mpi::Op op, Body&& body) {
        try {
            body();
        } catch (...) {
            const detail::ExceptionText e = detail::describe_current_exception();
            comm_.abort_job(std::string("mpi::Pool::") + detail::mpi::op_name(op) + " failed outside the function (" + e.type + ": " +
                            e.message + "); the other ranks cannot be told");
        }
    }

    template <class Item, class Call, class Range>
    auto run_map(detail::mpi::Op op, Call& call, const Range& inputs, std::size_t chunksize) {
        using R = typename Call::Result;
        static_assert(Serializable<std::vector<Item>>, "mproc::mpi::Pool: the input elements are not serializable (see <mproc/codec.hpp>)");
        static_assert(Serializable<std::vector<R>>, "mproc::mpi::Pool: the function's results are not serializable (see <mproc/codec.hpp>)");
        const detail::mpi::CallId id = next_call<Call>(op);
        detail::mpi::Outcome outcome;
        std::vector<R> results;
        in_step(op, [&] {
            if (is_root())
                results = dispatch_map<Item, R>(id, call, inputs, chunksize, outcome);
            else
                serve_map<Item, R>(id, call, outcome);
        });
        record(outcome);
        if (outcome.failure) throw remote_error(op, *outcome.failure);
        if (results_on_ == ResultsOn::all_ranks && size() > 1) in_step(op, [&] { share(results); });
        return results;
    }

    template <class Item, class R, class Call, class Range>
    std::vector<R> dispatch_map(detail::mpi::CallId id, Call& call, const Range& inputs, std::size_t chunksize,
                                detail::mpi::Outcome& outcome) {
        const auto start = std::chrono::steady_clock::now();
        const std::size_t n = static_cast<std::size_t>(std::ranges::size(inputs));
        std::vector<R> results(n);
        auto progress = make_progress(n, id.op);
        detail::mpi::Dispatcher<Item, R, Call> dispatcher(comm_, id, call, root_computes_, progress.get());

        using Iterator = std::ranges::iterator_t<const Range>;
        struct Source {
            Iterator next;
            detail::ChunkPlan plan;
            std::uint64_t at = 0;
            bool more() const noexcept { return plan.more(); }
            std::uint64_t take(std::vector<Item>& items) {
                const std::size_t count = plan.next();
                detail::take_items(next, count, items);
                const std::uint64_t first = at;
                at += count;
                return first;
            }
        };
        Iterator first = std::ranges::begin(inputs);
        // Automatic chunks are capped in bytes, assuming items about the size of the first one.
        const std::size_t item_bytes = n == 0 ? 1 : encoded_size(static_cast<const Item&>(*first));
        Source source{std::move(first), detail::ChunkPlan(n, dispatcher.computing_ranks(), chunksize,
                                                          detail::chunk_cap(detail::mpi::max_chunk_bytes, item_bytes),
                                                          detail::mpi::guided_shares)};

        auto sink = [&](typename decltype(dispatcher)::Settled& s) {
            if (s.failure) {
                if (!outcome.failure || s.failure->index < outcome.failure->index) outcome.failure = std::move(s.failure);
            } else {
                std::move(s.results.begin(), s.results.end(), results.begin() + static_cast<std::ptrdiff_t>(s.first));
            }
        };
        while (source.more() || !dispatcher.idle()) dispatcher.step(source, sink);
        outcome.chunks = dispatcher.chunk_counts();
        outcome.items = dispatcher.item_counts();
        outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        dispatcher.finish(outcome, sink);
        finish_progress(progress.get());
        if (outcome.failure) results.clear();
        return results;
    }

    template <class Item, class R, class Call>
    void serve_map(detail::mpi::CallId id, Call& call, detail::mpi::Outcome& outcome) {
        detail::mpi::Server<Item, R, Call> server(comm_, id, call);
        std::vector<std::byte> unexpected;
        if (server.serve(unexpected, outcome) != detail::mpi::Server<Item, R, Call>::Event::done)
            comm_.abort_job(std::string("mpi::Pool::") + detail::mpi::op_name(id.op) + ": rank 0 sent an imap chunk during a map");
    }

    // After a successful call with ResultsOn::all_ranks: rank 0's results to every rank.
    template <class R>
    void share(std::vector<R>& results) {
        std::vector<std::byte> bytes;
        if (is_root()) bytes = encode(results);
        comm_.broadcast(bytes, 0);
        if (!is_root()) decode_into(bytes, results);
    }

    // The range is kept by reference if it is an lvalue, moved into the LazyMap if it is a temporary
    // (so `pool.imap(f, make_inputs())` is safe).
    template <bool Ordered, class F, class Range>
    auto make_lazy(detail::mpi::Op op, F f, Range&& inputs, std::size_t chunksize) {
        using Item = std::remove_cvref_t<std::ranges::range_value_t<Range>>;
        using Call = detail::mpi::ItemCall<F, Item, false>;
        static_assert(!std::is_void_v<typename Call::Raw>, "mproc::mpi::Pool::imap: the function returns void; use apply for side effects");
        static_assert(Serializable<std::vector<Item>>, "mproc::mpi::Pool::imap: the input elements are not serializable (see <mproc/codec.hpp>)");
        static_assert(Serializable<std::vector<typename Call::Result>>,
                      "mproc::mpi::Pool::imap: the function's results are not serializable (see <mproc/codec.hpp>)");
        return LazyMap<Item, Call, Range, Ordered>(*this, next_call<Call>(op), Call{std::move(f)}, std::forward<Range>(inputs),
                                                   chunksize);
    }

    detail::mpi::Communicator comm_;
    ResultsOn results_on_;
    bool root_computes_;
    bool progress_;
    detail::ProgressCallback on_progress_;
    std::vector<RankInfo> ranks_;
    std::uint64_t calls_ = 0;
    MapStats stats_;
};

/// imap's transport over the ranks (see detail/pool/lazy_range.hpp). Rank 0 reads the inputs and
/// hands chunks out, with a bounded number of chunks ahead of the loop; the others compute them and,
/// with ResultsOn::all_ranks, receive each chunk in the order rank 0 hands it out. Destroying it ends
/// the call on every rank if the loop did not: rank 0 stops handing out chunks, waits for those out
/// and tells the others; they finish what they hold and return. `Range` is the inputs' type as imap
/// received it: an lvalue reference (the range is referred to) or not (a temporary, moved in).
template <class Item, class Call, class Range, bool Ordered>
class Pool::ImapSource {
    using R = typename Call::Result;
    using Dispatcher = detail::mpi::Dispatcher<Item, R, Call>;
    using Server = detail::mpi::Server<Item, R, Call>;
    using Chunk = detail::LazyChunk<R>;
    using Chunks = detail::LazyChunks<R, Ordered>;
    static constexpr bool by_reference = std::is_lvalue_reference_v<Range>;
    using Inputs = std::conditional_t<by_reference, std::remove_reference_t<Range>, std::remove_cvref_t<Range>>;
    using Held = std::conditional_t<by_reference, Inputs*, Inputs>;

public:
    ImapSource(Pool& pool, detail::mpi::CallId id, Call call, Range&& range, std::size_t chunksize)
        : pool_(pool), id_(id), call_(std::move(call)), held_(hold(std::forward<Range>(range))), sizes_(chunksize),
          start_(detail::Clock::now()) {
        if (pool_.is_root()) {
            it_.emplace(std::ranges::begin(inputs()));
            progress_ = pool_.make_progress(total(), id_.op);
            dispatcher_.emplace(pool_.comm_, id_, call_, pool_.root_computes_, progress_.get());
        } else {
            server_.emplace(pool_.comm_, id_, call_);
        }
    }
    ImapSource(const ImapSource&) = delete;
    ImapSource& operator=(const ImapSource&) = delete;
    ~ImapSource() {
        if (done_) return;
        pool_.in_step(id_.op, [&] {
            stopped_ = true;
            finish_call();
        });
    }

    detail::Pumped pump(Chunks& chunks, detail::Deadline) {
        if (done_) return detail::Pumped::end;
        pool_.in_step(id_.op, [&] {
            if (dispatcher_)
                root_step(chunks);
            else
                serve_step(chunks);
        });
        return done_ ? detail::Pumped::end : detail::Pumped::more;
    }

private:
    // What the Dispatcher reads: the inputs, with a bounded number of chunks ahead of the loop. The
    // n-th chunk taken is the Dispatcher's chunk number n.
    struct Feed {
        ImapSource& m;
        Chunks& chunks;
        bool more() const {
            if (m.stopped_ || *m.it_ == std::ranges::end(m.inputs())) return false;
            return chunks.ahead() < 2 * static_cast<std::size_t>(m.pool_.size()) + 1;
        }
        std::uint64_t take(std::vector<Item>& items) {
            const std::size_t want = m.sizes_.next(m.dispatcher_->computing_ranks());
            items.reserve(std::min(want, detail::AdaptiveChunks::max_items));
            auto& it = *m.it_;
            for (; items.size() < want && it != std::ranges::end(m.inputs()); ++it) items.push_back(static_cast<Item>(*it));
            const std::uint64_t first = m.taken_;
            m.taken_ += items.size();
            m.out_.emplace(m.chunks_taken_++, chunks.launch(static_cast<std::size_t>(first), items.size()));
            return first;
        }
    };

    static Held hold(Range&& range) {
        if constexpr (by_reference)
            return &range;
        else
            return Held(std::move(range));
    }
    Inputs& inputs() {
        if constexpr (by_reference)
            return *held_;
        else
            return held_;
    }
    std::size_t total() {
        if constexpr (std::ranges::sized_range<Inputs>)
            return static_cast<std::size_t>(std::ranges::size(inputs()));
        else
            return 0;
    }

    void root_step(Chunks& chunks) {
        Feed feed{*this, chunks};
        if (!feed.more() && dispatcher_->idle() && chunks.in_flight() == 0) {
            finish_call();
            return;
        }
        auto sink = [&](typename Dispatcher::Settled& s) { settle(s); };
        dispatcher_->step(feed, sink);
        chunks.collect([&](Chunk& c) { share(c); });
    }

    void serve_step(Chunks& chunks) {
        detail::mpi::Outcome outcome;
        if (server_->serve(message_, outcome) == Server::Event::done) {
            pool_.record(outcome);
            done_ = true;
            return;
        }
        detail::mpi::Header h;
        std::memcpy(&h, message_.data(), sizeof h);
        auto got = decode<detail::mpi::ChunkResults<R>>(detail::mpi::payload_of(message_));
        auto chunk = chunks.launch(static_cast<std::size_t>(h.first), got.results.size());
        if (got.failure)
            chunk->fail_whole(std::make_exception_ptr(pool_.remote_error(id_.op, *got.failure)));
        else
            chunk->results = std::move(got.results);
        chunk->settle();
        chunks.collect([](Chunk&) {});
    }

    // Root: chunk `s.seq` is back (from a rank, or computed here).
    void settle(typename Dispatcher::Settled& s) {
        auto it = out_.find(s.seq);
        std::shared_ptr<Chunk> chunk = std::move(it->second);
        out_.erase(it);
        sizes_.finished(s.count);
        if (s.failure) {
            chunk->fail_whole(std::make_exception_ptr(pool_.remote_error(id_.op, *s.failure)));
            if (sharing()) failures_.emplace(chunk->first, std::move(*s.failure));
        } else {
            chunk->results = std::move(s.results);
        }
        chunk->settle();
    }

    bool sharing() const noexcept { return pool_.results_on_ == ResultsOn::all_ranks && pool_.size() > 1; }

    // Root, as chunk `c` is about to be handed out: with ResultsOn::all_ranks, it goes to every other
    // rank too, so that all yield the same sequence.
    void share(Chunk& c) {
        if (!sharing()) return;
        detail::mpi::ChunkResults<R> payload;
        if (auto f = failures_.find(c.first); f != failures_.end()) {
            payload.failure = std::move(f->second);
            failures_.erase(f);
        } else {
            payload.results = c.results;
        }
        std::vector<std::byte> bytes;
        auto h = dispatcher_->header(handed_out_++, c.first);
        try {
            detail::mpi::pack(h, payload, bytes, detail::mpi::op_name(id_.op));
        } catch (...) { // too large for one message: every rank gets the error instead
            payload.failure = detail::mpi::current_failure(c.first, 0);
            payload.results.clear();
            c.fail_whole(std::make_exception_ptr(pool_.remote_error(id_.op, *payload.failure)));
            detail::mpi::pack(h, payload, bytes, detail::mpi::op_name(id_.op));
        }
        dispatcher_->send_to_others(detail::mpi::ready_tag, std::move(bytes));
    }

    // Root: waits for what is out, tells the others the call is over. Others: serve until told.
    void finish_call() {
        detail::mpi::Outcome outcome;
        if (dispatcher_) {
            auto discard = [](typename Dispatcher::Settled&) {};
            outcome.chunks = dispatcher_->chunk_counts();
            outcome.items = dispatcher_->item_counts();
            outcome.seconds = std::chrono::duration<double>(detail::Clock::now() - start_).count();
            // Only chunks the loop will never yield can still be out here (it was left early).
            dispatcher_->finish(outcome, discard);
            if (!stopped_) finish_progress(progress_.get());
        } else {
            while (server_->serve(message_, outcome) != Server::Event::done) {
            }
        }
        pool_.record(outcome);
        done_ = true;
    }

    Pool& pool_;
    detail::mpi::CallId id_;
    Call call_;
    Held held_;
    std::optional<std::ranges::iterator_t<Inputs>> it_; // rank 0 only
    detail::AdaptiveChunks sizes_;
    detail::Clock::time_point start_;
    std::unique_ptr<detail::Progress> progress_; // rank 0 only, if asked for
    std::optional<Dispatcher> dispatcher_;
    std::optional<Server> server_;
    std::unordered_map<std::uint64_t, std::shared_ptr<Chunk>> out_;     // by chunk number: launched, not back
    std::unordered_map<std::size_t, detail::mpi::Failure> failures_;     // by first item: to share
    std::vector<std::byte> message_;
    std::uint64_t taken_ = 0;
    std::uint64_t chunks_taken_ = 0;
    std::uint64_t handed_out_ = 0;
    bool stopped_ = false;
    bool done_ = false;
};

/// The range imap and imap_unordered return: iterate it once, on every rank (or destroy it). Its
/// loop (begin, end, finished and the iterator, whose dereference throws a failed chunk's
/// RemoteError) is the one every pool's imap shares (detail/pool/lazy_range.hpp); `finished()` is
/// true once every result has been handed out and the call has ended on this rank.
template <class Item, class Call, class Range, bool Ordered>
class Pool::LazyMap : public detail::LazyRange<typename Call::Result, Pool::ImapSource<Item, Call, Range, Ordered>, Ordered> {
public:
    LazyMap(Pool& pool, detail::mpi::CallId id, Call call, Range&& range, std::size_t chunksize)
        : LazyMap::LazyRange(std::in_place, pool, id, std::move(call), std::forward<Range>(range), chunksize) {}
};

} // namespace mproc::mpi
