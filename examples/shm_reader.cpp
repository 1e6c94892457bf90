// shm_reader — the reading half of two separate programs that share a map, a queue and a semaphore
// by name (see shm_writer.cpp, which creates them).
//
// The reader attaches by name, waiting for the writer to create the names if it starts first. It
// takes orders from the NamedQueue until the writer closes it, prices each one with the SharedMap,
// writes its total back into the same map and releases the NamedSemaphore the writer waits on. It
// only attached, so it removes no name: that is the creator's job.
//
//   ./shm_reader [--quick] [--name TAG] & ./shm_writer [--quick] [--name TAG]
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <unistd.h>

#include <mproc/mproc.hpp>
#include <mproc/shared_memory.hpp>

#include "demo_support.hpp"

/// One order: the same struct as in shm_writer.cpp.
struct Order {
    std::string item;
    int quantity = 0;
};

namespace {

/// Takes `--name TAG` out of the command line (demo::run parses the rest).
std::string take_name(int& argc, char** argv) {
    std::string tag = "shm_demo";
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--name") == 0) {
            tag = argv[i + 1];
            for (int j = i; j + 2 <= argc; ++j) argv[j] = argv[j + 2];
            argc -= 2;
            break;
        }
    return tag;
}

} // namespace

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    const std::string tag = take_name(argc, argv);
    return demo::run(argc, argv, [&] {
        // The writer may not have created the names yet: wait for them (bounded).
        const mproc::AttachOptions options{.wait = 60s};
        auto orders = mproc::NamedQueue<Order>::attach(tag + ".orders", options);
        auto prices = mproc::SharedMap<std::string, double>::attach(tag + ".prices", options);
        auto done = mproc::NamedSemaphore::attach(tag + ".done", options);
        demo::say("reader (pid %d): attached to %s.orders, %s.prices and %s.done\n", static_cast<int>(::getpid()),
                  tag.c_str(), tag.c_str(), tag.c_str());

        int count = 0;
        double total = 0;
        for (;;) {
            std::optional<Order> order;
            try {
                order = orders.get_for(60s);
            } catch (const mproc::QueueClosed&) {
                break; // closed and drained: that was the last order
            }
            if (!order) {
                demo::say("FAIL: no order and no close within 60 s\n");
                return 1;
            }
            const std::optional<double> price = prices.get(order->item);
            if (!price) {
                demo::say("FAIL: no price for %s\n", order->item.c_str());
                return 1;
            }
            total += *price * order->quantity;
            ++count;
            demo::say("reader: %d x %s at %.2f\n", order->quantity, order->item.c_str(), *price);
        }
        prices.set("reader.total", total);
        prices.set("reader.orders", count);
        done.release();
        demo::say("reader: %d orders, total %.2f, written back to %s.prices\n", count, total, tag.c_str());
        return 0;
    });
}
