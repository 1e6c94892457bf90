// Where the results of one Pool::map call (map, map_async, starmap, map_results) go as its chunks
// settle, under the pool's lock, and how the call's future is completed once the last one has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../functional.hpp"
#include "future_state.hpp"

namespace mproc::detail {

/// The results of one map call as its items settle. Element is R, or for map_results a
/// value-or-error type made from an R or an exception_ptr (mproc::Result): then every item keeps its
/// value or error; otherwise the map throws the lowest failing index's error.
template <class R, class Element>
struct MapState {
    static constexpr bool PerItem = !std::is_same_v<Element, R>;
    explicit MapState(std::size_t n) : results(n) {}
    std::vector<Element> results;
    std::size_t chunks_left = 1; // one count stands for "still submitting"
    std::size_t first_error_index = SIZE_MAX;
    std::exception_ptr first_error;
    std::shared_ptr<FutureState<std::vector<Element>>> future = std::make_shared<FutureState<std::vector<Element>>>();

    void put(std::size_t i, R&& value) {
        if constexpr (PerItem)
            results[i] = Element(std::move(value));
        else
            results[i] = std::move(value);
    }
    void fail(std::size_t i, std::exception_ptr e) {
        if constexpr (PerItem) {
            results[i] = Element(std::move(e));
        } else if (i < first_error_index) {
            first_error_index = i;
            first_error = std::move(e);
        }
    }
    std::function<void()> chunk_done() {
        if (--chunks_left != 0) return {};
        if (first_error)
            future->set(first_error);
        else
            future->set(std::move(results));
        return future->take_callbacks();
    }
};

/// Where the items of one map chunk go: their place in the map's results.
template <class R, class Element>
struct MapSink {
    std::shared_ptr<MapState<R, Element>> state;
    std::size_t base;
    void result(std::size_t i, R&& value) { state->put(base + i, std::move(value)); }
    void failed(std::size_t i, std::exception_ptr e) { state->fail(base + i, std::move(e)); }
    std::function<void()> done() { return state->chunk_done(); }
};

} // namespace mproc::detail
