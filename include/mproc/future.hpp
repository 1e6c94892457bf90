// mproc/future.hpp — Future<R>, the result of work done in another process, and spawn().
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "codec.hpp"
#include "detail/arena.hpp"
#include "detail/deadline.hpp"
#include "detail/posix/process.hpp"
#include "errors.hpp"
#include "pipe.hpp"
#include "process.hpp"

namespace mproc {

namespace detail {

/// What a Future waits on: a spawned process now, a pool's task slot later.
template <class R>
class FutureSource {
public:
    using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    virtual ~FutureSource() = default;
    /// Blocks until the result is settled or `d` passes; true if settled.
    virtual bool wait_until(Deadline d) = 0;
    /// After wait_until returned true: the value, or the error as an exception_ptr.
    virtual std::variant<Value, std::exception_ptr> collect() = 0;
};

} // namespace detail

/// The result of work running in another process. get() may be called more than once.
/// Not safe to use from several threads at once.
template <class R>
class Future {
    using Source = detail::FutureSource<R>;

public:
    explicit Future(std::unique_ptr<Source> source) : source_(std::move(source)) {}
    Future(Future&&) noexcept = default;
    Future& operator=(Future&&) noexcept = default;

    /// Blocks until settled; returns the value or rethrows RemoteError, WorkerCrashed or TimeoutError.
    R get() {
        wait();
        if (auto* e = std::get_if<std::exception_ptr>(&*outcome_)) std::rethrow_exception(*e);
        if constexpr (!std::is_void_v<R>) return std::get<0>(*outcome_);
    }
    /// Blocks until settled.
    void wait() { wait_until_deadline(detail::Deadline::never()); }
    /// Blocks up to `d`; true if settled.
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> d) {
        return wait_until_deadline(detail::Deadline::after(d));
    }
    /// True once settled; never blocks.
    bool ready() { return wait_until_deadline(detail::Deadline::after(std::chrono::seconds(0))); }

private:
    bool wait_until_deadline(detail::Deadline d) {
        if (!source_) throw StateError("Future: this Future was moved from");
        if (outcome_) return true;
        if (!source_->wait_until(d)) return false;
        outcome_ = source_->collect();
        return true;
    }

    std::unique_ptr<Source> source_;
    std::optional<std::variant<typename Source::Value, std::exception_ptr>> outcome_;
};

namespace detail {

/// A spawned child's function and the one-way pipe its result comes back through. The child sends
/// the encoded value (an empty message for void) and exits; the parent reads it before reaping the
/// child, so a result larger than the socket's buffer cannot deadlock the two.
template <class R>
class SpawnSource final : public FutureSource<R> {
public:
    using typename FutureSource<R>::Value;

    template <class F, class... Args>
    explicit SpawnSource(F&& fn, Args&&... args)
        : pipe_(Pipe<Wire>(false)),
          process_(
              [tx = &pipe_.second](auto& f, auto&... a) {
                  if constexpr (std::is_void_v<R>) {
                      std::invoke(f, a...);
                      tx->send_bytes({});
                  } else {
                      tx->send_bytes(encode(static_cast<const R&>(std::invoke(f, a...))));
                  }
              },
              std::forward<F>(fn), std::forward<Args>(args)...) {
        process_.start();
        pipe_.second.close(); // the child's end: once the child is gone, the parent sees end-of-file
    }

    bool wait_until(Deadline d) override {
        if (!pipe_.first.poll(d.is_never() ? Clock::duration::max() : d.at() - Clock::now())) return false;
        try {
            bytes_ = pipe_.first.recv_bytes();
        } catch (const EOFError&) {
            // died or exited without sending: collect() tells which
        }
        process_.join(); // it has sent its result or closed its end: it is exiting
        return true;
    }

    std::variant<Value, std::exception_ptr> collect() override {
        if (bytes_) {
            if constexpr (std::is_void_v<R>) {
                return Value{};
            } else {
                try {
                    return decode<R>(*bytes_);
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
    using Wire = std::conditional_t<std::is_void_v<R>, int, R>;
    std::pair<Connection<Wire>, Connection<Wire>> pipe_;
    Process process_;
    std::optional<std::vector<std::byte>> bytes_;
};

} // namespace detail

/// Runs fn(args...) in a new child process and returns a Future for its result, which travels
/// through the codec: R is void or Serializable (<mproc/codec.hpp>). The Future's destructor joins
/// the child. Throws OSError if fork or socketpair fails.
template <class F, class... Args>
auto spawn(F&& fn, Args&&... args) {
    using R = std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>;
    static_assert(std::is_void_v<R> || Serializable<std::remove_cvref_t<R>>,
                  "mproc::spawn: the function's return type is not serializable: return a type the codec "
                  "supports (see <mproc/codec.hpp>), or give it a serialize() hook");
    return Future<R>(std::make_unique<detail::SpawnSource<R>>(std::forward<F>(fn), std::forward<Args>(args)...));
}

} // namespace mproc
