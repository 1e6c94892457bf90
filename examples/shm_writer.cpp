// shm_writer — the writing half of two separate programs that share a map, a queue and a semaphore
// by name, with no fork between them (run shm_reader beside it, in any order).
//
// The writer publishes a price list in a SharedMap, puts 20 orders on a NamedQueue and closes it.
// The reader, another executable, attaches to both by name, prices every order, writes its total
// back into the map and releases a NamedSemaphore. The writer waits for that, then checks the
// reader's total against its own. When the writer ends, its objects remove their names from
// /dev/shm (the creator removes the names), so nothing is left behind.
// Python: multiprocessing.shared_memory.SharedMemory and a Manager().dict(), between two scripts.
//
//   ./shm_reader & ./shm_writer [--quick] [--name TAG]
//   (TAG prefixes the names, "shm_demo" by default: TAG.prices, TAG.orders, TAG.done)
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include <mproc/mproc.hpp>
#include <mproc/shared_memory.hpp>

#include "demo_support.hpp"

/// One order. The reader declares the same struct: a NamedQueue checks the type's name on attach.
struct Order {
    std::string item;
    int quantity = 0;
};

namespace {

const std::vector<std::pair<std::string, double>> price_list = {
    {"apple", 0.5}, {"bread", 2.25}, {"cheese", 4.75}, {"milk", 1.1}, {"tea", 3.0}};
constexpr int orders_count = 20;

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
        // A writer killed in an earlier run left stale names: take them over rather than fail.
        const mproc::CreateOptions options{.replace_stale = true};
        auto prices = mproc::SharedMap<std::string, double>::create(tag + ".prices", 64 * 1024, options);
        for (const auto& [item, price] : price_list) prices.set(item, price);
        auto orders = mproc::NamedQueue<Order>::create(tag + ".orders", mproc::QueueOptions{.capacity_bytes = 4096}, options);
        auto done = mproc::NamedSemaphore::create(tag + ".done", 0, options);
        demo::say("writer (pid %d): created %s.prices, %s.orders and %s.done\n", static_cast<int>(::getpid()), tag.c_str(),
                  tag.c_str(), tag.c_str());

        double expected = 0;
        for (int i = 0; i < orders_count; ++i) {
            const auto& [item, price] = price_list[demo::at(i) % price_list.size()];
            Order order{item, i % 3 + 1};
            orders.put(order);
            expected += price * order.quantity;
            demo::pause(0.05);
        }
        orders.close(); // the reader drains the queue, then sees QueueClosed
        demo::say("writer: %d orders put, queue closed; waiting for the reader\n", orders_count);

        if (!done.try_acquire_for(60s)) {
            demo::say("FAIL: the reader did not finish within 60 s\n");
            return 1;
        }
        const std::optional<double> total = prices.get("reader.total");
        const std::optional<double> count = prices.get("reader.orders");
        if (!total || !count || *count != orders_count || std::abs(*total - expected) > 1e-9) {
            demo::say("FAIL: the reader reported %.0f orders for %.2f; expected %d for %.2f\n", count.value_or(-1),
                      total.value_or(-1), orders_count, expected);
            return 1;
        }
        demo::say("writer: the reader's total matches mine: %d orders, %.2f\n", orders_count, expected);
        return 0; // prices, orders and done remove their names here
    });
}
