// The machinery under mproc::mpi::Pool: how one collective call (map, starmap, apply, imap) hands
// chunks out from rank 0 and brings the results back.
//
// Protocol, on the pool's own communicator (a duplicate of the user's). Rank 0, the root, reads the
// inputs and hands out chunks; every other rank serves:
//   TASK   root -> rank   [Header][codec: std::vector<Item>]          a chunk to compute
//   RESULT rank -> root   [Header][codec: std::vector<R> or Failure]  its results, or its first error
//   READY  root -> rank   [Header][codec: ChunkResults<R>]            imap with results on all ranks:
//                                                                     a chunk in the order rank 0 yields it
//   DONE   root -> rank   [Header][codec: Outcome]                    the call is over (first error, stats)
//   CLOSE  root -> rank   [Header]                                    the pool is being destroyed
// Load balancing is dynamic: a rank is given a new chunk when it returns one, and holds at most two
// (one to compute, one waiting, so that it never idles for a round trip) — one until its first result,
// so that a slow rank is not handed two big first chunks. The root computes chunks too, one item batch
// at a time, answering the other ranks between batches (batches sized to about 20-200 µs of work).
// The root sends with MPI_Isend, never a blocking send: a blocking send to a rank that is itself
// blocked sending its result to the root would deadlock once messages outgrow MPI's eager limit.
//
// Every message carries the call's number and a fingerprint of its types, so a rank that makes a
// different pool call than the root (a bug: pool calls are collective) is caught at its first message
// and the job is aborted with a message saying so, rather than decoding one call's bytes as another's.
#pragma once

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "../codec/bytes.hpp"
#include "../demangle.hpp"
#include "../hash.hpp"
#include "../pool/calls.hpp"
#include "../pool/chunk_plan.hpp"
#include "../progress.hpp"
#include "comm.hpp"

namespace mproc::detail::mpi {

enum Tag : int { task_tag = 1, result_tag = 2, ready_tag = 3, done_tag = 4, close_tag = 5 };

enum class Op : std::uint32_t { map = 1, starmap, apply, imap, imap_unordered, close };

inline const char* op_name(Op op) {
    switch (op) {
    case Op::map: return "map";
    case Op::starmap: return "starmap";
    case Op::apply: return "apply";
    case Op::imap: return "imap";
    case Op::imap_unordered: return "imap_unordered";
    case Op::close: return "~Pool";
    }
    return "?";
}

/// One collective call as a rank sees it: the pool's call counter, and a fingerprint of the call's
/// types. Both must agree on every rank.
struct CallId {
    std::uint64_t number = 0;
    std::uint64_t signature = 0;
    Op op = Op::map;
};

struct Header {
    std::uint64_t call;
    std::uint64_t signature;
    std::uint64_t seq;   // the chunk's number within the call, in input order
    std::uint64_t first; // the index of its first item within the call
    std::uint32_t op;
    std::uint32_t failed; // RESULT: the payload is a Failure
};
// Copied byte for byte into MPI messages between ranks: no padding, the same offsets on every rank.
static_assert(std::is_trivially_copyable_v<Header> && std::is_standard_layout_v<Header> && sizeof(Header) == 40 &&
              offsetof(Header, op) == 32);

/// A task's exception, where it happened: travels to every rank so that all throw the same error.
/// The exception itself is described as every pool describes one (ExceptionText).
struct Failure {
    std::uint64_t index = 0; // the failing item's index within the call
    std::int32_t rank = 0;
    ExceptionText error;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(index, rank, error);
    }
};

/// What DONE tells every rank: the call's first failure (lowest index) and who computed what.
struct Outcome {
    std::optional<Failure> failure;
    std::vector<std::uint64_t> chunks; // per rank
    std::vector<std::uint64_t> items;  // per rank
    double seconds = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(failure, chunks, items, seconds);
    }
};

/// One imap chunk as READY carries it.
template <class R>
struct ChunkResults {
    std::optional<Failure> failure;
    std::vector<R> results;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(failure, results);
    }
};

/// The exception being handled, as a Failure of item `index` on `rank`. Call inside a catch block.
inline Failure current_failure(std::uint64_t index, int rank) { return Failure{index, rank, describe_current_exception()}; }

/// FNV-1a of a type's name: equal on every rank of the same program (lambdas included, whose
/// mangled names are stable), different for different function, item or result types.
template <class T>
std::uint64_t signature_of() {
    return fnv1a(typeid(T).name());
}

/// [header][encoded payload] into `out`, reusing its capacity. Throws ValueError beyond MPI's 2 GiB
/// per message (before allocating), SerializationError for a valueless variant.
template <class T>
void pack(const Header& h, const T& payload, std::vector<std::byte>& out, const char* what) {
    const std::size_t size = sizeof h + codec::encoded_size(payload);
    byte_count(size, what);
    out.resize(size);
    std::memcpy(out.data(), &h, sizeof h);
    [[maybe_unused]] std::byte* end = codec::encode_into(payload, out.data() + sizeof h);
    assert(end == out.data() + out.size());
}

inline std::span<const std::byte> payload_of(std::span<const std::byte> message) { return message.subspan(sizeof(Header)); }

/// The function of a call, as every rank holds it: f on each item (Star: f(std::get<0>(item), ...)),
/// a void result as std::monostate (detail/pool/calls.hpp).
template <class F, class Item, bool Star>
struct ItemCall {
    F f;
    using Raw = CallResult<F, Item, Star>;
    using Result = Returned<Raw>;
    Result operator()(Item& item) { return call_returned<F, Item, Star>(f, item); }
};

struct NoPause {
    void operator()() const noexcept {}
};

/// Computes `items` into `out` and returns nullopt, or stops at the first exception and returns it
/// as the Failure of its index in the call. `pause` runs between batches of items; the batch size
/// adapts so that batches take about 20-200 µs, which keeps the root answering other ranks promptly
/// without paying a clock read per item.
template <class Call, class Item, class R, class Pause>
std::optional<Failure> run_chunk(Call& call, std::vector<Item>& items, std::vector<R>& out, std::uint64_t first, int rank,
                                 Pause&& pause) {
    using Clock = std::chrono::steady_clock;
    constexpr bool pauses = !std::is_same_v<std::remove_cvref_t<Pause>, NoPause>;
    std::size_t batch = 1, since = 0;
    auto last = Clock::now();
    for (std::size_t i = 0; i < items.size(); ++i) {
        try {
            out.push_back(call(items[i]));
        } catch (...) {
            return current_failure(first + i, rank);
        }
        if constexpr (pauses) {
            if (++since == batch) {
                since = 0;
                auto spent = Clock::now() - last;
                if (spent < std::chrono::microseconds(20))
                    batch *= 2;
                else if (spent > std::chrono::microseconds(200) && batch > 1)
                    batch /= 2;
                pause();
                last = Clock::now();
            }
        }
    }
    return std::nullopt;
}

/// mpi::Pool's guided chunks (ChunkPlan's `shares`): a quarter of the remaining work per rank rather
/// than the fork-based Pool's half, as ranks may be unequal machines.
inline constexpr std::size_t guided_shares = 4;

/// The most bytes of encoded items an automatic chunk holds (chunk_cap): 16 MiB.
inline constexpr std::size_t max_chunk_bytes = std::size_t{16} << 20;

/// The root's side of a call. Source: `bool more()` and `std::uint64_t take(std::vector<Item>&)`
/// (fills a chunk, returns its first index). Sink: `void(Settled&)`, may move the results out.
/// `progress` (may be null) counts the items as they settle, and those of the root's own chunk as
/// it computes them.
template <class Item, class R, class Call>
class Dispatcher {
public:
    struct Settled {
        std::uint64_t seq = 0;
        std::uint64_t first = 0;
        std::size_t count = 0;
        int rank = 0;
        std::vector<R> results;
        std::optional<Failure> failure;
    };

    Dispatcher(const Communicator& comm, CallId id, Call& call, bool root_computes, Progress* progress = nullptr)
        : comm_(comm), id_(id), call_(call), root_computes_(root_computes || comm.size() == 1), progress_(progress),
          in_flight_(static_cast<std::size_t>(comm.size())), answered_(static_cast<std::size_t>(comm.size())),
          chunks_(static_cast<std::size_t>(comm.size())), items_(static_cast<std::size_t>(comm.size())) {
        assert(comm.rank() == 0);
    }
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    /// How many ranks compute (the root counts when it computes too).
    int computing_ranks() const noexcept { return comm_.size() - (root_computes_ ? 0 : 1); }
    bool idle() const noexcept { return outstanding_.empty(); }
    std::size_t outstanding() const noexcept { return outstanding_.size(); }

    /// One round of progress: tops up every rank, collects the results that arrived, then computes a
    /// chunk on the root if there is one to take, or else blocks until one result arrives.
    template <class Source, class Sink>
    void step(Source& source, Sink& sink) {
        for (int w = 1; w < comm_.size(); ++w) top_up(w, source, sink);
        poll(source, sink);
        if (root_computes_ && source.more())
            compute_own(source, sink);
        else if (!idle())
            receive(comm_.probe(MPI_ANY_SOURCE, result_tag), source, sink);
    }

    /// Sends `message` to every other rank with `tag`, without blocking (kept alive until sent).
    void send_to_others(int tag, std::vector<std::byte> message) {
        auto shared = std::make_shared<const std::vector<std::byte>>(std::move(message));
        for (int w = 1; w < comm_.size(); ++w) sends_.push_back({comm_.isend(w, tag, *shared), shared});
    }

    /// Waits for every chunk still out (handing each to `sink`), then ends the call on every other
    /// rank with `outcome` (DONE), and waits until everything sent has gone.
    template <class Sink>
    void finish(const Outcome& outcome, Sink& sink) {
        struct Dry {
            bool more() const noexcept { return false; }
            std::uint64_t take(std::vector<Item>&) { return 0; }
        } dry;
        while (!idle()) receive(comm_.probe(MPI_ANY_SOURCE, result_tag), dry, sink);
        std::vector<std::byte> done;
        pack(header(0, 0), outcome, done, "mpi::Pool (end of call)");
        send_to_others(done_tag, std::move(done));
        for (auto& s : sends_) Communicator::wait(s.request);
        sends_.clear();
    }

    /// Chunks and items each rank was given so far.
    std::vector<std::uint64_t> chunk_counts() const { return chunks_; }
    std::vector<std::uint64_t> item_counts() const { return items_; }

    Header header(std::uint64_t seq, std::uint64_t first) const {
        return Header{id_.number, id_.signature, seq, first, static_cast<std::uint32_t>(id_.op), 0};
    }

private:
    struct Out {
        std::uint64_t first;
        std::size_t count;
        int rank;
    };
    struct PendingSend {
        MPI_Request request;
        std::shared_ptr<const std::vector<std::byte>> bytes;
    };

    // A rank holds at most two chunks, and one until it has answered once.
    template <class Source, class Sink>
    void top_up(int w, Source& source, Sink& sink) {
        const auto wi = static_cast<std::size_t>(w);
        while (in_flight_[wi] < (answered_[wi] ? 2u : 1u) && source.more()) {
            send_items_.clear();
            const std::uint64_t first = source.take(send_items_);
            const std::uint64_t seq = next_seq_++;
            const std::size_t count = send_items_.size();
            auto bytes = std::make_shared<std::vector<std::byte>>();
            try {
                pack(header(seq, first), send_items_, *bytes, op_label());
            } catch (...) { // cannot be sent (too large): the chunk fails here, on the root
                settle_here(seq, first, count, current_failure(first, 0), sink);
                continue;
            }
            sends_.push_back({comm_.isend(w, task_tag, *bytes), std::move(bytes)});
            outstanding_.emplace(seq, Out{first, count, w});
            ++in_flight_[wi];
            ++chunks_[wi];
            items_[wi] += count;
        }
    }

    template <class Source, class Sink>
    void poll(Source& source, Sink& sink) {
        while (auto in = comm_.try_probe(MPI_ANY_SOURCE, result_tag)) receive(*in, source, sink);
        // Completed sends free their buffers; MPI_Test also drives MPI's progress for the others.
        std::erase_if(sends_, [](PendingSend& s) { return Communicator::test(s.request); });
    }

    template <class Source, class Sink>
    void receive(Incoming in, Source& source, Sink& sink) {
        Communicator::receive(in, buffer_);
        if (buffer_.size() < sizeof(Header)) comm_.abort_job("mpi::Pool: a result message too short to be one (" + std::to_string(buffer_.size()) + " bytes)");
        Header h;
        std::memcpy(&h, buffer_.data(), sizeof h);
        auto it = outstanding_.find(h.seq);
        if (h.call != id_.number || h.signature != id_.signature || it == outstanding_.end() || it->second.rank != in.source)
            comm_.abort_job("mpi::Pool::" + std::string(op_name(id_.op)) + ": rank " + std::to_string(in.source) +
                            " answered a chunk this call did not give it (call " + std::to_string(h.call) + ", chunk " +
                            std::to_string(h.seq) + ")");
        const Out out = it->second;
        outstanding_.erase(it);
        const auto wi = static_cast<std::size_t>(in.source);
        --in_flight_[wi];
        answered_[wi] = true;

        received_.seq = h.seq;
        received_.first = out.first;
        received_.count = out.count;
        received_.rank = in.source;
        received_.failure.reset();
        received_.results.clear();
        try {
            if (h.failed)
                received_.failure = codec::decode<Failure>(payload_of(buffer_));
            else
                codec::decode_into(payload_of(buffer_), received_.results);
        } catch (...) {
            received_.failure = current_failure(out.first, in.source);
        }
        deliver(received_, sink);
        top_up(in.source, source, sink);
    }

    template <class Source, class Sink>
    void compute_own(Source& source, Sink& sink) {
        own_items_.clear();
        const std::uint64_t first = source.take(own_items_);
        const std::uint64_t seq = next_seq_++;
        ++chunks_[0];
        items_[0] += own_items_.size();
        own_.results.clear();
        own_.results.reserve(own_items_.size());
        std::optional<Failure> failure;
        if (comm_.size() == 1 && !progress_)
            failure = run_chunk(call_, own_items_, own_.results, first, 0, NoPause{});
        else
            failure = run_chunk(call_, own_items_, own_.results, first, 0, [&] {
                if (comm_.size() > 1) poll(source, sink);
                show_running(own_.results.size());
            });
        own_.seq = seq;
        own_.first = first;
        own_.count = own_items_.size();
        own_.rank = 0;
        own_.failure = std::move(failure);
        deliver(own_, sink);
    }

    template <class Sink>
    void settle_here(std::uint64_t seq, std::uint64_t first, std::size_t count, Failure failure, Sink& sink) {
        Settled s{seq, first, count, 0, {}, std::move(failure)};
        ++chunks_[0];
        items_[0] += count;
        deliver(s, sink);
    }

    // A chunk settled: to the sink, and counted by the progress.
    template <class Sink>
    void deliver(Settled& s, Sink& sink) {
        const std::size_t count = s.count;
        sink(s);
        if (!progress_) return;
        progress_->settled(count);
        show(0);
    }

    // The progress with `running` items of the root's own chunk done (every 10 ms at most).
    void show_running(std::size_t running) {
        if (!progress_) return;
        auto now = Clock::now();
        if (now - last_shown_ < std::chrono::milliseconds(10)) return;
        last_shown_ = now;
        show(running);
    }

    void show(std::size_t running) {
        if (auto call = progress_->tick(running)) run_callback(call, "mproc::mpi::Pool");
    }

    const char* op_label() const noexcept { return op_name(id_.op); }

    const Communicator& comm_;
    CallId id_;
    Call& call_;
    bool root_computes_;
    Progress* progress_;
    Clock::time_point last_shown_{};
    std::vector<unsigned> in_flight_;
    std::vector<bool> answered_;
    std::vector<std::uint64_t> chunks_;
    std::vector<std::uint64_t> items_;
    std::unordered_map<std::uint64_t, Out> outstanding_;
    std::vector<PendingSend> sends_;
    std::uint64_t next_seq_ = 0;
    std::vector<Item> send_items_;
    std::vector<Item> own_items_;
    std::vector<std::byte> buffer_;
    Settled received_;
    Settled own_;
};

/// A non-root rank's side of a call: computes the chunks the root sends until the root sends a READY
/// chunk or ends the call.
template <class Item, class R, class Call>
class Server {
public:
    enum class Event { ready, done };

    Server(const Communicator& comm, CallId id, Call& call) : comm_(comm), id_(id), call_(call) { assert(comm.rank() != 0); }

    /// Serves TASKs until a READY chunk arrives (`ready` then holds its message; decode payload_of)
    /// or DONE does (`outcome` then holds the call's end).
    Event serve(std::vector<std::byte>& ready, Outcome& outcome) {
        for (;;) {
            Incoming in = comm_.probe(0, MPI_ANY_TAG);
            std::vector<std::byte>& message = in.tag == ready_tag ? ready : buffer_;
            Communicator::receive(in, message);
            check_header(message, in.tag);
            switch (in.tag) {
            case task_tag:
                run(message);
                break;
            case ready_tag:
                return Event::ready;
            case done_tag:
                try {
                    outcome = codec::decode<Outcome>(payload_of(message));
                } catch (const std::exception& e) {
                    comm_.abort_job(std::string("mpi::Pool: the end-of-call message does not decode: ") + e.what());
                }
                return Event::done;
            default:
                comm_.abort_job("mpi::Pool: unexpected message tag " + std::to_string(in.tag));
            }
        }
    }

private:
    void check_header(const std::vector<std::byte>& message, int tag) const {
        if (message.size() < sizeof(Header))
            comm_.abort_job("mpi::Pool: a message too short to be one (" + std::to_string(message.size()) + " bytes, tag " + std::to_string(tag) + ")");
        Header h;
        std::memcpy(&h, message.data(), sizeof h);
        if (h.call == id_.number && h.signature == id_.signature) return;
        std::string theirs;
        if (h.op == static_cast<std::uint32_t>(Op::close))
            theirs = "is destroying its pool after " + std::to_string(h.call - 1) + " call(s)";
        else
            theirs = "is in call #" + std::to_string(h.call) + " (" + (h.op >= 1 && h.op <= 6 ? op_name(static_cast<Op>(h.op)) : "?") +
                     (h.call == id_.number ? ", with other function, item or result types)" : ")");
        comm_.abort_job("mpi::Pool calls out of step: this rank is in call #" + std::to_string(id_.number) + " (" +
                        op_name(id_.op) + ") but rank 0 " + theirs +
                        ". Every rank must make the same mpi::Pool calls in the same order, with the same function");
    }

    void run(std::span<const std::byte> message) {
        Header h;
        std::memcpy(&h, message.data(), sizeof h);
        results_.clear();
        std::optional<Failure> failure;
        try {
            codec::decode_into(payload_of(message), items_);
            results_.reserve(items_.size());
        } catch (...) {
            failure = current_failure(h.first, comm_.rank());
        }
        if (!failure) failure = run_chunk(call_, items_, results_, h.first, comm_.rank(), NoPause{});
        Header reply{h.call, h.signature, h.seq, h.first, h.op, 0};
        if (!failure) {
            try {
                pack(reply, results_, reply_, op_name(id_.op));
            } catch (...) {
                failure = current_failure(h.first, comm_.rank());
            }
        }
        if (failure) {
            reply.failed = 1;
            pack(reply, *failure, reply_, op_name(id_.op));
        }
        // Blocking is safe: the root never blocks in a send, and receives whenever it waits.
        comm_.send(0, result_tag, reply_);
    }

    const Communicator& comm_;
    CallId id_;
    Call& call_;
    std::vector<std::byte> buffer_;
    std::vector<std::byte> reply_;
    std::vector<Item> items_;
    std::vector<R> results_;
};

} // namespace mproc::detail::mpi
