// libFuzzer target: the shared queue's framing (detail::MessageRing). Two modes, chosen by the first
// byte: (0) a sequence of puts, fragmented puts and gets of fuzzer-chosen sizes, checked against a
// model FIFO; (1) records put, then the ring's shared memory overwritten with fuzzer bytes, as by a
// misbehaving peer: get must deliver, throw SerializationError, or report empty — never crash.
#include <mproc/detail/message_ring.hpp>

#include "../ring_in_buffer.hpp"

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

namespace {

using mproc::detail::Deadline;
using mproc::detail::MessageRing;

std::vector<std::byte> payload(std::size_t size, std::uint8_t seed) {
    std::vector<std::byte> v(size);
    for (std::size_t i = 0; i < size; ++i) v[i] = std::byte(static_cast<std::uint8_t>(seed + i * 7));
    return v;
}

bool get(MessageRing& ring, std::vector<std::byte>& out) {
    return ring.get([&](std::span<const std::byte> b) { out.assign(b.begin(), b.end()); }, Deadline::after(std::chrono::seconds(0)));
}

void operations(const std::uint8_t* d, std::size_t n) {
    MessageRing ring(4096, 0, "fuzz");
    std::deque<std::vector<std::byte>> model;
    for (std::size_t i = 0; i + 2 < n; i += 3) {
        std::size_t size = (std::size_t(d[i + 1]) << 8 | d[i + 2]) % 6000;
        switch (d[i] % 3) {
        case 0:
            if (size <= ring.max_record_payload()) {
                auto p = payload(size, d[i]);
                if (ring.put(size, [&](std::byte* out) { std::copy(p.begin(), p.end(), out); }, Deadline::after(std::chrono::seconds(0))))
                    model.push_back(std::move(p));
            }
            break;
        case 1:
            if (model.empty() && size <= 3000) { // once started, a fragmented put waits for room: only into an empty ring
                auto p = payload(size, d[i]);
                if (ring.put_fragmented(p, Deadline::after(std::chrono::seconds(0)))) model.push_back(std::move(p));
            }
            break;
        default: {
            std::vector<std::byte> out;
            bool got = get(ring, out);
            if (got != !model.empty()) __builtin_trap();
            if (got) {
                if (out != model.front()) __builtin_trap();
                model.pop_front();
            }
        }
        }
    }
}

void corruption(const std::uint8_t* d, std::size_t n) {
    test::RingInBuffer placed(4096, 0, "fuzz");
    MessageRing& ring = placed.ring();
    for (std::size_t k = 0; k < 8; ++k) {
        auto p = payload(40 * k, static_cast<std::uint8_t>(k));
        ring.put(p.size(), [&](std::byte* out) { std::copy(p.begin(), p.end(), out); }, Deadline::after(std::chrono::seconds(0)));
    }
    auto data = placed.data();
    std::memcpy(data.data(), d, std::min(n, data.size()));
    for (int k = 0; k < 16; ++k) {
        std::vector<std::byte> out;
        try {
            if (!get(ring, out)) break;
        } catch (const mproc::SerializationError&) {
            break;
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* d, std::size_t n) {
    if (n < 1) return 0;
    if (d[0] & 1)
        corruption(d + 1, n - 1);
    else
        operations(d + 1, n - 1);
    return 0;
}
