// queue_colors — a Queue is first in, first out between processes: red, green, blue and black are
// pushed by one process and popped by another in the same order.
//
// The popper starts first and waits on the empty queue; the pusher then puts one color every
// 0.25 s. Messages are std::string, encoded into the queue's shared memory and decoded on the other
// side. The popper notes which color it got at each position in a shared array for the main process
// to check. Python: multiprocessing.Queue with put() and get().
//
//   ./queue_colors [--quick]      (--quick: a color every 0.025 s)
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

#include "demo_support.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    return demo::run(argc, argv, [] {
        const std::vector<std::string> colors{"red", "green", "blue", "black"};
        const std::size_t n = colors.size();

        mproc::Queue<std::string> queue;
        mproc::SharedArray<int> popped(colors.size(), -1); // popped[i]: index in `colors` of the i-th pop

        std::vector<mproc::Process> procs;
        procs.emplace_back(mproc::ProcessOptions{.name = "popper"}, [&] {
            demo::say("[popper] waiting on the empty queue\n");
            for (std::size_t i = 0; i < n; ++i) {
                std::optional<std::string> color = queue.get_for(10s); // bounded: a lost item fails, not hangs
                if (!color) {
                    demo::say("[popper] nothing arrived within 10 s\n");
                    return;
                }
                demo::say("[popper] item %zu: popped %s\n", i + 1, color->c_str());
                popped[i] = static_cast<int>(std::find(colors.begin(), colors.end(), *color) - colors.begin());
            }
        });
        procs.emplace_back(mproc::ProcessOptions{.name = "pusher"}, [&] {
            for (std::size_t i = 0; i < n; ++i) {
                demo::say("[pusher] item %zu: pushing %s\n", i + 1, colors[i].c_str());
                queue.put(colors[i]);
                demo::pause(0.25);
            }
        });
        for (auto& p : procs) p.start();
        if (!demo::join_all(procs)) return 1;

        std::string order;
        bool same = true;
        for (std::size_t i = 0; i < n; ++i) {
            const int k = popped[i];
            const auto at = static_cast<std::size_t>(k);
            order += ' ';
            order += k >= 0 && at < n ? colors[at] : "(none)";
            same = same && k >= 0 && at == i;
        }
        if (!same) {
            demo::say("FAIL: popped in another order:%s\n", order.c_str());
            return 1;
        }
        if (!queue.empty()) {
            demo::say("FAIL: %zu items left in the queue\n", queue.size());
            return 1;
        }
        demo::say("popped in the same order:%s\n", order.c_str());
        return 0;
    });
}
