// pipe_bench.cpp — round trip through mproc::Pipe<T>: the benchmark thread sends a message to a child
// process, which sends it straight back. A duplex Pipe against the same round trip written raw over a
// Unix stream socketpair(2), the transport it is made of; two one-way Pipes (Pipe<T>(false), over
// pipe(2)s) against the same over two raw pipe(2)s. Each pair isolates what mproc adds (framing,
// encoding, buffering, and for a one-way Pipe's send the SIGPIPE mask around write(2)).
//
// Reference numbers on a 2-core VM of the kind this is developed on: a raw pipe round trip ~33 us;
// Python's multiprocessing Pipe send+recv round trip ~38 us.
//
// The payload is std::array<std::byte, N> (one memcpy through the codec); it carries a sequence
// number that the parent checks on the way back. The child is started with a raw fork() on every
// side, echoes until end-of-file, and is reaped. One iteration is one round trip, in real time (the
// parent sleeps while the child works).
//
// Both processes are pinned to the CPU the benchmark thread is on, so a round trip is two wake-ups
// and two context switches on one CPU. Unpinned, the scheduler runs the pair either that way or on two
// CPUs, where on a VM each wake-up of the idle other vCPU costs ~15-20 us (the ~33 us reference
// figure), and it switches between the two from one repetition to the next: the two sides of a pair
// could then be measured in different regimes, and the ratio would mean nothing.
#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <mproc/pipe.hpp>

#include "bench_support.hpp"

namespace {

template <std::size_t N>
using Payload = std::array<std::byte, N>;

/// Pins the calling thread to the CPU it is running on (children forked meanwhile inherit that) and
/// restores its former affinity when destroyed. Does nothing if the affinity cannot be read or set.
class PinToThisCpu {
public:
    PinToThisCpu() {
        if (::sched_getaffinity(0, sizeof saved_, &saved_) != 0) return;
        const int cpu = ::sched_getcpu();
        if (cpu < 0) return;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(static_cast<std::size_t>(cpu), &one); // glibc's macros take size_t
        pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
    }
    ~PinToThisCpu() {
        if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
    }
    PinToThisCpu(const PinToThisCpu&) = delete;
    PinToThisCpu& operator=(const PinToThisCpu&) = delete;

private:
    cpu_set_t saved_{};
    bool pinned_ = false;
};

/// The echo child. finish(), called once the parent has closed its ends (the child then sees
/// end-of-file and leaves), reaps it and reports how it ended; if finish() is never reached, the
/// destructor kills and reaps it.
class EchoChild {
public:
    template <class Body>
    EchoChild(benchmark::State& state, Body&& body) : pid_(mproc_bench::fork_helper(std::forward<Body>(body))) {
        if (pid_ < 0) state.SkipWithError(("fork failed: " + std::string(std::strerror(errno))).c_str());
    }
    ~EchoChild() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            mproc_bench::reap(pid_);
        }
    }
    EchoChild(const EchoChild&) = delete;
    EchoChild& operator=(const EchoChild&) = delete;
    explicit operator bool() const noexcept { return pid_ > 0; }

    /// Call after closing the parent's ends: the child then sees end-of-file and leaves with 0.
    void finish(benchmark::State& state) {
        const int status = mproc_bench::reap(pid_);
        pid_ = -1;
        if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("the echo child failed");
    }

private:
    pid_t pid_;
};

void stamp(std::byte* message, std::uint64_t seq) noexcept { std::memcpy(message, &seq, sizeof seq); }
std::uint64_t stamp_of(const std::byte* message) noexcept {
    std::uint64_t seq;
    std::memcpy(&seq, message, sizeof seq);
    return seq;
}

// ---- mproc::Pipe ------------------------------------------------------------------------------------

template <std::size_t N>
void mproc_round_trip(benchmark::State& state) {
    PinToThisCpu pin;
    try {
        auto [mine, theirs] = mproc::Pipe<Payload<N>>();
        EchoChild child(state, [&] {
            mine.close();
            for (;;) {
                Payload<N> m;
                try {
                    m = theirs.recv();
                } catch (const mproc::EOFError&) {
                    return;
                }
                theirs.send(m);
            }
        });
        if (!child) return;
        theirs.close();
        Payload<N> m{};
        std::uint64_t seq = 0;
        for (auto _ : state) {
            stamp(m.data(), ++seq);
            mine.send(m);
            const Payload<N> back = mine.recv();
            if (stamp_of(back.data()) != seq) {
                state.SkipWithError("the echo is not the message sent");
                break;
            }
        }
        mine.close();
        child.finish(state);
    } catch (const std::exception& e) {
        state.SkipWithError((std::string("mproc::Pipe: ") + e.what()).c_str());
    }
}

/// The same round trip over two one-way Pipes (Pipe<T>(false), over pipe(2)s): the parent sends on
/// `down`, the child echoes on `up`. Its baseline is raw_pipe2_round_trip, the same two pipes raw.
template <std::size_t N>
void mproc_oneway_round_trip(benchmark::State& state) {
    PinToThisCpu pin;
    try {
        auto down = mproc::Pipe<Payload<N>>(false);
        auto up = mproc::Pipe<Payload<N>>(false);
        auto& down_rx = down.first;
        auto& down_tx = down.second;
        auto& up_rx = up.first;
        auto& up_tx = up.second;
        EchoChild child(state, [&] {
            down_tx.close();
            up_rx.close();
            for (;;) {
                Payload<N> m;
                try {
                    m = down_rx.recv();
                } catch (const mproc::EOFError&) {
                    return;
                }
                up_tx.send(m);
            }
        });
        if (!child) return;
        down_rx.close();
        up_tx.close();
        Payload<N> m{};
        std::uint64_t seq = 0;
        for (auto _ : state) {
            stamp(m.data(), ++seq);
            down_tx.send(m);
            const Payload<N> back = up_rx.recv();
            if (stamp_of(back.data()) != seq) {
                state.SkipWithError("the echo is not the message sent");
                break;
            }
        }
        down_tx.close();
        up_rx.close();
        child.finish(state);
    } catch (const std::exception& e) {
        state.SkipWithError((std::string("mproc::Pipe(false): ") + e.what()).c_str());
    }
}

// ---- raw: write(2) the payload, read(2) it back -------------------------------------------------------

/// Writes all of `n` bytes; false on error.
bool write_all(int fd, const std::byte* p, std::size_t n) noexcept {
    while (n > 0) {
        const ssize_t k = ::write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

/// Reads exactly `n` bytes; false on error or end-of-file.
bool read_all(int fd, std::byte* p, std::size_t n) noexcept {
    while (n > 0) {
        const ssize_t k = ::read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

/// One process's descriptors: where it reads and where it writes (one socket may be both).
struct Ends {
    int read, write;
    void close() const noexcept {
        ::close(read);
        if (write != read) ::close(write);
    }
};

/// The round trip: the parent writes N bytes to `parent.write`, the child echoes them from
/// `child.read` to `child.write`, the parent reads them back from `parent.read`.
template <std::size_t N>
void raw_round_trip(benchmark::State& state, Ends parent, Ends child_ends) {
    PinToThisCpu pin;
    EchoChild child(state, [&] {
        parent.close();
        Payload<N> m;
        while (read_all(child_ends.read, m.data(), N))
            if (!write_all(child_ends.write, m.data(), N)) throw std::runtime_error("write");
    });
    child_ends.close();
    if (child) {
        Payload<N> m{}, back;
        std::uint64_t seq = 0;
        for (auto _ : state) {
            stamp(m.data(), ++seq);
            if (!write_all(parent.write, m.data(), N) || !read_all(parent.read, back.data(), N) ||
                stamp_of(back.data()) != seq) {
                state.SkipWithError("the echo failed or is not the message sent");
                break;
            }
        }
    }
    parent.close(); // the child sees end-of-file and leaves
    if (child) child.finish(state);
}

template <std::size_t N>
void raw_socketpair_round_trip(benchmark::State& state) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        state.SkipWithError("socketpair failed");
        return;
    }
    raw_round_trip<N>(state, {sv[0], sv[0]}, {sv[1], sv[1]});
}

template <std::size_t N>
void raw_pipe2_round_trip(benchmark::State& state) {
    int down[2], up[2]; // {read end, write end} of parent -> child and child -> parent
    if (::pipe2(down, O_CLOEXEC) < 0) {
        state.SkipWithError("pipe2 failed");
        return;
    }
    if (::pipe2(up, O_CLOEXEC) < 0) {
        Ends{down[0], down[1]}.close();
        state.SkipWithError("pipe2 failed");
        return;
    }
    raw_round_trip<N>(state, {up[0], down[1]}, {down[0], up[1]});
}

#define MPROC_PIPE_CASE(fn, n, label) \
    BENCHMARK_TEMPLATE(fn, n)->Name(label)->UseRealTime()->Unit(benchmark::kMicrosecond)

MPROC_PIPE_CASE(mproc_round_trip, 64, "mproc/Pipe_round_trip/64");
MPROC_PIPE_CASE(raw_socketpair_round_trip, 64, "raw/Pipe_round_trip/64");
MPROC_PIPE_CASE(raw_pipe2_round_trip, 64, "raw_pipe2/Pipe_round_trip/64");
MPROC_PIPE_CASE(mproc_round_trip, 4096, "mproc/Pipe_round_trip/4096");
MPROC_PIPE_CASE(raw_socketpair_round_trip, 4096, "raw/Pipe_round_trip/4096");
MPROC_PIPE_CASE(raw_pipe2_round_trip, 4096, "raw_pipe2/Pipe_round_trip/4096");
MPROC_PIPE_CASE(mproc_oneway_round_trip, 64, "mproc/Pipe_oneway_round_trip/64");
MPROC_PIPE_CASE(mproc_oneway_round_trip, 4096, "mproc/Pipe_oneway_round_trip/4096");

} // namespace
