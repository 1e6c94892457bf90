// The pool's zygote: a small process forked from the parent when the pool is built (after its rings,
// slots and buffers exist), which then forks every worker, the replacements included, on the
// parent's request. Every worker therefore starts from the parent as it was at the pool's
// construction, as with Python's forkserver or Android's zygote: replacing a worker never forks the
// user's process again, so a lock that one of the user's later threads holds cannot be inherited
// locked by a new worker, and memory the parent allocated since is not copied into it.
//
// Protocol: one socket pair, one request then its reply, always from under the pool's lock.
//   spawn(slot, name) -> the pid of a new worker running worker(slot), or the failed fork's error
//   reap(pid)         -> its exit code, and the exception that escaped it if any
//   stop              -> the zygote kills and reaps what is left, then exits 0 (no reply)
// The zygote reaps a worker only when asked, so the parent may poll a pidfd on it and signal it by
// pid without any risk of the pid's reuse. The workers die with the zygote (PR_SET_PDEATHSIG), the
// zygote with the parent. A zygote that died is seen as end-of-file on the socket or as its exit;
// every later request then answers "gone" instead of blocking (the pool breaks, see WorkerPool).
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <poll.h>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "algorithm.hpp"
#include "chrono.hpp"
#include "../errors.hpp"
#include "backoff.hpp"
#include "channel.hpp"
#include "child_process.hpp"
#include "codec/bytes.hpp"
#include "deadline.hpp"
#include "deferred.hpp"
#include "functional.hpp"
#include "posix/process.hpp"
#include "posix/procfs.hpp"
#include "posix/socket.hpp"
#include "posix/terminal.hpp"

namespace mproc::detail {

/// One request or reply between the pool and its zygote. (A template like the classes below, so that
/// its codec is instantiated only with them.)
template <class = void>
struct BasicZygoteMessage {
    std::uint32_t op = 0;    // a request's Zygote::Op; 0 in replies
    std::uint64_t slot = 0;  // spawn: the worker's slot
    std::int32_t pid = 0;    // reap: the worker; replies: the worker (0: spawn failed)
    std::int32_t code = 0;   // reap's reply: the exit code; spawn's reply: the fork's errno
    std::string name;        // spawn: the worker's name; replies: the escaped exception's type ("" if none)
    std::string message;     // replies: that exception's message, or the failed fork's
};

// Class templates over an unused parameter, so that their bodies (and the codec of ZygoteMessage
// they instantiate) are compiled only in translation units that build a Pool: <mproc/mproc.hpp>
// alone costs less to compile.
using ZygoteMessage = BasicZygoteMessage<>;

template <class = void>
class BasicZygote;
using Zygote = BasicZygote<>;
template <class = void>
class BasicZygoteWorker;
using ZygoteWorker = BasicZygoteWorker<>;

/// A worker forked by the zygote, seen from the parent: the members of Process that the pool's
/// supervision uses. Liveness comes from a pidfd (no reaping); exitcode() and error() ask the
/// zygote to reap it once it has exited. Used under the pool's lock only.
template <class U>
class BasicZygoteWorker {
public:
    BasicZygoteWorker(BasicZygote<U>& zygote, pid_t pid) : zygote_(&zygote), pid_(pid), owner_(posix::current_pid()) {
        pidfd_ = posix::pidfd_open(pid); // the pid is ours to use until the zygote reaps it, on our request
    }
    BasicZygoteWorker(const BasicZygoteWorker&) = delete;
    BasicZygoteWorker& operator=(const BasicZygoteWorker&) = delete;
    /// Kills and reaps a worker still running (in the process that started it only).
    ~BasicZygoteWorker();

    pid_t pid() const noexcept { return pid_; }

    /// True until the worker exits. Does not reap it.
    bool is_alive() { return !reaped_ && !exited(); }

    /// Sends SIGKILL. Throws StateError once it was reaped (as Process::kill).
    void kill();

    /// Waits for the worker to exit, then has the zygote reap it. Returns at once if the zygote is
    /// gone (its workers die with it).
    void join();

    /// nullopt while it runs, or when the zygote died before telling; else 0, N or -SIGNUM as
    /// Process::exitcode(). Reaps it (one request to the zygote) once it has exited.
    std::optional<int> exitcode() {
        if (!reaped_ && exited()) reap();
        return exitcode_;
    }

    /// The exception that escaped the worker's function, once it has exited.
    std::optional<RemoteError> error() {
        exitcode();
        return error_;
    }

private:
    bool exited() {
        if (pidfd_ >= 0) {
            pollfd fd{pidfd_, POLLIN, 0};
            return posix::poll_until({&fd, 1}, Deadline::after(std::chrono::seconds(0))) > 0;
        }
        // No pidfd (kernel before 5.3): a zombie still holds its pid, since the zygote waits for us.
        auto st = posix::process_stat(pid_);
        return !st || st->state == 'Z' || st->state == 'X';
    }
    void reap();

    BasicZygote<U>* zygote_;
    pid_t pid_;
    int pidfd_ = -1;
    pid_t owner_;
    bool reaped_ = false;
    std::optional<int> exitcode_;
    std::optional<RemoteError> error_;
};

/// The parent's side of the zygote (see the file comment). Not copyable, not movable; used under
/// the pool's lock only. In a process other than the one that started it, it does nothing.
template <class U>
class BasicZygote {
    using Message = BasicZygoteMessage<U>;

public:
    enum class Op : std::uint32_t { spawn = 1, reap = 2, stop = 3 };

    BasicZygote() = default;
    BasicZygote(const BasicZygote&) = delete;
    BasicZygote& operator=(const BasicZygote&) = delete;
    ~BasicZygote() { stop(); }

    /// Forks the zygote now; the workers it forks later run `worker(slot)`, from this moment's
    /// memory. Throws OSError if the fork or the socket pair fails.
    void start(std::function<void(std::size_t)> worker) {
        worker_ = std::move(worker);
        owner_ = posix::current_pid();
        auto [to_zygote, in_zygote] = posix::stream_socket_pair();
        to_zygote_.emplace(to_zygote, true, true);
        in_zygote_.emplace(in_zygote, true, true);
        process_.emplace(bind_task([this] { serve(); }), "PoolZygote", false);
        process_->start();
        in_zygote_.reset();
    }

    /// A new worker for `slot`, or nullptr if the zygote is gone (lost() then says so). Throws
    /// OSError if the zygote could not fork it.
    std::unique_ptr<BasicZygoteWorker<U>> spawn(std::size_t slot, const std::string& name) {
        auto reply = ask(request(Op::spawn, slot, 0, name));
        if (!reply) return nullptr;
        if (reply->pid <= 0) throw OSError(reply->code, "Pool: starting worker '" + name + "': " + reply->message);
        const pid_t pid = reply->pid;
        try {
            return std::make_unique<BasicZygoteWorker<U>>(*this, pid);
        } catch (...) { // no pidfd (EMFILE...): the worker must not outlive its handle
            posix::send_signal(pid, SIGKILL);
            ask(request(Op::reap, 0, pid));
            throw;
        }
    }

    /// True once the zygote has died (or was stopped): it starts and reaps no more workers.
    bool lost() const noexcept { return lost_; }

    /// The zygote's pid (0 before start()).
    pid_t pid() const noexcept { return process_ ? process_->pid() : 0; }

    /// After lost(): how it ended, as Process::exitcode() says it (waits for that, briefly).
    std::optional<int> exitcode() {
        settle_exit();
        return process_ ? process_->exitcode() : std::nullopt;
    }

    /// After lost(): "the process that forks the pool's workers (pid 42) was killed by SIGKILL".
    std::string death() {
        const std::optional<int> code = exitcode();
        std::string how = !code ? "ended" : *code < 0 ? "was killed by " + posix::signal_name(-*code) : "exited with code " + std::to_string(*code);
        if (process_)
            if (auto e = process_->error()) how += " (" + e->type_name() + ": " + e->what() + ")";
        return "the process that forks the pool's workers (pid " + std::to_string(pid()) + ") " + how;
    }

    /// Tells the zygote to exit and reaps it (killing it if it does not exit within a few seconds).
    /// Idempotent; called once every worker was reaped.
    void stop() noexcept {
        if (!process_ || owner_ != posix::current_pid() || stopped_) return;
        stopped_ = true;
        try {
            if (!lost_) send(*to_zygote_, request(Op::stop));
        } catch (...) { // gone already
        }
        lost_ = true;
        settle_exit();
        to_zygote_.reset();
    }

private:
    friend BasicZygoteWorker<U>;

    // How often a parent waiting for a reply checks that the zygote still lives (a reply itself
    // wakes it at once).
    static constexpr auto liveness_tick = std::chrono::milliseconds(20);
    // How long a zygote that was told to stop, or lost its socket, may take to exit.
    static constexpr auto exit_grace = std::chrono::seconds(5);

    static Message request(Op op, std::uint64_t slot = 0, pid_t pid = 0, std::string name = {}) {
        Message m;
        m.op = static_cast<std::uint32_t>(op);
        m.slot = slot;
        m.pid = pid;
        m.name = std::move(name);
        return m;
    }

    static void send(Channel& c, const Message& m) {
        c.send_frame(codec::encoded_size(m), [&](std::byte* out) { codec::encode_into(m, out); });
    }
    static Message receive(Channel& c) {
        Message m;
        c.recv_frame("recv", [&](std::span<const std::byte> b) { codec::decode_into(b, m); });
        return m;
    }

    // One request, its reply; nullopt if the zygote is gone (never blocks on a dead zygote).
    std::optional<Message> ask(const Message& request) {
        if (lost_) return std::nullopt;
        try {
            send(*to_zygote_, request);
            while (!to_zygote_->poll_until(Deadline::after(liveness_tick)))
                if (!process_->is_alive()) {
                    lost_ = true;
                    return std::nullopt;
                }
            return receive(*to_zygote_);
        } catch (const EOFError&) {
            lost_ = true;
            return std::nullopt;
        }
    }

    // Reaps the zygote, which is exiting or was told to.
    void settle_exit() noexcept {
        if (!process_ || owner_ != posix::current_pid() || process_->pid() == 0) return;
        try {
            if (!process_->join_until(Deadline::after(exit_grace), "join_for")) {
                process_->signal("kill", SIGKILL);
                process_->join_until(Deadline::never(), "join");
            }
        } catch (...) {
        }
    }

    // In the zygote.
    void serve() {
        to_zygote_.reset(); // the parent's end
        posix::ignore_signal(SIGINT); // Ctrl-C is for the parent; a dying parent takes the zygote along
        // The parent's handlers are not the zygote's; SIGCHLD by default keeps the workers' exit codes.
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGCHLD}) posix::default_signal(sig);
        Channel& parent = *in_zygote_;
        std::vector<ChildProcess> workers; // as many as the pool has, or a few more
        auto worker = [&](pid_t pid) {
            return std::find_if(workers.begin(), workers.end(), [&](const ChildProcess& w) { return w.pid() == pid; });
        };
        for (;;) {
            Message m;
            try {
                m = receive(parent);
            } catch (const EOFError&) {
                break;
            }
            if (m.op == static_cast<std::uint32_t>(Op::stop)) break;
            Message reply;
            if (m.op == static_cast<std::uint32_t>(Op::spawn)) {
                try {
                    ChildProcess p(bind_task([this, slot = m.slot] {
                                       in_zygote_.reset();
                                       worker_(static_cast<std::size_t>(slot));
                                   }),
                                   m.name, true);
                    p.start();
                    reply.pid = p.pid();
                    workers.push_back(std::move(p));
                } catch (const OSError& e) {
                    reply.code = e.code().value();
                    reply.message = e.what();
                }
            } else if (auto it = worker(m.pid); m.op == static_cast<std::uint32_t>(Op::reap) && it != workers.end()) {
                it->join_until(Deadline::never(), "join"); // at once: the parent asks once the worker has exited, or after killing it
                reply.pid = m.pid;
                reply.code = it->exitcode().value_or(0);
                if (auto e = it->error()) {
                    reply.name = e->type_name();
                    reply.message = e->what();
                }
                workers.erase(it);
            }
            try {
                send(parent, reply);
            } catch (const EOFError&) {
                break;
            }
        }
        for (auto& w : workers) {
            if (w.is_alive()) w.signal("kill", SIGKILL);
            w.join_until(Deadline::never(), "join");
        }
    }

    // Member<T> is T, named through U so that the member functions are compiled only where a pool
    // is built (deferred.hpp).
    template <class T>
    using Member = dependent_t<U, T>;

    Member<std::function<void(std::size_t)>> worker_;
    Member<std::optional<Channel>> to_zygote_; // the parent's end
    Member<std::optional<Channel>> in_zygote_; // the zygote's end
    Member<std::optional<ChildProcess>> process_;
    pid_t owner_ = 0;
    bool lost_ = false;
    bool stopped_ = false;
};

template <class U>
BasicZygoteWorker<U>::~BasicZygoteWorker() {
    if (owner_ == posix::current_pid() && !reaped_) {
        try {
            kill();
            join();
        } catch (...) {
        }
    }
    posix::close_fd(pidfd_);
}

template <class U>
void BasicZygoteWorker<U>::kill() {
    if (reaped_)
        throw StateError("Pool: worker " + std::to_string(pid_) + " has already exited and been reaped; its pid may belong to another process now");
    // Once the zygote is gone, the worker (dead or dying with it) may have been reaped by init.
    if (!zygote_->lost()) posix::send_signal(pid_, SIGKILL);
}

template <class U>
void BasicZygoteWorker<U>::join() {
    if (reaped_) return;
    if (pidfd_ >= 0) {
        pollfd fd{pidfd_, POLLIN, 0};
        posix::poll_until({&fd, 1}, Deadline::never());
    } else {
        Backoff backoff(std::chrono::microseconds(50), std::chrono::milliseconds(10));
        while (!exited()) backoff.pause();
    }
    reap();
}

template <class U>
void BasicZygoteWorker<U>::reap() {
    reaped_ = true;
    auto reply = zygote_->ask(BasicZygote<U>::request(BasicZygote<U>::Op::reap, 0, pid_));
    if (!reply || reply->pid != pid_) return; // the zygote died: nobody can tell how the worker ended
    exitcode_ = reply->code;
    if (!reply->name.empty()) error_.emplace(reply->name, reply->message, pid_);
}

} // namespace mproc::detail
