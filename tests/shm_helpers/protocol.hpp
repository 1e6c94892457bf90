// What shared_memory_test and its helper program agree on: the names under a test's tag, the
// messages of the queue test, and the helper's exit codes.
#pragma once

#include <cstdint>
#include <string>

namespace shm_protocol {

/// A queue message whose every byte can be checked.
struct Item {
    std::uint32_t producer = 0;
    std::uint32_t seq = 0;
    std::string body;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(producer, seq, body);
    }
    /// Lengths from 0 to ~3 KiB: past a 8 KiB ring's largest record, so some travel in fragments.
    static Item make(std::uint32_t p, std::uint32_t s) {
        Item it{p, s, std::string((s * 7919u + p * 131u) % 3100u, '\0')};
        for (std::size_t i = 0; i < it.body.size(); ++i) it.body[i] = static_cast<char>((p * 31 + s * 17 + i) & 0xff);
        return it;
    }
    bool intact() const {
        Item expected = make(producer, seq);
        return body == expected.body;
    }
};

/// What a consumer records of each item it took.
struct Seen {
    std::uint32_t producer;
    std::uint32_t seq;
};

inline std::string name(const std::string& tag, const char* what) { return tag + "." + what; }

/// The helper's exit codes besides 0.
enum Exit : int { usage = 2, not_released = 3, get_timed_out = 4, corrupt = 5, mismatch = 6, exception = 10 };

} // namespace shm_protocol
