// spawn()'s side of a Future: a child process running the function, and the one-way pipe its
// result comes back through.
#pragma once

#include <csignal>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "chrono.hpp"
#include "../errors.hpp"
#include "callbacks.hpp"
#include "channel.hpp"
#include "child_process.hpp"
#include "codec/bytes.hpp"
#include "deadline.hpp"
#include "deferred.hpp"
#include "functional.hpp"
#include "future_source.hpp"
#include "posix/pipe.hpp"
#include "posix/process.hpp"

namespace mproc::detail {

/// A spawned child's function and the one-way pipe its result comes back through. The child sends
/// the encoded value (an empty message for void) and exits; the parent reads it before reaping the
/// child, so a result larger than the socket's buffer cannot deadlock the two.
template <class R>
class SpawnSource final : public FutureSource<R> {
public:
    using typename FutureSource<R>::Value;

    template <class F, class... Args>
    explicit SpawnSource(std::chrono::duration<double> timeout, std::chrono::duration<double> grace, F&& fn, Args&&... args)
        : timeout_(timeout), grace_(grace), pipe_(pipe_pair()),
          process_(bind_task(
                       [tx = &pipe_.second](auto& f, auto&... a) {
                           if constexpr (std::is_void_v<R>) {
                               detail::invoke(f, a...);
                               tx->send_bytes({});
                           } else {
                               tx->send_bytes(codec::encode(static_cast<const R&>(detail::invoke(f, a...))));
                           }
                       },
                       std::forward<F>(fn), std::forward<Args>(args)...),
                   "", false) {
        if (timeout.count() < 0) throw ValueError("spawn: the timeout must not be negative");
        if (timeout.count() > 0) deadline_ = Deadline::after(timeout);
        process_.start();
        pipe_.second.close(); // the child's end: once the child is gone, the parent sees end-of-file
    }

    bool wait_until(Deadline d) override {
        if (settled_) return true;
        const bool limited = !deadline_.is_never() && (d.is_never() || deadline_.at() < d.at());
        const Deadline until = limited ? deadline_ : d;
        pipe_.first.check("poll", true, "sends only");
        if (!pipe_.first.poll_until(until)) {
            if (!limited || !deadline_.expired()) return false;
            end_child(SIGKILL, std::make_exception_ptr(TimeoutError(
                                   "spawn: process " + std::to_string(process_.pid()) + " ran longer than its timeout (" +
                                   std::to_string(timeout_.count()) + " s) and was killed")));
            return true;
        }
        try {
            bytes_ = pipe_.first.recv_bytes("recv_bytes");
        } catch (const EOFError&) {
            // died or exited without sending: collect() tells which
        }
        process_.join_until(Deadline::never(), "join"); // it has sent its result or closed its end: it is exiting
        settle();
        return true;
    }
    bool settled() override { return wait_until(Deadline::after(std::chrono::seconds(0))); }
    bool peek() override { return settled_; }

    bool cancel() override {
        if (settled()) return false;
        end_child(SIGKILL, std::make_exception_ptr(CancelledError("spawn: process " + std::to_string(process_.pid()) + " was cancelled")));
        return true;
    }

    bool on_settled(std::function<void()> call) override {
        if (settled_) return false;
        callbacks_.push_back(std::move(call));
        return true;
    }

    // The child gets SIGTERM, then SIGKILL after the grace period; its callbacks run.
    void abandon() noexcept override {
        try {
            if (settled_) return;
            process_.signal("terminate", SIGTERM);
            if (!process_.join_until(Deadline::after(grace_), "join_for")) process_.signal("kill", SIGKILL);
            process_.join_until(Deadline::never(), "join");
            error_ = std::make_exception_ptr(CancelledError("spawn: the Future was destroyed before process " +
                                                            std::to_string(process_.pid()) + " returned; it was terminated"));
            settle();
        } catch (...) {
        }
    }

    std::variant<Value, std::exception_ptr> collect() override {
        if (error_) return error_;
        if (bytes_) {
            if constexpr (std::is_void_v<R>) {
                return Value{};
            } else {
                try {
                    return codec::decode<R>(*bytes_);
                } catch (...) {
                    return std::current_exception();
                }
            }
        }
        if (auto e = process_.error()) return std::make_exception_ptr(*e);
        int code = *process_.exitcode();
        std::string what = "spawn: process " + std::to_string(process_.pid()) +
                           (code < 0 ? " was killed by " + posix::signal_name(-code) : " exited with code " + std::to_string(code)) +
                           " before returning a result";
        return std::make_exception_ptr(WorkerCrashed(what, process_.pid(), code < 0 ? -code : 0, code < 0 ? 0 : code));
    }

private:
    void end_child(int sig, std::exception_ptr why) {
        if (sig == SIGKILL) process_.signal("kill", SIGKILL);
        process_.join_until(Deadline::never(), "join");
        error_ = std::move(why);
        settle();
    }
    void settle() {
        settled_ = true;
        run_callbacks(callbacks_);
    }

    static std::pair<Channel, Channel> pipe_pair() {
        auto [rx, tx] = posix::pipe_pair();
        return {Channel(rx, true, false, true), Channel(tx, false, true, true)};
    }

    // Member<T> is T, named through R so that the member functions are compiled only where spawn is
    // used (deferred.hpp).
    template <class T>
    using Member = dependent_t<R, T>;

    std::chrono::duration<double> timeout_;
    std::chrono::duration<double> grace_;
    Deadline deadline_ = Deadline::never();
    Member<std::pair<Channel, Channel>> pipe_;
    Member<ChildProcess> process_;
    Member<std::optional<std::vector<std::byte>>> bytes_;
    std::exception_ptr error_;
    bool settled_ = false;
    Member<std::vector<std::function<void()>>> callbacks_;
};

} // namespace mproc::detail
