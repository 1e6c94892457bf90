// A MessageRing built in memory the test owns (as a NamedQueue builds one in its segment), so that
// tests and fuzzers can overwrite its header and data bytes the way a misbehaving process could.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include <mproc/detail/message_ring.hpp>

namespace test {

class RingInBuffer {
public:
    explicit RingInBuffer(std::size_t capacity_bytes, std::size_t maxsize = 0, const char* owner = "Queue")
        : bytes_(mproc::detail::MessageRing::footprint(capacity_bytes, owner)),
          capacity_(mproc::detail::MessageRing::rounded_capacity(capacity_bytes, owner)),
          memory_(static_cast<std::byte*>(::operator new(bytes_, std::align_val_t{mproc::detail::MessageRing::alignment}))),
          ring_(std::make_unique<mproc::detail::MessageRing>(mproc::detail::Placement::at(memory_, true), capacity_bytes, maxsize, owner)) {}
    ~RingInBuffer() {
        ring_.reset();
        ::operator delete(memory_, std::align_val_t{mproc::detail::MessageRing::alignment});
    }
    RingInBuffer(const RingInBuffer&) = delete;
    RingInBuffer& operator=(const RingInBuffer&) = delete;

    mproc::detail::MessageRing& ring() noexcept { return *ring_; }
    /// The whole placement: the ring's header, then its data.
    void* memory() noexcept { return memory_; }
    std::span<std::byte> header() noexcept { return {memory_, bytes_ - capacity_}; }
    std::span<std::byte> data() noexcept { return {memory_ + (bytes_ - capacity_), capacity_}; }

private:
    std::size_t bytes_;
    std::size_t capacity_;
    std::byte* memory_;
    std::unique_ptr<mproc::detail::MessageRing> ring_;
};

} // namespace test
