// shm_helper — the unrelated process of shared_memory_test: a separate program, started with
// posix_spawn, that shares nothing with the test but the names it is given on the command line.
//
//   shm_helper hold-lock TAG          lock TAG.lock, release TAG.ready, wait for TAG.go, unlock
//   shm_helper create-and-wait TAG    create TAG.map, TAG.bytes, TAG.queue; release TAG.ready; wait
//                                     for TAG.go, then exit (the names go with the objects)
//   shm_helper create-unfinished TAG  create TAG.unfinished but never finish it; release TAG.ready;
//                                     wait for TAG.go
//   shm_helper attach-bytes TAG SIZE  check TAG.bytes holds i % 251 at i, then write 250 - i % 251
//   shm_helper map-add TAG N          add 1 to TAG.map["count"] N times
//   shm_helper update-and-hang TAG    inside TAG.map.update("held", ...), so holding the map's lock,
//                                     release TAG.ready and wait for TAG.go
//   shm_helper produce TAG ID N       put items ID/0..N-1 on TAG.queue
//   shm_helper consume TAG ID         take items from TAG.queue until it is closed and drained,
//                                     recording each in TAG.seen.ID
//
// Every wait is bounded (60 s), so a helper whose test died does not linger. Exit codes: 0, or one
// of shm_protocol::Exit.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include <mproc/shared_memory.hpp>

#include "protocol.hpp"

using namespace std::chrono_literals;
using namespace shm_protocol;

namespace {

constexpr auto bound = 60s;
const mproc::AttachOptions wait_for_name{.wait = bound};

int wait_for_go(const std::string& tag) {
    auto go = mproc::NamedSemaphore::attach(name(tag, "go"), wait_for_name);
    return go.try_acquire_for(bound) ? 0 : not_released;
}

void signal_ready(const std::string& tag) { mproc::NamedSemaphore::attach(name(tag, "ready"), wait_for_name).release(); }

int hold_lock(const std::string& tag) {
    auto lock = mproc::NamedLock::attach(name(tag, "lock"), wait_for_name);
    lock.lock();
    signal_ready(tag);
    int rc = wait_for_go(tag);
    lock.unlock();
    return rc;
}

int create_and_wait(const std::string& tag) {
    auto map = mproc::SharedMap<std::string, int>::create(name(tag, "map"), 64 * 1024);
    map.set("answer", 42);
    map.set("pid", static_cast<int>(::getpid()));
    auto bytes = mproc::SharedMemory::create(name(tag, "bytes"), 4096);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes.buf()[i] = static_cast<std::byte>(i % 251);
    auto queue = mproc::NamedQueue<std::string>::create(name(tag, "queue"));
    for (const char* s : {"one", "two", "three"}) queue.put(s);
    signal_ready(tag);
    return wait_for_go(tag);
}

int create_unfinished(const std::string& tag) {
    auto segment = mproc::detail::shm::Segment::create(name(tag, "unfinished"), mproc::detail::shm::Kind::bytes, "", 64, {},
                                                       "shm_helper");
    signal_ready(tag); // never publish()ed: attachers must not use it
    return wait_for_go(tag);
}

int attach_bytes(const std::string& tag, std::size_t size) {
    auto bytes = mproc::SharedMemory::attach(name(tag, "bytes"), size);
    for (std::size_t i = 0; i < size; ++i)
        if (bytes.buf()[i] != static_cast<std::byte>(i % 251)) return mismatch;
    for (std::size_t i = 0; i < size; ++i) bytes.buf()[i] = static_cast<std::byte>(250 - i % 251);
    return 0;
}

int map_add(const std::string& tag, int n) {
    auto map = mproc::SharedMap<std::string, long>::attach(name(tag, "map"), wait_for_name);
    for (int i = 0; i < n; ++i) map.update("count", [](std::optional<long> c) { return c.value_or(0) + 1; });
    return 0;
}

int update_and_hang(const std::string& tag) {
    auto map = mproc::SharedMap<std::string, int>::attach(name(tag, "map"), wait_for_name);
    int rc = 0;
    map.update("held", [&](std::optional<int> v) { // runs under the map's lock
        signal_ready(tag);
        rc = wait_for_go(tag);
        return v.value_or(0) + 1;
    });
    return rc;
}

int produce(const std::string& tag, std::uint32_t id, std::uint32_t n) {
    auto queue = mproc::NamedQueue<Item>::attach(name(tag, "queue"), wait_for_name);
    for (std::uint32_t seq = 0; seq < n; ++seq)
        if (!queue.put_for(Item::make(id, seq), bound)) return not_released;
    return 0;
}

int consume(const std::string& tag, const std::string& id) {
    auto queue = mproc::NamedQueue<Item>::attach(name(tag, "queue"), wait_for_name);
    auto seen = mproc::SharedVector<Seen>::attach(tag + ".seen." + id, wait_for_name);
    for (;;) {
        std::optional<Item> item;
        try {
            item = queue.get_for(bound);
        } catch (const mproc::QueueClosed&) {
            return 0; // closed and drained
        }
        if (!item) return get_timed_out;
        if (!item->intact()) return corrupt;
        seen.push_back(Seen{item->producer, item->seq});
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s COMMAND TAG [ARGS]\n", argv[0]);
        return usage;
    }
    const std::string cmd = argv[1], tag = argv[2];
    auto arg = [&](int i) -> std::string { return i < argc ? argv[i] : ""; };
    try {
        if (cmd == "hold-lock") return hold_lock(tag);
        if (cmd == "create-and-wait") return create_and_wait(tag);
        if (cmd == "create-unfinished") return create_unfinished(tag);
        if (cmd == "attach-bytes") return attach_bytes(tag, std::stoul(arg(3)));
        if (cmd == "map-add") return map_add(tag, std::stoi(arg(3)));
        if (cmd == "update-and-hang") return update_and_hang(tag);
        if (cmd == "produce") return produce(tag, static_cast<std::uint32_t>(std::stoul(arg(3))), static_cast<std::uint32_t>(std::stoul(arg(4))));
        if (cmd == "consume") return consume(tag, arg(3));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shm_helper %s %s: %s\n", cmd.c_str(), tag.c_str(), e.what());
        return exception;
    }
    std::fprintf(stderr, "shm_helper: unknown command %s\n", cmd.c_str());
    return usage;
}
