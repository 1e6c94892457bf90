// mproc/spawn.hpp — spawn(): a function run in a new child process, its result in a Future.
#pragma once

#include "detail/cxx20.hpp" // first: mproc needs C++20, said in one line

#include <memory>
#include <type_traits>
#include <utility>

#include "detail/chrono.hpp"
#include "codec.hpp"
#include "detail/spawn_source.hpp"
#include "errors.hpp"
#include "future.hpp"

namespace mproc {

/// `timeout`: the child is killed and get() throws TimeoutError if it has not returned by then
/// (0: no limit). `grace`: how long a child whose Future is destroyed unsettled has between SIGTERM
/// and SIGKILL.
struct SpawnOptions {
    std::chrono::duration<double> timeout{0};
    std::chrono::duration<double> grace{1.0};
};

/// Runs fn(args...) in a new child process and returns a Future for its result, which travels
/// through the codec: R is void or Serializable (<mproc/codec.hpp>). Destroying the Future before
/// the child returned terminates the child (SIGTERM, then SIGKILL after options.grace); cancel()
/// kills it. Throws OSError if fork or the pipe fails, ValueError for a negative timeout.
template <class F, class... Args>
auto spawn(SpawnOptions options, F&& fn, Args&&... args) {
    using R = std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>;
    static_assert(!std::is_reference_v<R>, "mproc::spawn: the function returns a reference; a result travels by value "
                                           "from the child: return a value");
    static_assert(std::is_void_v<R> || Serializable<std::remove_cvref_t<R>>,
                  "mproc::spawn: the function's return type is not serializable: return a type the codec "
                  "supports (see <mproc/codec.hpp>), or give it a serialize() hook");
    return detail::FutureAccess::make<R>(std::make_unique<detail::SpawnSource<R>>(options.timeout, options.grace, std::forward<F>(fn),
                                                                                  std::forward<Args>(args)...));
}
/// As above, with no time limit.
template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
auto spawn(F&& fn, Args&&... args) {
    return spawn(SpawnOptions{}, std::forward<F>(fn), std::forward<Args>(args)...);
}

} // namespace mproc
