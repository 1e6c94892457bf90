// The pool's table of unsettled tasks, by id. Ids are handed out in increasing order, so the table is
// a deque kept sorted by id: lookup is a binary search, insertion is at the back, and an erased entry
// stays as an empty slot until every entry before it is gone too (tasks settle roughly in the order
// they were submitted, so the front empties as it goes). Behind one long task, empty slots could pile
// up: once they outnumber the tasks, they are dropped in one pass (amortised O(1) per erase), so a
// walk over the table stays proportional to the tasks in it. A std::map did the same job; this costs
// less to compile (no <map> in <mproc/pool.hpp>) and one allocation per task fewer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>

namespace mproc::detail {

template <class Task>
class TaskTable {
public:
    /// Adds `task` under `id`, which must be greater than every id added before.
    void insert(std::uint64_t id, std::shared_ptr<Task> task) {
        entries_.push_back({id, std::move(task)});
        ++size_;
    }

    /// The task under `id`, or nullptr. The pointer stays valid until the next erase().
    std::shared_ptr<Task>* find(std::uint64_t id) noexcept {
        std::size_t lo = 0, hi = entries_.size();
        while (lo < hi) {
            std::size_t mid = lo + (hi - lo) / 2;
            if (entries_[mid].id < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == entries_.size() || entries_[lo].id != id || !entries_[lo].task) return nullptr;
        return &entries_[lo].task;
    }

    /// Removes the task under `id`; a no-op if there is none.
    void erase(std::uint64_t id) noexcept {
        std::shared_ptr<Task>* task = find(id);
        if (!task) return;
        task->reset();
        --size_;
        while (!entries_.empty() && !entries_.front().task) entries_.pop_front();
        while (!entries_.empty() && !entries_.back().task) entries_.pop_back();
        if (entries_.size() > 2 * size_ + 64) std::erase_if(entries_, [](const Entry& e) { return !e.task; });
    }

    /// Calls `f(id, task)` on every task, in id order.
    template <class F>
    void for_each(F&& f) {
        for (Entry& e : entries_)
            if (e.task) f(e.id, e.task);
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    /// Empties the table and returns what it held.
    TaskTable take() noexcept {
        TaskTable all;
        all.entries_.swap(entries_);
        all.size_ = std::exchange(size_, 0);
        return all;
    }

private:
    struct Entry {
        std::uint64_t id;
        std::shared_ptr<Task> task; // empty once erased
    };
    std::deque<Entry> entries_;
    std::size_t size_ = 0;
};

} // namespace mproc::detail
