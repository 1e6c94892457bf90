#include "support.hpp"

#include <mproc/detail/posix/procfs.hpp>
#include <mproc/shared_memory.hpp>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <random>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "shm_helpers/protocol.hpp"
#include "shm_helpers/spawn_program.hpp"

#ifndef MPROC_SHM_HELPER
#error "MPROC_SHM_HELPER must name the shm_helper program (see tests/CMakeLists.txt)"
#endif

using namespace mproc;
using namespace std::chrono_literals;
using shm_protocol::Item;
using shm_protocol::Seen;
using test::bound;

namespace {

namespace posix = mproc::detail::posix;

/// Every name a test case uses starts with its tag, "shmtest-<pid>-<n>": unique per test process and
/// case, so parallel runs never collide. On destruction (after the objects of the case, declared
/// later) the case fails if anything with its tag is left in /dev/shm, which is then removed.
class Names {
public:
    Names() : tag_("shmtest-" + std::to_string(::getpid()) + "-" + std::to_string(++counter())) {}
    Names(const Names&) = delete;
    ~Names() {
        std::vector<std::string> left;
        for (const SharedMemoryInfo& info : list_shared_memory(tag_ + ".")) left.push_back(info.name);
        if (std::uncaught_exceptions() == 0) {
            INFO("left in /dev/shm: " << join(left));
            CHECK(left.empty());
        }
        for (const std::string& n : left) unlink_shared_memory(n);
    }
    std::string operator()(const char* what) const { return tag_ + "." + what; }
    const std::string& tag() const { return tag_; }
    /// The names with this tag that exist now.
    std::set<std::string> existing() const {
        std::set<std::string> out;
        for (const SharedMemoryInfo& info : list_shared_memory(tag_ + ".")) out.insert(info.name);
        return out;
    }

    static std::string join(const std::vector<std::string>& v) {
        std::string out;
        for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
        return out;
    }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }
    std::string tag_;
};

std::optional<SharedMemoryInfo> info_of(const std::string& name) {
    for (SharedMemoryInfo& i : list_shared_memory(name))
        if (i.name == name) return i;
    return std::nullopt;
}

bool exists(const std::string& name) { return info_of(name).has_value(); }

/// A run of tests/shm_helpers/shm_helper.cpp: a separate program started with posix_spawn, which
/// shares nothing with this process but the names it is given. Killed and reaped if still running
/// when destroyed.
class Helper {
public:
    explicit Helper(std::vector<std::string> args) {
        args.insert(args.begin(), "shm_helper");
        pid_ = test::spawn_program(MPROC_SHM_HELPER, args);
        pidfd_ = posix::pidfd_open(pid_);
    }
    Helper(const Helper&) = delete;
    ~Helper() {
        if (!reaped_) {
            kill();
            posix::wait_exit(pid_, pidfd_, detail::Deadline::never());
        }
        posix::close_fd(pidfd_);
    }
    /// Its exit code (-SIGNUM if killed) once it has exited; fails the test if that takes longer
    /// than the bound (it is then killed).
    int join() {
        auto status = posix::wait_exit(pid_, pidfd_, detail::Deadline::after(bound));
        if (!status) {
            kill();
            status = posix::wait_exit(pid_, pidfd_, detail::Deadline::never());
            reaped_ = true;
            FAIL("helper pid " << pid_ << " still running after the bound");
        }
        reaped_ = true;
        return posix::exitcode_from_status(*status);
    }
    void kill() { posix::send_signal(pid_, SIGKILL); }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = 0;
    int pidfd_ = -1;
    bool reaped_ = false;
};

unsigned file_mode(const std::string& name) {
    struct stat st{};
    REQUIRE(::stat(("/dev/shm/mproc." + name).c_str(), &st) == 0);
    return st.st_mode & 07777;
}

} // namespace

// ---------------------------------------------------------------- names

TEST_CASE("names are validated: empty, too long, '/', and characters outside [A-Za-z0-9._-] are ValueErrors") {
    Names names;
    const std::string too_long(201, 'a');
    for (std::string bad : {std::string(""), std::string("a/b"), std::string("/leading"), std::string("trailing/"), too_long,
                            std::string("has space"), std::string(".hidden"), std::string("-dash"), std::string("new\nline"),
                            std::string("nul\0x", 5), std::string("caf\xc3\xa9"), std::string("star*")}) {
        INFO("name: " << bad);
        CHECK_THROWS_AS(SharedMemory::create(bad, 64), ValueError);
        CHECK_THROWS_AS(SharedMemory::attach(bad), ValueError);
        CHECK_THROWS_AS(NamedLock::create(bad), ValueError);
        CHECK_THROWS_AS(NamedSemaphore::attach(bad), ValueError);
        CHECK_THROWS_AS(NamedQueue<int>::create(bad), ValueError);
        CHECK_THROWS_AS((SharedMap<std::string, int>::create(bad)), ValueError);
        CHECK_THROWS_AS(SharedVector<int>::attach(bad), ValueError);
    }
    CHECK_THROWS_WITH(SharedMemory::create("a/b", 64), Catch::Contains("contains '/'") && Catch::Contains("\"a/b\""));
    CHECK_THROWS_WITH(SharedMemory::create(too_long, 64), Catch::Contains("201 characters"));
    CHECK_THROWS_WITH(SharedMemory::create("", 64), Catch::Contains("empty"));
    CHECK_THROWS_WITH(SharedMemory::create("new\nline", 64), Catch::Contains("\\x0a"));

    // The longest name allowed, and every allowed character.
    const std::string longest = names.tag() + "." + std::string(200 - names.tag().size() - 1, 'x');
    REQUIRE(longest.size() == 200);
    { auto shm = SharedMemory::create(longest, 1); CHECK(exists(longest)); }
    { auto shm = SharedMemory::create(names("Az09._-"), 1); CHECK(shm.name() == names("Az09._-")); }
    CHECK(names.existing().empty());
}

// ---------------------------------------------------------------- SharedMemory

TEST_CASE("SharedMemory: create, attach by name, detach, and the creator removes the name") {
    Names names;
    const std::string n = names("bytes");
    {
        auto shm = SharedMemory::create(n, 1000);
        CHECK(shm.name() == n);
        CHECK(shm.size() == 1000);
        CHECK(shm.is_creator());
        CHECK(shm.creator_pid() == ::getpid());
        CHECK(reinterpret_cast<std::uintptr_t>(shm.data()) % 64 == 0);
        CHECK(std::all_of(shm.buf().begin(), shm.buf().end(), [](std::byte b) { return b == std::byte{0}; }));
        shm.buf()[999] = std::byte{7};
        {
            auto any = SharedMemory::attach(n);           // any size
            auto exact = SharedMemory::attach(n, 1000);   // exactly this size
            CHECK(any.size() == 1000);
            CHECK_FALSE(any.is_creator());
            CHECK(any.creator_pid() == ::getpid());
            CHECK(any.buf()[999] == std::byte{7});
            exact.buf()[0] = std::byte{9}; // another mapping of the same bytes
            CHECK(shm.buf()[0] == std::byte{9});
        }
        CHECK(exists(n)); // attachers leave the name
        auto info = info_of(n);
        REQUIRE(info);
        CHECK(info->holds == "SharedMemory");
        CHECK(info->size == 1000);
        CHECK(info->state == "live");
        CHECK_FALSE(info->stale);
        CHECK(info->creator_pid == ::getpid());
        CHECK(info->path == "/dev/shm/mproc." + n);
    }
    CHECK_FALSE(exists(n)); // the creator did

    SECTION("close() unmaps early; the creator's close also removes the name") {
        auto shm = SharedMemory::create(n, 10);
        shm.close();
        CHECK(shm.size() == 0);
        CHECK(shm.buf().empty());
        CHECK_FALSE(exists(n));
        shm.close(); // twice is harmless
    }
    SECTION("a SharedMemory moves; the moved-to object is the creator") {
        auto a = SharedMemory::create(n, 10);
        SharedMemory b = std::move(a);
        CHECK(b.is_creator());
        CHECK(exists(n));
        a = SharedMemory::attach(n);
        CHECK(a.size() == 10);
    }
}

TEST_CASE("SharedMemory: attaching to a missing name or with a wrong size is a clear error") {
    Names names;
    const std::string n = names("bytes");
    try {
        SharedMemory::attach(n);
        FAIL("attached to a missing name");
    } catch (const OSError& e) {
        CHECK(e.code() == ENOENT);
        CHECK_THAT(e.what(), Catch::Contains("no shared memory named \"" + n + "\"") && Catch::Contains("/dev/shm/mproc." + n));
    }
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(SharedMemory::attach(n, AttachOptions{.wait = 30ms}), OSError);
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);

    auto shm = SharedMemory::create(n, 4096);
    CHECK_THROWS_AS(SharedMemory::attach(n, 4097), ValueError);
    CHECK_THROWS_WITH(SharedMemory::attach(n, 8192), Catch::Contains("holds 4096 bytes, not the 8192 asked for"));
    CHECK_THROWS_WITH(SharedMemory::create(names("zero"), 0), Catch::Contains("at least 1 byte"));

    // O_EXCL: a name that exists is never taken over.
    try {
        SharedMemory::create(n, 4096);
        FAIL("created a name that exists");
    } catch (const OSError& e) {
        CHECK(e.code() == EEXIST);
        CHECK_THAT(e.what(), Catch::Contains("is taken") && Catch::Contains("which is running"));
    }
    CHECK(shm.size() == 4096);
}

TEST_CASE("SharedMemory: attach waits for a name that its creator makes later") {
    Names names;
    const std::string n = names("late");
    std::optional<SharedMemory> attached;
    std::exception_ptr error;
    std::thread attacher([&] {
        try {
            attached.emplace(SharedMemory::attach(n, AttachOptions{.wait = bound}));
        } catch (...) {
            error = std::current_exception();
        }
    });
    auto shm = SharedMemory::create(n, 128);
    attacher.join();
    REQUIRE_FALSE(error);
    REQUIRE(attached);
    CHECK(attached->size() == 128);
}

TEST_CASE("unlink(): any handle may remove the name, mappings stay valid, a name made again is left alone") {
    Names names;
    const std::string n = names("bytes");
    std::optional<SharedMemory> creator(SharedMemory::create(n, 64));
    {
        auto other = SharedMemory::attach(n);
        CHECK(other.unlink());
        CHECK_FALSE(exists(n));
        CHECK_FALSE(other.unlink()); // already gone
        other.buf()[3] = std::byte{42};
        CHECK(creator->buf()[3] == std::byte{42}); // the memory outlives its name
    }
    // Someone creates the name anew; the first creator's destructor must not remove that one.
    auto second = SharedMemory::create(n, 32);
    CHECK_FALSE(creator->unlink());
    creator.reset();
    CHECK(exists(n));
    CHECK(SharedMemory::attach(n).size() == 32);
}

TEST_CASE("unlink_on_close = false keeps the name after its creator, it is not stale, and is removed by hand") {
    Names names;
    const std::string n = names("kept");
    {
        auto shm = SharedMemory::create(n, 16, CreateOptions{.unlink_on_close = false});
        shm.buf()[0] = std::byte{1};
    }
    REQUIRE(exists(n));
    {
        auto later = SharedMemory::attach(n);
        CHECK(later.buf()[0] == std::byte{1});
    }
    auto info = info_of(n);
    REQUIRE(info);
    CHECK(info->kept);
    CHECK(info->creator_alive); // we created it
    CHECK_FALSE(info->stale);
    CHECK(remove_stale_shared_memory(names.tag()).empty());
    CHECK(unlink_shared_memory(n));
    CHECK_FALSE(unlink_shared_memory(n));
    CHECK_THROWS_AS(unlink_shared_memory("a/b"), ValueError);
}

TEST_CASE("permissions: created 0600 with O_EXCL whatever the umask, other modes exactly, bad modes refused") {
    Names names;
    const mode_t old_umask = ::umask(0);
    struct Restore {
        mode_t m;
        ~Restore() { ::umask(m); }
    } restore{old_umask};
    {
        auto shm = SharedMemory::create(names("default"), 8);
        CHECK(file_mode(names("default")) == 0600);
        auto q = NamedQueue<int>::create(names("queue"));
        CHECK(file_mode(names("queue")) == 0600);
        auto m = SharedMap<int, int>::create(names("map"), 4096);
        CHECK(file_mode(names("map")) == 0600);
        auto lock = NamedLock::create(names("lock"));
        CHECK(file_mode(names("lock")) == 0600);
        auto info = info_of(names("map"));
        REQUIRE(info);
        CHECK(info->mode == 0600);
        CHECK(info->owner == ::geteuid());
    }
    ::umask(0077); // would take group bits away: the mode asked for is applied exactly
    {
        auto shm = SharedMemory::create(names("group"), 8, CreateOptions{.mode = 0640});
        CHECK(file_mode(names("group")) == 0640);
    }
    for (unsigned bad : {0u, 0400u, 0200u, 01600u, 04600u, 010000u}) {
        INFO("mode 0" << std::oct << bad);
        CHECK_THROWS_AS(SharedMemory::create(names("bad"), 8, CreateOptions{.mode = bad}), ValueError);
    }
    CHECK_FALSE(exists(names("bad")));
}

TEST_CASE("attach refuses an object owned by another user, unless that user is allowed explicitly") {
    Names names;
    {
        // Our own objects attach, with or without an allowed owner.
        auto mine = NamedQueue<int>::create(names("mine"));
        CHECK_NOTHROW(NamedQueue<int>::attach(names("mine")));
        CHECK_NOTHROW(NamedQueue<int>::attach(names("mine"), AttachOptions{.allowed_owner = 65534}));
    }
    if (::geteuid() != 0) {
        WARN("not root: no object of another user can be made here; the refusal is not exercised");
        return;
    }
    // A squatter (uid 65534, "nobody") pre-creates the name with mode 0666, as an attacker would.
    constexpr uid_t nobody = 65534;
    Event created, finish;
    Process squatter([&] {
        if (::setresgid(nobody, nobody, nobody) != 0 || ::setresuid(nobody, nobody, nobody) != 0) mproc::exit(3);
        auto q = NamedQueue<int>::create(names("squat"), {}, CreateOptions{.mode = 0666});
        q.put(666);
        created.set();
        if (!finish.wait_for(bound)) mproc::exit(4);
    });
    squatter.start();
    REQUIRE(created.wait_for(bound));
    auto info = info_of(names("squat"));
    REQUIRE(info);
    CHECK(info->owner == nobody);
    CHECK_THROWS_AS(NamedQueue<int>::attach(names("squat")), OSError);
    try {
        SharedMemory::attach(names("squat"));
        FAIL("attached to another user's object");
    } catch (const OSError& e) {
        CHECK(e.code() == EPERM);
        CHECK_THAT(e.what(), Catch::Contains("owned by uid 65534") && Catch::Contains("allowed_owner"));
    }
    {
        auto trusted = NamedQueue<int>::attach(names("squat"), AttachOptions{.allowed_owner = nobody});
        CHECK(trusted.get() == 666);
    }
    finish.set();
    test::join_bounded(squatter);
    CHECK(squatter.exitcode() == 0);
}

TEST_CASE("attaching checks what the name holds: the kind and the element types") {
    Names names;
    auto q = NamedQueue<std::string>::create(names("queue"));
    auto m = SharedMap<std::string, int>::create(names("map"), 4096);
    auto lock = NamedLock::create(names("lock"));
    CHECK_THROWS_WITH(NamedQueue<int>::attach(names("queue")),
                      Catch::Contains("holds a NamedQueue<std::string>, not a NamedQueue<int>"));
    CHECK_THROWS_AS(SharedMemory::attach(names("queue")), ValueError);
    CHECK_THROWS_AS(NamedLock::attach(names("map")), ValueError);
    CHECK_THROWS_AS(NamedSemaphore::attach(names("lock")), ValueError);
    CHECK_THROWS_WITH((SharedMap<std::string, long>::attach(names("map"))),
                      Catch::Contains("holds a SharedMap<std::string, int>, not a SharedMap<std::string, long>"));
    CHECK_THROWS_AS(SharedVector<int>::attach(names("map")), ValueError);
    CHECK_NOTHROW(NamedQueue<std::string>::attach(names("queue")));
}

TEST_CASE("an unrelated process reads and writes the same bytes by name") {
    Names names;
    auto shm = SharedMemory::create(names("bytes"), 5000);
    for (std::size_t i = 0; i < shm.size(); ++i) shm.buf()[i] = static_cast<std::byte>(i % 251);
    Helper helper({"attach-bytes", names.tag(), "5000"});
    REQUIRE(helper.join() == 0);
    bool all = true;
    for (std::size_t i = 0; i < shm.size(); ++i) all = all && shm.buf()[i] == static_cast<std::byte>(250 - i % 251);
    CHECK(all);
    CHECK(exists(names("bytes"))); // the helper only attached

    Helper wrong_size({"attach-bytes", names.tag(), "4096"});
    CHECK(wrong_size.join() == shm_protocol::exception);
}

// ---------------------------------------------------------------- NamedLock and NamedSemaphore

TEST_CASE("NamedLock: an unrelated process holds it, then releases it") {
    Names names;
    auto lock = NamedLock::create(names("lock"));
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper holder({"hold-lock", names.tag()});
    REQUIRE(ready.try_acquire_for(bound));
    CHECK_FALSE(lock.try_lock());
    CHECK_FALSE(lock.try_lock_for(20ms));
    go.release();
    REQUIRE(lock.try_lock_for(bound)); // the holder unlocks when released
    lock.unlock();
    CHECK(holder.join() == 0);
    CHECK(ready.value() == 0);
    CHECK(go.value() == 0); // the helper took the permit
}

TEST_CASE("NamedLock: a holder that is SIGKILLed makes the next locker get OwnerDied, the lock stays usable") {
    Names names;
    auto lock = NamedLock::create(names("lock"));
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper holder({"hold-lock", names.tag()});
    REQUIRE(ready.try_acquire_for(bound));
    CHECK_FALSE(lock.try_lock());
    SECTION("dead before we lock") {
        holder.kill();
        CHECK(holder.join() == -SIGKILL);
        CHECK_THROWS_AS(lock.lock(), OwnerDied);
    }
    SECTION("dies while we wait in lock()") {
        std::exception_ptr error;
        bool acquired = false;
        std::thread waiter([&] {
            try {
                acquired = lock.try_lock_for(bound); // throws OwnerDied as lock() does
            } catch (...) {
                error = std::current_exception();
            }
        });
        holder.kill();
        CHECK(holder.join() == -SIGKILL);
        waiter.join();
        CHECK_FALSE(acquired);
        REQUIRE(error);
        CHECK_THROWS_AS(std::rethrow_exception(error), OwnerDied);
    }
    CHECK(lock.try_lock()); // released and consistent
    lock.unlock();
    auto again = NamedLock::attach(names("lock"));
    std::lock_guard g(again);
}

TEST_CASE("NamedSemaphore: permits are shared by name and Semaphore's rules hold") {
    Names names;
    auto a = NamedSemaphore::create(names("sem"), 2);
    auto b = NamedSemaphore::attach(names("sem"));
    CHECK(b.value() == 2);
    CHECK(b.try_acquire());
    CHECK(a.try_acquire());
    CHECK_FALSE(b.try_acquire_for(10ms));
    a.release(2);
    CHECK(b.value() == 2);
    CHECK_THROWS_AS(NamedSemaphore::create(names("negative"), -1), ValueError);
    CHECK_FALSE(exists(names("negative")));
}

// ---------------------------------------------------------------- NamedQueue

TEST_CASE("MessageRing over caller-provided memory: a second ring object attaches to the same bytes") {
    const std::size_t bytes = detail::MessageRing::footprint(4096, "test");
    CHECK(bytes == detail::MessageRing::footprint(100, "test")); // rounded up to 4 KiB
    CHECK_THROWS_AS(detail::MessageRing::footprint(std::size_t{1} << 41, "test"), ValueError);
    std::vector<std::byte> memory(bytes + detail::MessageRing::alignment);
    void* p = memory.data();
    std::size_t space = memory.size();
    REQUIRE(std::align(detail::MessageRing::alignment, bytes, p, space));
    std::vector<int> got;
    {
        detail::MessageRing ring(detail::Placement::at(p, true), 4096, 3, "test");
        detail::MessageRing other(detail::Placement::at(p, false), 0, 0, "test");
        CHECK(other.capacity() == 4096);
        CHECK(other.maxsize() == 3);
        for (int i = 0; i < 3; ++i) CHECK(ring.put(sizeof i, [&](std::byte* out) { std::memcpy(out, &i, sizeof i); }, detail::Deadline::never()));
        CHECK(other.full());
        CHECK(other.size() == 3);
        for (int i = 0; i < 2; ++i)
            other.get([&](std::span<const std::byte> b) { int v; std::memcpy(&v, b.data(), sizeof v); got.push_back(v); },
                      detail::Deadline::never());
    }
    // Both objects are gone, the ring is not: a third one takes the last message.
    detail::MessageRing third(detail::Placement::at(p, false), 0, 0, "test");
    CHECK(third.size() == 1);
    third.get([&](std::span<const std::byte> b) { int v; std::memcpy(&v, b.data(), sizeof v); got.push_back(v); },
              detail::Deadline::never());
    CHECK(got == std::vector<int>{0, 1, 2});
}

TEST_CASE("NamedQueue: FIFO by name, with Queue's options and close()") {
    Names names;
    auto q = NamedQueue<std::string>::create(names("queue"), QueueOptions{.maxsize = 2, .capacity_bytes = 5000});
    auto r = NamedQueue<std::string>::attach(names("queue"));
    CHECK(r.capacity_bytes() == 8192);
    CHECK(r.maxsize() == 2);
    q.put("a");
    CHECK(r.try_put("b"));
    CHECK(q.full());
    CHECK_FALSE(r.try_put("c"));
    CHECK(r.get() == "a");
    CHECK(q.get_for(1s) == "b");
    std::string big(100000, 'x'); // larger than the ring: goes in fragments
    bool put = false;
    std::thread producer([&] { put = q.put_for(big, bound); });
    CHECK(r.get_for(bound) == big);
    producer.join();
    CHECK(put);
    Queue<std::string>& as_queue = r; // a NamedQueue is a Queue
    as_queue.close();
    CHECK(q.closed());
    CHECK_THROWS_AS(q.put("late"), QueueClosed);
    CHECK_THROWS_AS(q.get(), QueueClosed);
    CHECK_THROWS_AS(NamedQueue<int>::create(names("huge"), QueueOptions{.capacity_bytes = std::size_t{1} << 41}), ValueError);
    CHECK_FALSE(exists(names("huge")));
}

TEST_CASE("NamedQueue between unrelated processes: 2 producers, 2 consumers, every item exactly once, in order") {
    Names names;
    constexpr std::uint32_t per_producer = 3000;
    // Consumers first: they wait for the names to appear.
    Helper c1({"consume", names.tag(), "1"});
    Helper c2({"consume", names.tag(), "2"});
    auto seen1 = SharedVector<Seen>::create(names("seen.1"), 256 * 1024);
    auto seen2 = SharedVector<Seen>::create(names("seen.2"), 256 * 1024);
    seen1.reserve(2 * per_producer);
    seen2.reserve(2 * per_producer);
    // An 8 KiB ring: it wraps hundreds of times, and items past 2 KiB travel in fragments.
    auto queue = NamedQueue<Item>::create(names("queue"), QueueOptions{.capacity_bytes = 8192});
    Helper p1({"produce", names.tag(), "1", std::to_string(per_producer)});
    Helper p2({"produce", names.tag(), "2", std::to_string(per_producer)});
    CHECK(p1.join() == 0);
    CHECK(p2.join() == 0);
    queue.close(); // the consumers drain what is left, then stop
    CHECK(c1.join() == 0);
    CHECK(c2.join() == 0);

    std::map<std::uint32_t, std::vector<int>> times; // producer -> times each seq was taken
    times[1].assign(per_producer, 0);
    times[2].assign(per_producer, 0);
    std::size_t total = 0;
    bool in_order = true, known = true;
    for (auto* seen : {&seen1, &seen2}) {
        std::map<std::uint32_t, std::int64_t> last{{1, -1}, {2, -1}};
        for (const Seen& s : seen->to_vector()) {
            ++total;
            if ((s.producer != 1 && s.producer != 2) || s.seq >= per_producer) {
                known = false;
                continue;
            }
            ++times[s.producer][s.seq];
            in_order = in_order && static_cast<std::int64_t>(s.seq) > last[s.producer];
            last[s.producer] = s.seq;
        }
    }
    CHECK(known);
    CHECK(in_order); // each consumer sees each producer's items in the order they were put
    CHECK(total == 2 * per_producer);
    CHECK(std::all_of(times[1].begin(), times[1].end(), [](int t) { return t == 1; }));
    CHECK(std::all_of(times[2].begin(), times[2].end(), [](int t) { return t == 1; }));
    CHECK(queue.empty());
}

// ---------------------------------------------------------------- SharedMap and SharedVector

TEST_CASE("SharedMap: a dictionary by name, in key order, for strings, fixed-size and encoded types") {
    Names names;
    auto m = SharedMap<std::string, double>::create(names("prices"), 64 * 1024);
    auto other = SharedMap<std::string, double>::attach(names("prices"));
    CHECK(m.empty());
    m.set("pear", 2.5);
    m.set("apple", 1.25);
    other.set("fig", 4.0);
    m.set("pear", 3.0); // overwrite
    CHECK(other.size() == 3);
    CHECK(other.get("pear") == 3.0);
    CHECK(other.get("kiwi") == std::nullopt);
    CHECK(m.contains("fig"));
    CHECK(m.keys() == std::vector<std::string>{"apple", "fig", "pear"});
    CHECK(other.items() == std::vector<std::pair<std::string, double>>{{"apple", 1.25}, {"fig", 4.0}, {"pear", 3.0}});
    CHECK(other.erase("fig"));
    CHECK_FALSE(other.erase("fig"));
    CHECK(m.update("apple", [](std::optional<double> v) { return v.value_or(0) * 2; }) == 2.5);
    CHECK(m.update("kiwi", [](std::optional<double> v) { return v.value_or(7); }) == 7);
    CHECK(other.get("kiwi") == 7);
    CHECK_THROWS_AS(m.update("apple", [](std::optional<double>) -> double { throw std::runtime_error("no"); }), std::runtime_error);
    CHECK(m.get("apple") == 2.5); // unchanged
    // A callback that calls the map again would deadlock: it is refused.
    CHECK_THROWS_AS(m.update("apple", [&](std::optional<double> v) { return *v + static_cast<double>(m.size()); }), StateError);
    m.clear();
    CHECK(other.empty());
    CHECK(m.capacity_bytes() == 64 * 1024);
    CHECK(m.free_bytes() > 60 * 1024);

    auto ints = SharedMap<int, std::vector<std::string>>::create(names("ints"));
    ints.set(30, {"thirty"});
    ints.set(-4, {"minus", "four"});
    ints.set(7, {});
    CHECK(ints.keys() == std::vector<int>{-4, 7, 30}); // by operator<
    CHECK(ints.get(-4) == std::vector<std::string>{"minus", "four"});

    auto pairs = SharedMap<std::pair<std::string, int>, std::string>::create(names("pairs"));
    pairs.set({"a", 1}, "a1");
    pairs.set({"a", 2}, "a2");
    pairs.set({"a", 1}, "A1");
    CHECK(pairs.size() == 2);
    CHECK(pairs.get({"a", 1}) == "A1");
    CHECK(pairs.get({"b", 1}) == std::nullopt);
}

TEST_CASE("SharedMap: read-modify-writes from unrelated processes are exact") {
    Names names;
    auto map = SharedMap<std::string, long>::create(names("map"), 4096);
    Helper a({"map-add", names.tag(), "3000"});
    Helper b({"map-add", names.tag(), "3000"});
    for (int i = 0; i < 3000; ++i) map.update("count", [](std::optional<long> c) { return c.value_or(0) + 1; });
    CHECK(a.join() == 0);
    CHECK(b.join() == 0);
    CHECK(map.get("count") == 9000);
}

TEST_CASE("SharedMap: a user killed inside an operation gives OwnerDied once, the map stays usable") {
    Names names;
    auto map = SharedMap<std::string, int>::create(names("map"), 8192);
    map.set("answer", 42);
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper user({"update-and-hang", names.tag()});
    REQUIRE(ready.try_acquire_for(bound)); // it holds the map's lock now
    user.kill();
    CHECK(user.join() == -SIGKILL);
    CHECK_THROWS_WITH(map.get("answer"), Catch::Contains("died while holding the lock"));
    CHECK(map.get("answer") == 42); // released: the retry works
    CHECK_FALSE(map.contains("held")); // the update never happened
    map.set("after", 1);
    CHECK(map.size() == 2);
}

TEST_CASE("SharedVector: a list by name") {
    Names names;
    auto v = SharedVector<std::string>::create(names("words"), 16 * 1024);
    auto w = SharedVector<std::string>::attach(names("words"));
    CHECK(v.empty());
    v.push_back("alpha");
    w.push_back(std::string(100, 'b'));
    v.push_back("");
    CHECK(w.size() == 3);
    CHECK(w.at(0) == "alpha");
    CHECK(v.at(1) == std::string(100, 'b'));
    w.set(2, "gamma");
    CHECK(v.to_vector() == std::vector<std::string>{"alpha", std::string(100, 'b'), "gamma"});
    CHECK(v.update(0, [](std::string s) { return s + "!"; }) == "alpha!");
    CHECK_THROWS_WITH(v.at(3), Catch::Contains("index 3 is out of range (size 3)"));
    CHECK_THROWS_AS(w.set(7, "x"), ValueError);
    CHECK(w.pop_back() == "gamma");
    v.clear();
    CHECK(w.pop_back() == std::nullopt);

    auto nums = SharedVector<int>::create(names("nums"), 4096);
    nums.reserve(100);
    for (int i = 0; i < 100; ++i) nums.push_back(i * i);
    CHECK(nums.at(99) == 9801);
    CHECK(nums.size() == 100);
}

TEST_CASE("capacity exhaustion: a full SharedMap or SharedVector throws ValueError naming the capacity, and stays usable") {
    Names names;
    CHECK_THROWS_WITH((SharedMap<int, int>::create(names("tiny"), 4095)), Catch::Contains("capacity_bytes must be in [4096"));
    CHECK_FALSE(exists(names("tiny")));

    auto map = SharedMap<std::string, std::string>::create(names("map"), 8192);
    const std::string value(200, 'v');
    int n = 0;
    try {
        for (; n < 1000; ++n) map.set("key-" + std::to_string(n), value);
        FAIL("8 KiB held 1000 entries of 200 bytes");
    } catch (const ValueError& e) {
        CHECK_THAT(e.what(), Catch::Contains("SharedMap \"" + names("map") + "\": set: full") &&
                                 Catch::Contains("capacity of 8192 bytes") && Catch::Contains("larger capacity_bytes"));
    }
    CHECK(n > 10);
    CHECK(map.size() == static_cast<std::size_t>(n)); // the failed set changed nothing
    CHECK(map.get("key-0") == value);
    CHECK(map.get("key-" + std::to_string(n)) == std::nullopt);
    CHECK_THROWS_AS(map.update("key-0", [&](auto) { return std::string(8192, 'x'); }), ValueError);
    CHECK(map.get("key-0") == value); // the old value stays
    CHECK(map.erase("key-1"));
    CHECK(map.erase("key-2"));
    map.set("again", value); // room again
    CHECK(map.get("again") == value);

    auto vec = SharedVector<std::uint64_t>::create(names("vec"), 4096);
    std::size_t pushed = 0;
    CHECK_THROWS_WITH(
        [&] {
            for (;; ++pushed) vec.push_back(pushed);
        }(),
        Catch::Contains("SharedVector \"" + names("vec") + "\": push_back: full") && Catch::Contains("4096 bytes"));
    CHECK(pushed > 100);
    CHECK(vec.size() == pushed);
    CHECK(vec.at(pushed - 1) == pushed - 1);
    CHECK_THROWS_AS(vec.reserve(10000), ValueError);
    vec.pop_back();
    CHECK(vec.size() == pushed - 1);
}

// ---------------------------------------------------------------- corrupted SharedMap and SharedVector
//
// Issue #13 defect 4: bytes another process wrote are validated before use. Each case runs in a
// forked process joined with a bound, so that a crash or a hang fails the case instead of killing
// or stalling the test runner; the child reports what went wrong on stderr and by its exit status.

namespace {

using detail::shm::RowStore;

/// A writable mapping of a named object's whole file, as a hostile process of the same user would
/// make it: header, control block, rows and heap.
class RawSegment {
public:
    explicit RawSegment(const std::string& name) {
        const std::string path = detail::shm::system_path(name);
        const int fd = posix::shm_open_existing(path, true);
        size_ = posix::object_status(fd, path).size;
        base_ = static_cast<std::byte*>(posix::map_object(fd, size_, true, path));
        posix::close_fd(fd);
    }
    RawSegment(const RawSegment&) = delete;
    ~RawSegment() { posix::unmap(base_, size_); }
    std::byte* payload() const { return base_ + detail::shm::header_bytes; }
    RowStore::Control& control() const { return *reinterpret_cast<RowStore::Control*>(payload()); }
    std::byte* area() const { return payload() + RowStore::control_bytes; }
    std::size_t area_size() const { return size_ - detail::shm::header_bytes - RowStore::control_bytes; }
    /// The 8-byte word at byte `at` of the area (rows from 0).
    std::uint64_t& word(std::size_t at) const { return *reinterpret_cast<std::uint64_t*>(area() + at); }
    /// Bytes of the payload after the lock: what the fuzz overwrites (a scribbled robust mutex is
    /// not defended, see docs/guarantees.md).
    std::size_t first_fuzzed() const { return offsetof(RowStore::Control, magic); }
    std::size_t payload_size() const { return size_ - detail::shm::header_bytes; }

private:
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
};

/// Collects the first failed expectation of a child process.
struct Expect {
    std::string failure;
    void operator()(bool ok, const std::string& what) {
        if (!ok && failure.empty()) failure = what;
    }
    /// `f` throws SerializationError whose message contains `needle`.
    template <class F>
    void corrupt(F&& f, const std::string& needle, const std::string& what) {
        try {
            f();
            (*this)(false, what + ": no error");
        } catch (const SerializationError& e) {
            (*this)(std::string(e.what()).find(needle) != std::string::npos,
                    what + ": the message lacks \"" + needle + "\": " + e.what());
        } catch (const std::exception& e) {
            (*this)(false, what + ": not SerializationError: " + e.what());
        }
    }
};

/// Runs `body(expect)` in a forked process and fails the case if it crashes, hangs past `limit`,
/// throws, or records a failed expectation. (ctest gives a whole case 120 s: limits stay below.)
template <class Body>
void in_child(Body body, std::chrono::seconds limit = std::chrono::seconds(60)) {
    Process child([&] {
        Expect expect;
        try {
            body(expect);
        } catch (const std::exception& e) {
            expect(false, std::string("unexpected exception: ") + e.what());
        }
        if (!expect.failure.empty()) {
            std::fprintf(stderr, "child failure: %s\n", expect.failure.c_str());
            mproc::exit(1);
        }
    });
    child.start();
    const bool ended = child.join_for(limit);
    if (!ended) {
        child.kill();
        test::join_bounded(child);
        FAIL("the child was still running after " << limit.count() << " s (an endless loop?)");
    }
    INFO("the child's failure, if any, is on stderr above");
    CHECK(child.exitcode().value_or(-1000) == 0);
}

/// The outcome of one operation on a corrupted container: it worked, or threw SerializationError,
/// or ValueError "full" (a corrupted but consistent-looking count or heap start can leave no room).
/// Anything else is recorded as a failure.
template <class F>
void tolerate(Expect& expect, int round, const char* op, F&& f, long& errors) {
    try {
        f();
    } catch (const SerializationError&) {
        ++errors;
    } catch (const ValueError& e) {
        expect(std::string(e.what()).find(": full:") != std::string::npos,
               "round " + std::to_string(round) + ": " + op + ": ValueError that is not 'full': " + e.what());
    } catch (const std::exception& e) {
        expect(false, "round " + std::to_string(round) + ": " + op + ": " + e.what());
    }
}

/// Overwrites the segment after its lock: a few random bytes, or one 8-byte word (of the control
/// block or the rows) with a value chosen to be nearly valid.
void scribble(const RawSegment& raw, std::mt19937_64& rng) {
    const std::size_t first = raw.first_fuzzed();
    const std::size_t span = raw.payload_size() - first;
    auto interesting = [&]() -> std::uint64_t {
        const std::uint64_t cap = raw.area_size();
        switch (rng() % 10) {
        case 0: return 0;
        case 1: return 1;
        case 2: return cap;
        case 3: return cap + 1 + rng() % 64;
        case 4: return cap - 1 - rng() % 64;
        case 5: return std::uint64_t{1} << 63;
        case 6: return ~std::uint64_t{0} - rng() % 16;
        case 7: return rng() % 64;
        default: return rng();
        }
    };
    switch (rng() % 4) {
    case 0: { // random bytes anywhere after the lock
        const int n = 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < n; ++i) raw.payload()[first + rng() % span] = static_cast<std::byte>(rng());
        break;
    }
    case 1: { // a control word
        const std::size_t words = (RowStore::control_bytes - first) / 8;
        *reinterpret_cast<std::uint64_t*>(raw.payload() + first + 8 * (rng() % words)) = interesting();
        break;
    }
    default: // a word of the first rows
        raw.word(8 * (rng() % 64)) = interesting();
        break;
    }
}

std::string random_text(std::mt19937_64& rng, std::size_t max_len) {
    std::string s(rng() % (max_len + 1), ' ');
    for (char& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
}

/// `rounds` rounds of: clear, fill, scribble, run every operation (each works or throws
/// SerializationError or "full"), then clear() must repair the map.
template <class K, class V, class MakeKey, class MakeValue>
void fuzz_map(const std::string& name, int rounds, MakeKey make_key, MakeValue make_value) {
    auto map = SharedMap<K, V>::create(name, 4096);
    RawSegment raw(name);
    in_child(
        [&](Expect& expect) {
            std::mt19937_64 rng(20261202);
            long errors = 0;
            for (int round = 0; round < rounds && expect.failure.empty(); ++round) {
                map.clear();
                const int n = static_cast<int>(rng() % 24);
                for (int i = 0; i < n; ++i) map.set(make_key(rng), make_value(rng));
                if (rng() % 2 != 0 && n > 0) map.erase(make_key(rng)); // leave garbage in the heap
                const int scribbles = 1 + static_cast<int>(rng() % 3);
                for (int i = 0; i < scribbles; ++i) scribble(raw, rng);
                const K k = make_key(rng);
                tolerate(expect, round, "get", [&] { (void)map.get(k); }, errors);
                tolerate(expect, round, "contains", [&] { (void)map.contains(k); }, errors);
                tolerate(expect, round, "size", [&] { (void)map.size(); }, errors);
                tolerate(expect, round, "keys", [&] { (void)map.keys(); }, errors);
                tolerate(expect, round, "items", [&] { (void)map.items(); }, errors);
                tolerate(expect, round, "free_bytes", [&] { (void)map.free_bytes(); }, errors);
                tolerate(expect, round, "set", [&] { map.set(make_key(rng), make_value(rng)); }, errors);
                tolerate(expect, round, "update", [&] { map.update(k, [&](std::optional<V>) { return make_value(rng); }); }, errors);
                tolerate(expect, round, "erase", [&] { (void)map.erase(make_key(rng)); }, errors);
                for (int i = 0; i < 4; ++i) // enough to need a compaction now and then
                    tolerate(expect, round, "set", [&] { map.set(make_key(rng), make_value(rng)); }, errors);
                tolerate(expect, round, "items", [&] { (void)map.items(); }, errors);
                map.clear(); // repairs
                map.set(k, make_value(rng));
                expect(map.size() == 1 && map.contains(k) && map.keys() == std::vector<K>{k},
                       "round " + std::to_string(round) + ": clear() did not repair the map");
            }
            expect(errors > rounds / 4, "only " + std::to_string(errors) + " SerializationErrors in " +
                                            std::to_string(rounds) + " rounds: the corruption is not being seen");
        },
        std::chrono::seconds(50));
}

} // namespace

TEST_CASE("regression (defect 4): a SharedMap's memory overwritten with random bytes: each call works or throws "
          "SerializationError, never a crash or a hang, and clear() repairs it") {
    Names names;
    fuzz_map<std::string, std::string>(
        names("strings"), 3000, [](std::mt19937_64& rng) { return "k" + std::to_string(rng() % 40); },
        [](std::mt19937_64& rng) { return random_text(rng, 120); });
    fuzz_map<int, std::vector<std::string>>(
        names("encoded"), 1000, [](std::mt19937_64& rng) { return static_cast<int>(rng() % 40) - 20; },
        [](std::mt19937_64& rng) { return std::vector<std::string>(rng() % 4, random_text(rng, 20)); });
}

TEST_CASE("regression (defect 4): a SharedVector's memory overwritten with random bytes: each call works or throws "
          "SerializationError, never a crash or a hang, and clear() repairs it") {
    Names names;
    auto vec = SharedVector<std::string>::create(names("fuzz"), 4096);
    RawSegment raw(names("fuzz"));
    in_child(
        [&](Expect& expect) {
            std::mt19937_64 rng(4);
            long errors = 0;
            constexpr int rounds = 3000;
            for (int round = 0; round < rounds && expect.failure.empty(); ++round) {
                vec.clear(); // keeps a reservation, which a scribble may have made large: the vector may fill up
                const int n = static_cast<int>(rng() % 24);
                tolerate(expect, round, "fill", [&] {
                    for (int i = 0; i < n; ++i) vec.push_back(random_text(rng, 100));
                    if (n > 0 && rng() % 2 != 0) vec.set(rng() % static_cast<std::size_t>(n), random_text(rng, 150));
                }, errors);
                const int scribbles = 1 + static_cast<int>(rng() % 3);
                for (int i = 0; i < scribbles; ++i) scribble(raw, rng);
                const std::size_t i = rng() % 30;
                auto index_ok = [&](auto&& f) {
                    return [&, f] {
                        try {
                            f();
                        } catch (const ValueError& e) { // an index out of range is not corruption
                            if (std::string(e.what()).find("out of range") == std::string::npos) throw;
                        }
                    };
                };
                tolerate(expect, round, "at", index_ok([&] { (void)vec.at(i); }), errors);
                tolerate(expect, round, "size", [&] { (void)vec.size(); }, errors);
                tolerate(expect, round, "to_vector", [&] { (void)vec.to_vector(); }, errors);
                tolerate(expect, round, "free_bytes", [&] { (void)vec.free_bytes(); }, errors);
                tolerate(expect, round, "set", index_ok([&] { vec.set(i, random_text(rng, 200)); }), errors);
                tolerate(expect, round, "update", index_ok([&] { vec.update(i, [](std::string s) { return s + "!"; }); }), errors);
                tolerate(expect, round, "pop_back", [&] { (void)vec.pop_back(); }, errors);
                for (int j = 0; j < 4; ++j)
                    tolerate(expect, round, "push_back", [&] { vec.push_back(random_text(rng, 300)); }, errors);
                tolerate(expect, round, "reserve", [&] { vec.reserve(rng() % 40); }, errors);
                tolerate(expect, round, "to_vector", [&] { (void)vec.to_vector(); }, errors);
                vec.clear();
                vec.reserve(0);
                vec.push_back("again");
                expect(vec.to_vector() == std::vector<std::string>{"again"},
                       "round " + std::to_string(round) + ": clear() did not repair the vector");
            }
            expect(errors > rounds / 4, "only " + std::to_string(errors) + " SerializationErrors in " +
                                            std::to_string(rounds) + " rounds: the corruption is not being seen");
        },
        std::chrono::seconds(100));
}

TEST_CASE("regression (defect 4): targeted corruptions of a SharedMap are SerializationErrors naming the cause") {
    Names names;
    // Rows of a map<string, string> are 32 bytes: key offset, key length, value offset, value length.
    constexpr std::size_t row = 32;
    auto map = SharedMap<std::string, std::string>::create(names("map"), 4096);
    RawSegment raw(names("map"));
    auto fill = [&] {
        map.clear();
        for (const char* k : {"a", "b", "c", "d", "e"}) map.set(k, std::string(100, k[0]));
    };
    in_child([&](Expect& expect) {
        RowStore::Control& c = raw.control();
        const std::uint64_t cap = raw.area_size();

        fill();
        c.count.store(cap); // a row count beyond the capacity
        expect.corrupt([&] { map.get("a"); }, "row count " + std::to_string(cap) + " exceeds", "count beyond capacity");
        expect.corrupt([&] { map.size(); }, "SharedMap \"" + names("map") + "\": size: its shared memory is corrupted",
                       "the message names the map and the operation");

        fill();
        c.heap_low.store(cap + 1);
        expect.corrupt([&] { map.keys(); }, "heap start", "heap start past the end");

        fill();
        raw.word(2 * row) = cap + 100; // row 2's key offset past the end
        expect.corrupt([&] { map.keys(); }, "row 2's key (offset " + std::to_string(cap + 100), "offset past end");

        fill();
        raw.word(1 * row + 24) = std::uint64_t{1} << 63; // row 1's value length: huge
        expect.corrupt([&] { map.get("b"); }, "row 1's value", "huge length");
        expect.corrupt([&] { map.items(); }, "lies outside the heap", "huge length, items");
        raw.word(1 * row + 24) = cap; // huge, but not past the end of the segment from offset 0
        expect.corrupt([&] { map.get("b"); }, "row 1's value", "length of the whole area");

        fill();
        raw.word(1 * row + 24) += 50; // row 1's value now overlaps the bytes above it
        (void)map.items();           // not detected by a read: its bytes are in the heap
        expect.corrupt([&] { map.set("f", std::string(3500, 'f')); }, "share heap bytes", "overlapping lengths");
        expect(map.size() == 5, "the failed set changed the count");

        fill();
        std::array<std::byte, row> tmp; // rows 1 and 3 swapped: out of key order
        std::memcpy(tmp.data(), raw.area() + 1 * row, row);
        std::memcpy(raw.area() + 1 * row, raw.area() + 3 * row, row);
        std::memcpy(raw.area() + 3 * row, tmp.data(), row);
        expect.corrupt([&] { map.keys(); }, "are not in key order", "unsorted rows, keys");
        expect.corrupt([&] { map.items(); }, "are not in key order", "unsorted rows, items");
        try { // an insertion next to the disorder sees it; elsewhere it may work
            map.set("c0", "x");
        } catch (const SerializationError& e) {
            expect(std::string(e.what()).find("not in key order") != std::string::npos, e.what());
        }

        fill();
        c.magic.store(0x1234);
        expect.corrupt([&] { map.get("a"); }, "control block was overwritten", "magic");
        map.clear(); // repairs
        map.set("z", "zz");
        expect(map.get("z") == "zz" && map.size() == 1, "clear() did not repair the control block");
    });
}

TEST_CASE("regression (defect 4): targeted corruptions of a SharedVector are SerializationErrors naming the cause") {
    Names names;
    constexpr std::size_t row = 16; // a vector<string>'s row: offset, length
    auto vec = SharedVector<std::string>::create(names("vec"), 4096);
    auto longs = SharedVector<long>::create(names("longs"), 4096);
    RawSegment raw(names("vec"));
    RawSegment raw_longs(names("longs"));
    auto fill = [&] {
        vec.clear();
        for (int i = 0; i < 5; ++i) vec.push_back(std::string(50, static_cast<char>('a' + i)));
    };
    in_child([&](Expect& expect) {
        const std::uint64_t cap = raw.area_size();
        fill();
        raw.control().count.store(cap / row + 1);
        expect.corrupt([&] { vec.at(0); }, "row count", "count beyond capacity");
        fill();
        raw.word(3 * row) = cap + 1;
        expect.corrupt([&] { vec.at(3); }, "row 3's element", "offset past end");
        expect.corrupt([&] { vec.to_vector(); }, "row 3's element", "offset past end, to_vector");
        fill();
        raw.word(2 * row + 8) = ~std::uint64_t{0};
        expect.corrupt([&] { vec.at(2); }, "lies outside the heap", "huge length");
        fill();
        raw.word(2 * row) = raw.word(3 * row); // rows 2 and 3 share bytes
        expect.corrupt([&] {
            for (int i = 0; i < 100; ++i) vec.push_back(std::string(100, 'x')); // until a compaction
        }, "share heap bytes", "shared bytes");
        fill();
        raw.control().reserved_rows.store(cap);
        expect.corrupt([&] { vec.push_back("x"); }, "reserved row count", "reservation beyond capacity");
        vec.clear();
        expect(vec.size() == 0, "clear() did not repair");
        vec.push_back("ok");
        expect(vec.at(0) == "ok", "clear() did not repair");

        // Elements stored in the row: only the control block can be wrong.
        longs.clear();
        for (long i = 0; i < 10; ++i) longs.push_back(i);
        raw_longs.control().count.store(~std::uint64_t{0});
        expect.corrupt([&] { longs.to_vector(); }, "row count", "count of longs");
        raw_longs.control().count.store(3);
        expect(longs.to_vector() == std::vector<long>{0, 1, 2}, "a plausible count is used as it is");
    });
}

TEST_CASE("regression (defect 4): a segment of the old layout (Boost.Interprocess containers) is refused by attach") {
    Names names;
    {
        auto map = SharedMap<std::string, int>::create(names("old"), 4096);
        RawSegment raw(names("old"));
        // Layout 1: [pthread_mutex_t][offset_ptr to the container][capacity]...
        *reinterpret_cast<std::int64_t*>(raw.payload() + sizeof(pthread_mutex_t)) = 16;
        *reinterpret_cast<std::uint64_t*>(raw.payload() + sizeof(pthread_mutex_t) + 8) = 4096;
        CHECK_THROWS_WITH((SharedMap<std::string, int>::attach(names("old"))),
                          Catch::Contains("does not have this mproc's container layout") &&
                              Catch::Contains("older mproc (Boost.Interprocess containers)"));
        CHECK_THROWS_AS((SharedMap<std::string, int>::attach(names("old"))), ValueError);
        CHECK_THROWS_AS(map.get("x"), SerializationError); // the handle already open sees it too
    }
    {
        auto vec = SharedVector<int>::create(names("oldvec"), 4096);
        RawSegment raw(names("oldvec"));
        raw.control().magic.store(0);
        CHECK_THROWS_WITH(SharedVector<int>::attach(names("oldvec")), Catch::Contains("container layout"));
    }
}

TEST_CASE("SharedMap against std::map: 20,000 random sets, updates, erases and gets agree, through compactions and full maps") {
    Names names;
    auto map = SharedMap<std::string, std::string>::create(names("model"), 16 * 1024);
    auto ints = SharedMap<int, long>::create(names("ints"), 4096);
    RawSegment raw(names("model"));
    in_child([&](Expect& expect) {
        std::mt19937_64 rng(13);
        std::map<std::string, std::string> model;
        long compactions = 0, fulls = 0;
        for (int op = 0; op < 20000 && expect.failure.empty(); ++op) {
            const std::string k = "key-" + std::to_string(rng() % 300);
            const std::uint64_t heap_before = raw.control().heap_low.load();
            const std::uint64_t what = rng() % 8;
            switch (what) {
            case 0:
            case 1:
            case 2: {
                const std::string v = random_text(rng, 80);
                try {
                    map.set(k, v);
                    model[k] = v;
                } catch (const ValueError& e) {
                    ++fulls;
                    expect(std::string(e.what()).find("full") != std::string::npos, e.what());
                }
                break;
            }
            case 3: {
                const std::string v = random_text(rng, 80);
                try {
                    const std::string got = map.update(k, [&](std::optional<std::string> old) { return old.value_or("") .substr(0, 10) + v; });
                    model[k] = model.count(k) ? model[k].substr(0, 10) + v : v;
                    expect(got == model[k], "update returned another value for " + k);
                } catch (const ValueError&) {
                    ++fulls;
                }
                break;
            }
            case 4:
            case 5: expect(map.erase(k) == (model.erase(k) == 1), "erase disagrees on " + k); break;
            default: {
                auto it = model.find(k);
                expect(map.get(k) == (it == model.end() ? std::nullopt : std::optional<std::string>(it->second)),
                       "get disagrees on " + k);
            }
            }
            // A set or update only lowers the heap's start, unless it compacted the heap.
            if (what <= 3 && raw.control().heap_low.load() > heap_before) ++compactions;
            if (op % 1000 == 999) {
                expect(map.size() == model.size(), "size disagrees at op " + std::to_string(op));
                expect(map.items() == std::vector<std::pair<std::string, std::string>>(model.begin(), model.end()),
                       "items disagree at op " + std::to_string(op));
            }
        }
        expect(compactions >= 10, "only " + std::to_string(compactions) + " compactions: the test does not reach them");
        expect(fulls >= 1, "the map never filled up");
        expect(map.free_bytes() < map.capacity_bytes(), "free_bytes");

        // int keys: operator< order, negative numbers first; exactly 4096 / 16 entries fit.
        std::map<int, long> int_model;
        for (int op = 0; op < 5000 && expect.failure.empty(); ++op) {
            const int k = static_cast<int>(rng() % 400) - 200;
            if (rng() % 3 == 0) {
                expect(ints.erase(k) == (int_model.erase(k) == 1), "int erase disagrees");
            } else {
                try {
                    ints.set(k, op);
                    int_model[k] = op;
                } catch (const ValueError&) {
                    expect(int_model.size() == 4096 / 16 && !int_model.count(k), "int map full before 256 entries");
                }
            }
        }
        expect(ints.items() == std::vector<std::pair<int, long>>(int_model.begin(), int_model.end()), "int items disagree");
    });
}

TEST_CASE("SharedVector against std::vector: random push_back, pop_back, set and at agree, through compactions") {
    Names names;
    auto vec = SharedVector<std::string>::create(names("model"), 8 * 1024);
    auto ints = SharedVector<int>::create(names("ints"), 4096);
    RawSegment raw(names("model"));
    in_child([&](Expect& expect) {
        std::mt19937_64 rng(17);
        std::vector<std::string> model;
        long compactions = 0;
        for (int op = 0; op < 20000 && expect.failure.empty(); ++op) {
            const std::uint64_t heap_before = raw.control().heap_low.load();
            const std::uint64_t count_before = raw.control().count.load();
            switch (rng() % 6) {
            case 0:
            case 1: {
                std::string v = random_text(rng, 90);
                try {
                    vec.push_back(v);
                    model.push_back(std::move(v));
                } catch (const ValueError&) {
                }
                break;
            }
            case 2: expect(vec.pop_back() == (model.empty() ? std::nullopt : std::optional<std::string>(model.back())), "pop_back");
                if (!model.empty()) model.pop_back();
                break;
            case 3:
                if (!model.empty()) {
                    const std::size_t i = rng() % model.size();
                    std::string v = random_text(rng, 90);
                    try {
                        vec.set(i, v);
                        model[i] = std::move(v);
                    } catch (const ValueError&) {
                    }
                }
                break;
            default:
                if (!model.empty()) {
                    const std::size_t i = rng() % model.size();
                    expect(vec.at(i) == model[i], "at " + std::to_string(i));
                }
            }
            if (raw.control().heap_low.load() > heap_before && raw.control().count.load() >= count_before) ++compactions;
            if (op % 1000 == 999) expect(vec.to_vector() == model, "to_vector disagrees at op " + std::to_string(op));
        }
        expect(compactions >= 10, "only " + std::to_string(compactions) + " compactions");

        // Elements stored in their rows: 4096 / 8 ints, exactly; reserve keeps rows clear.
        std::size_t n = 0;
        try {
            for (;; ++n) ints.push_back(static_cast<int>(n));
        } catch (const ValueError&) {
        }
        expect(n == 512, "a 4096-byte SharedVector<int> held " + std::to_string(n) + " ints, not 512");
        ints.clear();
        ints.reserve(512);
        expect(ints.free_bytes() == 0, "reserve(512) leaves " + std::to_string(ints.free_bytes()) + " bytes free");
        expect(ints.to_vector().empty(), "reserve added elements");
    });
}

// ---------------------------------------------------------------- leftovers

TEST_CASE("staleness goes by pid and start time: a reused pid is not the creator") {
    const std::uint64_t start = posix::own_start_time();
    CHECK(start != 0);
    CHECK(posix::process_alive(::getpid(), start));
    CHECK_FALSE(posix::process_alive(::getpid(), start + 1)); // our pid, another start: a reused pid
    Helper h({"no-such-command", "x"});
    const pid_t pid = h.pid();
    auto st = posix::process_stat(pid);
    CHECK(h.join() == shm_protocol::usage);
    CHECK_FALSE(posix::process_alive(pid, st ? st->start_time : 0)); // reaped
    CHECK_FALSE(posix::process_alive(0, 0));
}

TEST_CASE("a creator that exits normally removes its names") {
    Names names;
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper creator({"create-and-wait", names.tag()});
    REQUIRE(ready.try_acquire_for(bound));
    CHECK(names.existing() == std::set<std::string>{names("bytes"), names("go"), names("map"), names("queue"), names("ready")});
    CHECK(SharedMap<std::string, int>::attach(names("map")).get("answer") == 42);
    go.release();
    CHECK(creator.join() == 0);
    CHECK(names.existing() == std::set<std::string>{names("go"), names("ready")});
}

TEST_CASE("regression (defect 6): a creator ended by SIGTERM or SIGINT removes its names, and still dies of the signal") {
    for (int sig : {SIGTERM, SIGINT}) {
        INFO("signal " << sig);
        Names names;
        Event created;
        Process creator([&] {
            auto q = NamedQueue<int>::create(names("q"));
            auto mem = SharedMemory::create(names("mem"), 64);
            created.set();
            Event never;
            never.wait_for(bound); // ended by the signal long before
            mproc::exit(3);
        });
        creator.start();
        REQUIRE(created.wait_for(bound));
        CHECK(exists(names("q")));
        CHECK(exists(names("mem")));
        REQUIRE(::kill(creator.pid(), sig) == 0);
        test::join_bounded(creator);
        CHECK(creator.exitcode() == -sig); // the default action ran after the cleanup
        CHECK_FALSE(exists(names("q")));
        CHECK_FALSE(exists(names("mem")));
    }
}

TEST_CASE("a program's own SIGTERM handler is kept: it runs, and exit() from the program removes the names") {
    Names names;
    Event created;
    SharedValue<int> handled(0);
    static SharedValue<int>* handled_ptr = nullptr;
    static volatile std::sig_atomic_t stop = 0;
    handled_ptr = &handled;
    Process creator([&] {
        std::signal(SIGTERM, [](int) {
            handled_ptr->store(1);
            stop = 1;
        });
        auto q = NamedQueue<int>::create(names("q"));
        created.set();
        test::poll_until([] { return stop != 0; }, 1ms); // the program's own loop, polling its flag
        std::exit(7); // ends the program without destroying `q`: the exit hook removes its name
    });
    creator.start();
    REQUIRE(created.wait_for(bound));
    REQUIRE(exists(names("q")));
    creator.terminate();
    test::join_bounded(creator);
    CHECK(handled.load() == 1);
    CHECK(creator.exitcode() == 7);
    CHECK_FALSE(exists(names("q")));
}

TEST_CASE("a creator killed by SIGKILL leaves stale names: detected, re-attached, replaced and cleaned") {
    Names names;
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper creator({"create-and-wait", names.tag()});
    REQUIRE(ready.try_acquire_for(bound));
    for (const SharedMemoryInfo& info : list_shared_memory(names.tag() + "."))
        if (info.creator_pid == creator.pid()) CHECK(info.state == "live");
    creator.kill();
    CHECK(creator.join() == -SIGKILL);

    std::map<std::string, SharedMemoryInfo> infos;
    for (SharedMemoryInfo& info : list_shared_memory(names.tag() + ".")) infos[info.name] = info;
    REQUIRE(infos.size() == 5);
    for (const char* n : {"map", "bytes", "queue"}) {
        const SharedMemoryInfo& info = infos[names(n)];
        INFO(n);
        CHECK(info.creator_pid == creator.pid());
        CHECK_FALSE(info.creator_alive);
        CHECK(info.stale);
        CHECK(info.state == "stale");
    }
    CHECK(infos[names("map")].holds == "SharedMap<std::string, int>");
    CHECK_FALSE(infos[names("ready")].stale); // ours, and we are alive

    // The data is still there: a later process re-attaches.
    {
        auto map = SharedMap<std::string, int>::attach(names("map"));
        CHECK(map.get("answer") == 42);
        CHECK(map.get("pid") == static_cast<int>(creator.pid()));
        auto queue = NamedQueue<std::string>::attach(names("queue"));
        CHECK(queue.get_for(bound) == "one");
        auto bytes = SharedMemory::attach(names("bytes"), 4096);
        CHECK(bytes.buf()[250] == std::byte{250});
    }
    // Creating a stale name fails and says why, unless asked to replace it.
    CHECK_THROWS_WITH(SharedMemory::create(names("bytes"), 8), Catch::Contains("stale") && Catch::Contains("mproc-shm clean"));
    {
        auto fresh = SharedMap<std::string, int>::create(names("map"), 4096, CreateOptions{.replace_stale = true});
        CHECK(fresh.empty());
        CHECK_THROWS_AS((SharedMap<std::string, int>::create(names("map"), 4096, CreateOptions{.replace_stale = true})), OSError);
    }
    // The cleanup removes exactly the stale ones.
    auto removed = remove_stale_shared_memory(names.tag() + ".");
    std::sort(removed.begin(), removed.end());
    CHECK(removed == std::vector<std::string>{names("bytes"), names("queue")});
    CHECK(names.existing() == std::set<std::string>{names("go"), names("ready")});
}

TEST_CASE("a creator that dies before finishing: attach fails at once instead of waiting, and the name is stale") {
    Names names;
    auto ready = NamedSemaphore::create(names("ready"), 0);
    auto go = NamedSemaphore::create(names("go"), 0);
    Helper creator({"create-unfinished", names.tag()});
    REQUIRE(ready.try_acquire_for(bound));
    auto info = info_of(names("unfinished"));
    REQUIRE(info);
    CHECK(info->state == "building");
    CHECK_FALSE(info->stale);
    creator.kill();
    CHECK(creator.join() == -SIGKILL);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(SharedMemory::attach(names("unfinished")), Catch::Contains("was never finished") &&
                                                                     Catch::Contains(std::to_string(creator.pid())));
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    info = info_of(names("unfinished"));
    REQUIRE(info);
    CHECK(info->stale);
    CHECK_FALSE(info->ready);
    CHECK(remove_stale_shared_memory(names.tag() + ".") == std::vector<std::string>{names("unfinished")});
}

TEST_CASE("forked children of the creator do not remove its names") {
    Names names;
    auto shm = SharedMemory::create(names("bytes"), 8);
    Process child([&] {
        if (shm.is_creator()) mproc::exit(3);
        shm.buf()[0] = std::byte{5};
        shm.close(); // not the creator here: the name stays
    });
    child.start();
    test::join_bounded(child);
    CHECK(child.exitcode() == 0);
    CHECK(shm.buf()[0] == std::byte{5});
    CHECK(exists(names("bytes")));
}

TEST_CASE("the test suite left nothing in /dev/shm: no name of a test process that has ended") {
    std::vector<std::string> orphans;
    for (const SharedMemoryInfo& info : list_shared_memory("shmtest-")) {
        // "shmtest-<pid>-<n>.<what>": a name whose test process is gone was left behind.
        const pid_t pid = static_cast<pid_t>(std::strtol(info.name.c_str() + std::strlen("shmtest-"), nullptr, 10));
        if (pid != ::getpid() && !posix::process_stat(pid)) orphans.push_back(info.name);
    }
    INFO("left behind: " << Names::join(orphans));
    CHECK(orphans.empty());
}
