#include "support.hpp"

#include <mproc/pipe.hpp>

#include <map>
#include <span>
#include <csignal>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <vector>

using namespace mproc;
using test::bound;
using test::join_bounded;
using namespace std::chrono_literals;

namespace {
struct Reading {
    std::string sensor;
    std::vector<double> values;
    bool operator==(const Reading&) const = default;
};
} // namespace

TEST_CASE("a worker sends to its parent through a one-way pipe, then EOFError") {
    auto pipe_rx = Pipe<Reading>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    CHECK(rx.readable());
    CHECK_FALSE(rx.writable());
    CHECK(tx.writable());
    CHECK_FALSE(tx.readable());
    Process worker([&] {
        rx.close(); // the end this process does not use
        for (int i = 0; i < 3; ++i) tx.send(Reading{"t" + std::to_string(i), std::vector<double>(static_cast<std::size_t>(i), 1.5)});
    });
    worker.start();
    tx.close(); // or the parent itself would keep the write side open and never see EOF
    for (int i = 0; i < 3; ++i) {
        REQUIRE(rx.poll(bound));
        CHECK(rx.recv() == Reading{"t" + std::to_string(i), std::vector<double>(static_cast<std::size_t>(i), 1.5)});
    }
    join_bounded(worker);
    CHECK_THROWS_AS(rx.recv(), EOFError);
    CHECK_THROWS_WITH(rx.recv(), Catch::Contains("other end is closed"));
}

TEST_CASE("a duplex pipe carries requests and replies both ways") {
    auto pipe_parent_end = Pipe<std::map<std::string, int>>();
    auto& parent_end = pipe_parent_end.first;
    auto& child_end = pipe_parent_end.second;
    Process worker([&] {
        parent_end.close();
        for (;;) {
            std::map<std::string, int> m;
            try {
                m = child_end.recv();
            } catch (const EOFError&) {
                return;
            }
            for (auto& [k, v] : m) v *= 2;
            child_end.send(m);
        }
    });
    worker.start();
    child_end.close();
    for (int i = 0; i < 100; ++i) {
        parent_end.send({{"a", i}, {"b", -i}});
        REQUIRE(parent_end.poll(bound));
        auto reply = parent_end.recv();
        CHECK(reply == std::map<std::string, int>{{"a", 2 * i}, {"b", -2 * i}});
    }
    parent_end.close();
    join_bounded(worker);
    CHECK(worker.exitcode() == 0);
}

TEST_CASE("two ends sending large messages to each other at once do not deadlock") {
    auto pipe_a = Pipe<std::string>();
    auto& a = pipe_a.first;
    auto& b = pipe_a.second;
    const std::string big_a(8 << 20, 'a'), big_b(8 << 20, 'b');
    SharedValue<int> ok(0);
    Process worker([&] {
        a.close();
        b.send(big_b); // both sides send 8 MiB before either receives
        ok.value() = b.recv() == big_a;
    });
    worker.start();
    b.close();
    a.send(big_a);
    CHECK(a.recv() == big_b);
    join_bounded(worker);
    CHECK(ok.value() == 1);
}

TEST_CASE("a one-way pipe is a pipe(2) and carries messages far larger than its buffer, both ways of closing") {
    auto pipe_rx = Pipe<std::string>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    struct stat st{};
    REQUIRE(::fstat(rx.fileno(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    const std::string big(8 << 20, 'x');
    Process sender([&] {
        rx.close();
        tx.send(big);
        tx.send(std::string(3, 'y'));
        tx.send_bytes({}); // an empty frame
    });
    sender.start();
    tx.close();
    CHECK(rx.recv() == big);
    CHECK(rx.recv() == "yyy");
    CHECK(rx.recv_bytes().empty());
    join_bounded(sender);
    CHECK(sender.exitcode() == 0);
    CHECK_THROWS_AS(rx.recv(), EOFError);
}

TEST_CASE("sending into a one-way pipe whose reader has gone is EOFError, never SIGPIPE") {
    auto pipe_rx = Pipe<std::string>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    Event reader_ready;
    Process reader([&] {
        tx.close();
        reader_ready.set();
        (void)rx.recv(); // one message, then leave without reading the rest
    });
    reader.start();
    rx.close();
    REQUIRE(reader_ready.wait_for(bound));
    sigset_t before{}, after{};
    ::pthread_sigmask(SIG_BLOCK, nullptr, &before);
    // A sender blocked on a full pipe learns it when the reader leaves: 8 MiB cannot fit.
    CHECK_THROWS_AS(
        [&] {
            for (int i = 0; i < 4; ++i) tx.send(std::string(8 << 20, 'z'));
        }(),
        EOFError);
    CHECK_THROWS_WITH(tx.send("again"), Catch::Contains("other end is closed"));
    ::pthread_sigmask(SIG_BLOCK, nullptr, &after);
    CHECK(sigismember(&after, SIGPIPE) == sigismember(&before, SIGPIPE)); // the mask is restored
    sigset_t pending{};
    ::sigpending(&pending);
    CHECK_FALSE(sigismember(&pending, SIGPIPE)); // no SIGPIPE left behind either
    join_bounded(reader);
    CHECK(reader.exitcode() == 0);
}

TEST_CASE("one-way pipes leave SIGPIPE's meaning alone for every other write, and keep a program's own choice") {
    SECTION("a raw write to a pipe without readers still ends the process with SIGPIPE") {
        SharedValue<int> send_failed_cleanly(0);
        Process p([&] {
            auto pipe_rx = Pipe<int>(false); // one-way pipes exist in this process
            pipe_rx.first.close();
            try {
                pipe_rx.second.send(1);
            } catch (const EOFError&) {
                send_failed_cleanly.store(1);
            }
            int fds[2];
            if (::pipe(fds) != 0) mproc::exit(2);
            ::close(fds[0]);
            (void)::write(fds[1], "x", 1); // not mproc's: the default action ends the process
            mproc::exit(3);
        });
        p.start();
        join_bounded(p);
        CHECK(send_failed_cleanly.load() == 1); // mproc's send: EOFError, the process lived on
        CHECK(p.exitcode() == -SIGPIPE);
    }
    SECTION("an ignored SIGPIPE stays ignored") {
        SharedValue<int> still_ignored(0);
        Process p([&] {
            ::signal(SIGPIPE, SIG_IGN);
            auto pipe_rx = Pipe<int>(false);
            pipe_rx.first.close();
            try {
                pipe_rx.second.send(1);
            } catch (const EOFError&) {
            }
            struct sigaction now {};
            ::sigaction(SIGPIPE, nullptr, &now);
            still_ignored.store(now.sa_handler == SIG_IGN);
        });
        p.start();
        join_bounded(p);
        CHECK(p.exitcode() == 0);
        CHECK(still_ignored.load() == 1);
    }
}

TEST_CASE("send_bytes and recv_bytes carry raw bytes, including empty messages") {
    auto pipe_a = Pipe<int>();
    auto& a = pipe_a.first;
    auto& b = pipe_a.second;
    std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{255}};
    a.send_bytes(bytes);
    a.send_bytes({});
    CHECK(b.recv_bytes() == bytes);
    CHECK(b.recv_bytes().empty());
    a.send(42);
    CHECK(b.recv() == 42);
}

TEST_CASE("poll times out when nothing arrives and sees end-of-file") {
    auto pipe_a = Pipe<int>();
    auto& a = pipe_a.first;
    auto& b = pipe_a.second;
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(a.poll(30ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK_FALSE(a.poll());
    b.close();
    CHECK(a.poll(bound)); // end-of-file is "readable": recv() reports it
    CHECK_THROWS_AS(a.recv(), EOFError);
}

TEST_CASE("wait returns the connections that have something to read") {
    auto pipe_r1 = Pipe<int>(false);
    auto& r1 = pipe_r1.first;
    auto& w1 = pipe_r1.second;
    auto pipe_r2 = Pipe<std::string>(false);
    auto& r2 = pipe_r2.first;
    auto& w2 = pipe_r2.second;
    CHECK(mproc::wait({&r1, &r2}, 20ms).empty());
    Process worker([&] { w2.send("ready"); });
    worker.start();
    auto ready = mproc::wait({&r1, &r2}, bound);
    REQUIRE(ready.size() == 1);
    CHECK(ready[0] == &r2);
    CHECK(r2.recv() == "ready");
    join_bounded(worker);
    w1.send(1);
    CHECK(mproc::wait({&r1, &r2}).size() == 1);
    CHECK_THROWS_AS(mproc::wait({&w1}, 1ms), StateError);
}

TEST_CASE("wait over a runtime-sized set returns exactly the ready connections") {
    std::vector<std::pair<Connection<int>, Connection<int>>> pipes;
    for (int i = 0; i < 6; ++i) pipes.push_back(Pipe<int>(false));
    std::vector<ConnectionBase*> readers;
    for (auto& [rx, tx] : pipes) readers.push_back(&rx);
    CHECK(mproc::wait(readers, 20ms).empty());
    Process worker([&] {
        pipes[1].second.send(10);
        pipes[4].second.send(40);
    });
    worker.start();
    join_bounded(worker);
    auto ready = mproc::wait(readers, bound);
    CHECK(ready == std::vector<ConnectionBase*>{readers[1], readers[4]});
    CHECK(pipes[1].first.recv() == 10);
    // A message already buffered counts as ready without waiting.
    pipes[4].second.send(41);
    CHECK(pipes[4].first.recv() == 40); // 41 is now read into rx's buffer, or still in the pipe
    CHECK(mproc::wait(readers, bound) == std::vector<ConnectionBase*>{readers[4]});
    CHECK(pipes[4].first.recv() == 41);
    CHECK(mproc::wait(std::span<ConnectionBase* const>(readers), 1ms).empty());
}

TEST_CASE("wait over connections and process sentinels tells which ended and which can be read") {
    auto pipe_rx = Pipe<std::string>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    Event finish, sent;
    Process sender([&] {
        tx.send("hello");
        sent.set();
        finish.wait_for(bound);
    });
    Process quitter([&] { finish.wait_for(bound); });
    sender.start();
    quitter.start();
    std::vector<ConnectionBase*> conns{&rx};
    std::vector<int> sentinels{sender.sentinel(), quitter.sentinel()};
    REQUIRE(sent.wait_for(bound));
    ReadySet r = mproc::wait(conns, sentinels, bound);
    CHECK(r.connections == conns);
    CHECK(r.sentinels.empty());
    CHECK(rx.recv() == "hello");
    CHECK(mproc::wait(conns, sentinels, 20ms).empty());
    finish.set();
    join_bounded(quitter);
    join_bounded(sender);
    r = mproc::wait(conns, sentinels, bound);
    CHECK(r.sentinels == sentinels); // both ended
    tx.close();                      // the parent's copy: now rx is at end-of-file too
    r = mproc::wait(conns, sentinels);
    CHECK(r.connections == conns);
    CHECK(mproc::wait({}, std::vector<int>{quitter.sentinel()}, 0ms).sentinels.size() == 1);
}

TEST_CASE("wait sleeps in one poll rather than spinning") {
    auto [rx, tx] = Pipe<int>(false);
    std::vector<ConnectionBase*> conns{&rx};
    auto cpu = [] {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    };
    auto before = cpu();
    CHECK(mproc::wait(conns, std::vector<int>{}, 300ms).empty());
    CHECK(cpu() - before < 100ms); // a busy wait would burn the whole 300 ms
}

TEST_CASE("wait refuses bad sentinels and connections") {
    auto [rx, tx] = Pipe<int>(false);
    std::vector<ConnectionBase*> conns{&rx};
    CHECK_THROWS_WITH(mproc::wait(conns, std::vector<int>{-1}, 1ms), Catch::Contains("not a descriptor"));
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    ::close(fds[0]);
    ::close(fds[1]);
    CHECK_THROWS_AS(mproc::wait(conns, std::vector<int>{fds[0]}, 1ms), ValueError);
    std::vector<ConnectionBase*> with_null{&rx, nullptr};
    CHECK_THROWS_WITH(mproc::wait(with_null, 1ms), Catch::Contains("null"));
    std::vector<ConnectionBase*> send_only{&tx};
    CHECK_THROWS_AS(mproc::wait(send_only, 1ms), StateError);
}

TEST_CASE("a sender that dies mid-message leaves EOFError naming the cut, not a hang") {
    auto pipe_rx = Pipe<std::string>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    Process worker([&] {
        // A frame header announcing 1000 bytes, then only 10 of them, then death.
        std::uint64_t n = 1000;
        std::vector<std::byte> partial(sizeof n + 10);
        std::memcpy(partial.data(), &n, sizeof n);
        ::write(tx.fileno(), partial.data(), partial.size());
        std::raise(SIGKILL);
    });
    worker.start();
    tx.close();
    join_bounded(worker);
    CHECK_THROWS_WITH(rx.recv(), Catch::Contains("in the middle of a message (18 of its 1008 framed bytes"));
    CHECK_THROWS_AS(rx.recv(), EOFError);
    CHECK_THROWS_WITH(rx.recv(), Catch::Contains("other end is closed"));
}

TEST_CASE("a corrupted frame header is a SerializationError") {
    auto pipe_rx = Pipe<std::string>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    std::uint64_t absurd = std::uint64_t{1} << 50;
    ::write(tx.fileno(), &absurd, sizeof absurd);
    CHECK_THROWS_AS(rx.recv(), SerializationError);
}

TEST_CASE("misuse of a connection is a StateError, sending to a closed peer an EOFError") {
    auto pipe_rx = Pipe<int>(false);
    auto& rx = pipe_rx.first;
    auto& tx = pipe_rx.second;
    CHECK_THROWS_AS(rx.send(1), StateError);
    CHECK_THROWS_WITH(rx.send(1), Catch::Contains("receives only"));
    CHECK_THROWS_AS(tx.recv(), StateError);
    CHECK_THROWS_WITH(tx.poll(), Catch::Contains("sends only"));
    rx.close();
    CHECK(rx.closed());
    CHECK_THROWS_AS(rx.recv(), StateError);
    CHECK_THROWS_AS(rx.fileno(), StateError);
    rx.close(); // idempotent
    CHECK_THROWS_AS(tx.send(1), EOFError);

    auto pipe_a = Pipe<int>();
    auto& a = pipe_a.first;
    auto& b = pipe_a.second;
    b.close();
    CHECK_THROWS_AS(a.send(1), EOFError);
}

TEST_CASE("a connection can be moved") {
    auto pipe_a = Pipe<int>();
    auto& a = pipe_a.first;
    auto& b = pipe_a.second;
    Connection<int> c = std::move(a);
    c.send(5);
    CHECK(b.recv() == 5);
    CHECK(a.closed()); // NOLINT(bugprone-use-after-move): the point of the test
}
