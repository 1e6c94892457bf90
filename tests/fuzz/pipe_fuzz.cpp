// libFuzzer target: Pipe framing. Arbitrary bytes arrive on a connection (as from a buggy or dying
// peer); recv must return whole messages or throw EOFError / SerializationError, never crash.
#include <mproc/pipe.hpp>

#include <cstdint>
#include <string>
#include <unistd.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* d, std::size_t n) {
    if (n > 64 * 1024) return 0; // stays within the socket buffer: the write below never blocks
    auto ends = mproc::Pipe<std::vector<std::string>>(false);
    std::size_t off = 0;
    while (off < n) {
        ssize_t w = ::write(ends.second.fileno(), d + off, n - off);
        if (w <= 0) break;
        off += static_cast<std::size_t>(w);
    }
    ends.second.close();
    for (int i = 0; i < 1000; ++i) {
        try {
            (void)ends.first.recv();
        } catch (const mproc::EOFError&) {
            break;
        } catch (const mproc::SerializationError&) {
            // a corrupted frame or payload: the next recv continues after it or reaches EOF
            if (i > 100) break;
        }
    }
    return 0;
}
