// A named shared memory segment: the one mechanism under SharedMemory, NamedLock, NamedSemaphore,
// NamedQueue, SharedMap and SharedVector. Each is the POSIX shared memory object
// /dev/shm/mproc.<name>:
//
//   [0, 256)     Header: what the segment holds, who created it, whether it is ready
//   [256, ...)   payload (64-byte aligned)
//
// The creator makes the object with O_CREAT|O_EXCL and mode 0600, sizes it, writes the header's
// identity (creator pid and start time, kind, type) and only then `magic`; it builds the payload and
// sets `ready` last. An attacher checks each step in that order, so it never uses a half-built
// segment, and while it waits it watches the creator: if the creator died before `ready`, the attach
// fails at once instead of waiting for good.
//
// Staleness: the creator's pid and its start time (from /proc) identify it, so a pid that a later
// process reuses is not mistaken for the creator. A name whose creator is gone is stale, unless it
// was created to be kept (unlink_on_close = false) and was finished.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "backoff.hpp"
#include "deadline.hpp"
#include "hash.hpp"
#include "posix/memory.hpp"
#include "posix/process.hpp"
#include "posix/procfs.hpp"
#include "posix/shm.hpp"
#include "posix/signal.hpp"
#include "wait.hpp"

namespace mproc::detail::shm {

/// One mproc name in /dev/shm: the fields of mproc::SharedMemoryInfo, which derives from it.
struct SegmentInfo {
    std::string name;            // as given to create(), without the "mproc." prefix
    std::string path;            // "/dev/shm/mproc.<name>"
    std::string holds;           // "SharedMemory", "NamedQueue<int>"...; empty while unknown
    std::size_t size = 0;        // payload bytes (0 while unknown)
    unsigned mode = 0;           // permission bits of the object
    uid_t owner = 0;             // its owner's uid
    pid_t creator_pid = 0;       // 0 while unknown
    bool creator_alive = false;  // the creator (same pid and start time) still runs
    bool kept = false;           // created with unlink_on_close = false
    bool ready = false;          // the creator finished building it
    /// "live" (creator running), "kept" (creator gone, kept on purpose), "stale" (creator gone),
    /// "building" (creator running, not finished), "incomplete" (no header yet), "foreign" (under the
    /// prefix but not an mproc segment), "unreadable" (another user's).
    std::string state;
    /// What remove_stale_shared_memory() removes: the creator is gone and the name is not kept, or
    /// the segment was never finished (an "incomplete" one only when older than 10 s).
    bool stale = false;
};


/// Every name mproc creates starts with this, so the cleanup helper only ever touches mproc's own.
inline constexpr std::string_view prefix = "mproc.";
inline constexpr std::size_t max_name_length = 200;
inline constexpr std::size_t header_bytes = 256;
inline constexpr std::size_t max_payload_bytes = std::size_t{1} << 40;
inline constexpr std::uint64_t magic_value = 0x68732e636f72706dULL; // "mproc.sh" in memory order
inline constexpr std::uint32_t layout_version = 1;
/// How long an attacher waits for a live creator to finish building a segment (microseconds normally).
inline constexpr std::chrono::seconds build_timeout{10};
/// A segment with no header this long after its creation is a creator's leftover.
inline constexpr std::chrono::seconds incomplete_grace{10};

enum class Kind : std::uint32_t { bytes = 1, lock = 2, semaphore = 3, queue = 4, map = 5, vector = 6 };
enum Flags : std::uint32_t { kept_flag = 1 };

inline const char* kind_name(std::uint32_t k) {
    switch (static_cast<Kind>(k)) {
    case Kind::bytes: return "SharedMemory";
    case Kind::lock: return "NamedLock";
    case Kind::semaphore: return "NamedSemaphore";
    case Kind::queue: return "NamedQueue";
    case Kind::map: return "SharedMap";
    case Kind::vector: return "SharedVector";
    }
    return "unknown object";
}

/// "NamedQueue<int>" for a kind and the type names it was made for.
inline std::string describe(std::uint32_t kind, std::string_view type) {
    std::string out = kind_name(kind);
    if (!type.empty()) out.append("<").append(type).append(">");
    return out;
}

struct Header {
    std::atomic<std::uint64_t> magic{0}; // stored last of the identity, with release
    std::atomic<std::int64_t> creator_pid{0};
    std::atomic<std::uint64_t> creator_start{0};
    std::atomic<std::uint64_t> payload_bytes{0};
    std::atomic<std::uint64_t> type_hash{0};
    std::atomic<std::uint32_t> version{0};
    std::atomic<std::uint32_t> kind{0};
    std::atomic<std::uint32_t> flags{0};
    std::atomic<std::uint32_t> ready{0}; // 0 -> 1 once the payload is built
    WaitQueue ready_waiters;
    char type_name[128]{};               // for error messages; NUL-terminated, maybe truncated
};
static_assert(sizeof(Header) <= header_bytes);

inline std::uint64_t type_hash(std::string_view type) noexcept { return fnv1a(type); }

/// The object's name for shm_open: "/mproc.<name>".
// Appended in order: `"/" + std::string(...)` draws a bogus -Wrestrict from g++ 12 at -O3.
inline std::string system_path(std::string_view name) { std::string path("/"); path.append(prefix).append(name); return path; }
inline std::string file_path(std::string_view name) {
    return std::string(posix::shm_directory) + system_path(name);
}

inline std::string quote_name(std::string_view name) {
    std::string out = "\"";
    for (const char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out + "\"";
}

/// Throws ValueError naming `op` unless `name` is 1 to 200 characters of [A-Za-z0-9._-] that start
/// with a letter, a digit or '_'.
inline void validate_name(std::string_view name, std::string_view op) {
    auto fail = [&](const std::string& why) {
        throw ValueError(std::string(op) + ": bad name " + quote_name(name) + ": " + why +
                         " (a name is 1 to 200 letters, digits, '.', '_' or '-', starting with a letter, a digit or '_')");
    };
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    if (name.empty()) fail("it is empty");
    if (name.size() > max_name_length)
        fail("it has " + std::to_string(name.size()) + " characters, more than " + std::to_string(max_name_length));
    if (name.find('/') != std::string_view::npos)
        fail("it contains '/'; give the name alone, mproc stores it as /dev/shm/mproc.<name>");
    if (!alnum(name[0]) && name[0] != '_') fail("it starts with " + quote_name(name.substr(0, 1)));
    for (std::size_t i = 0; i < name.size(); ++i)
        if (!alnum(name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
            fail("character " + quote_name(name.substr(i, 1)) + " at position " + std::to_string(i) + " is not allowed");
}

/// Closes a descriptor at the end of a scope.
struct FdCloser {
    int fd;
    ~FdCloser() { posix::close_fd(fd); }
};

/// For waits that have nothing to sleep on (a name to appear, a creator to size its object): from
/// 200 us up to 20 ms.
inline Backoff name_backoff() noexcept { return Backoff(std::chrono::microseconds(200), std::chrono::milliseconds(20)); }

/// What the header of an existing object says; read-only, never waits. Returns nullopt if the name
/// does not exist (any more).
inline std::optional<SegmentInfo> inspect(std::string_view name) {
    SegmentInfo info;
    info.name = std::string(name);
    info.path = file_path(name);
    const std::string path = system_path(name);
    int fd = -1;
    try {
        fd = posix::shm_open_existing(path, false);
    } catch (const OSError& e) {
        if (e.code() == ENOENT) return std::nullopt;
        info.state = "unreadable";
        return info;
    }
    FdCloser closer{fd};
    const posix::ObjectStatus st = posix::object_status(fd, path);
    info.mode = st.mode;
    info.owner = st.owner;
    auto incomplete = [&] {
        auto now = std::chrono::system_clock::now().time_since_epoch();
        auto age = std::chrono::nanoseconds(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() - st.changed_ns);
        info.state = "incomplete";
        info.stale = age > incomplete_grace;
        return info;
    };
    if (st.size < header_bytes) return incomplete();
    void* mem = posix::map_object(fd, header_bytes, false, path);
    const Header* h = static_cast<const Header*>(mem);
    const std::uint64_t magic = h->magic.load(std::memory_order_acquire);
    if (magic == 0) {
        posix::unmap(mem, header_bytes);
        return incomplete();
    }
    if (magic != magic_value || h->version.load() != layout_version) {
        posix::unmap(mem, header_bytes);
        info.state = "foreign";
        return info;
    }
    info.creator_pid = static_cast<pid_t>(h->creator_pid.load());
    const std::uint64_t start = h->creator_start.load();
    info.kept = (h->flags.load() & kept_flag) != 0;
    info.ready = h->ready.load(std::memory_order_acquire) != 0;
    info.size = static_cast<std::size_t>(h->payload_bytes.load());
    info.holds = describe(h->kind.load(), std::string_view(h->type_name, ::strnlen(h->type_name, sizeof h->type_name)));
    posix::unmap(mem, header_bytes);
    info.creator_alive = posix::process_alive(info.creator_pid, start);
    info.stale = !info.creator_alive && (!info.kept || !info.ready);
    info.state = info.creator_alive ? (info.ready ? "live" : "building") : info.stale ? "stale" : "kept";
    return info;
}

/// Why a name is taken, for the error of a create that found it taken.
inline std::string why_taken(std::string_view name) {
    std::optional<SegmentInfo> info;
    try {
        info = inspect(name);
    } catch (const Error&) {
    }
    if (!info) return "";
    if (info->stale)
        return "; it is a stale leftover (its creator, pid " + std::to_string(info->creator_pid) +
               ", is gone): remove it with mproc::remove_stale_shared_memory() or `mproc-shm clean`, or create with "
               "replace_stale = true";
    if (info->state == "live" || info->state == "building")
        return "; it holds a " + info->holds + " made by pid " + std::to_string(info->creator_pid) + ", which is running";
    return "; its state is " + info->state;
}

/// One entry of CreatedNames.
struct CreatedNameSlot {
    std::atomic<pid_t> pid{0}; // the creator; 0 free, -1 being written
    char path[max_name_length + 32]{};
};

/// The names this process created and removes when it ends. The destructors remove them normally;
/// this registry also removes them when SIGINT or SIGTERM ends the process (if the signal's action
/// was the default one when the first name was made: a program's own handler is left in place and
/// decides) and when the process calls exit() with the objects still alive. After SIGKILL (or
/// _exit) they stay, as stale names: `mproc-shm clean` or remove_stale_shared_memory() removes them.
/// Lock-free and async-signal-safe on the signal side; at most `capacity` names at once are covered.
class CreatedNames {
public:
    static constexpr std::size_t capacity = 256;

    /// Records /dev/shm/mproc.<name> as made by this process; returns its slot, or -1 when full.
    static int add(std::string_view name) {
        install_once();
        const std::string path = file_path(name);
        if (path.size() >= sizeof(Slot::path)) return -1;
        for (std::size_t i = 0; i < capacity; ++i) {
            pid_t free = 0;
            if (!slots[i].pid.compare_exchange_strong(free, -1)) continue;
            std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
            slots[i].pid.store(posix::current_pid(), std::memory_order_release);
            return static_cast<int>(i);
        }
        return -1;
    }
    /// Forgets a slot from add() (its name was removed, or is no longer this process's to remove).
    static void remove(int slot) noexcept {
        if (slot >= 0) slots[static_cast<std::size_t>(slot)].pid.store(0, std::memory_order_release);
    }

private:
    using Slot = CreatedNameSlot;
    static inline Slot slots[capacity]{};
    static inline struct sigaction previous[2]{}; // SIGINT, SIGTERM

    // Removes this process's names (not those a forked child inherited in the table: their creator
    // is its parent). Async-signal-safe: atomics, getpid and unlink.
    static void remove_all() noexcept {
        const pid_t me = ::getpid();
        for (Slot& s : slots)
            if (s.pid.load(std::memory_order_acquire) == me) {
                ::unlink(s.path);
                s.pid.store(0);
            }
    }
    static void on_signal(int sig, siginfo_t* info, void* context) {
        const int saved_errno = errno;
        remove_all();
        posix::chain_signal(previous[sig == SIGINT ? 0 : 1], sig, info, context);
        errno = saved_errno;
    }
    static void install_once() {
        static std::once_flag once;
        std::call_once(once, [] {
            std::atexit([] { remove_all(); });
            const int sigs[2] = {SIGINT, SIGTERM};
            for (int i = 0; i < 2; ++i)
                if (posix::is_default_action(posix::current_signal_action(sigs[i])))
                    previous[i] = posix::install_signal_handler(sigs[i], &on_signal);
        });
    }
};

/// A mapping of one named segment. Movable, not copyable. The creator (in the process that created
/// it) removes the name when the segment is closed, unless told to keep it.
class Segment {
public:
    struct CreateParams {
        unsigned mode = 0600;
        bool unlink_on_close = true;
        bool replace_stale = false;
    };
    struct AttachParams {
        std::chrono::duration<double> wait{0};      // for the name to appear
        std::optional<std::size_t> payload_bytes;   // the size the attacher insists on
        std::optional<uid_t> allowed_owner = std::nullopt; // accepted besides this process's effective uid
    };

    /// Creates /dev/shm/mproc.<name> holding `payload_bytes` zeroed bytes for a `kind` of `type`.
    /// Call publish() once the payload is built. Throws ValueError (bad name, size or mode), OSError
    /// (EEXIST: the name is taken; others from the system).
    static Segment create(std::string_view name, Kind kind, std::string_view type, std::size_t payload_bytes,
                          const CreateParams& p, const std::string& op) {
        validate_name(name, op);
        if (payload_bytes == 0) throw ValueError(op + ": " + quote_name(name) + ": the size must be at least 1 byte");
        if (payload_bytes > max_payload_bytes)
            throw ValueError(op + ": " + quote_name(name) + ": " + std::to_string(payload_bytes) + " bytes exceed 1 TiB");
        if ((p.mode & ~0777u) != 0 || (p.mode & 0600u) != 0600u)
            throw ValueError(op + ": " + quote_name(name) + ": mode 0" + octal(p.mode) +
                             " must be permission bits (at most 0777) that include 0600, so that the owner can attach");
        const std::string path = system_path(name);
        int fd = -1;
        for (bool retried = false;;) {
            try {
                fd = posix::shm_create_exclusive(path, p.mode);
                break;
            } catch (const OSError& e) {
                if (e.code() != EEXIST) throw OSError(e.code(), op + ": cannot create " + quote_name(name) + ": " + e.what());
                if (p.replace_stale && !retried) {
                    retried = true;
                    auto info = inspect(name);
                    if (!info) continue; // removed meanwhile
                    if (info->stale) {
                        posix::shm_remove(path);
                        continue;
                    }
                }
                throw OSError(EEXIST, op + ": the name " + quote_name(name) + " is taken (" + file_path(name) + ")" + why_taken(name));
            }
        }
        FdCloser closer{fd};
        Segment s;
        s.name_ = std::string(name);
        try {
            const std::size_t total = header_bytes + payload_bytes;
            posix::resize_object(fd, total, path);
            const posix::ObjectStatus st = posix::object_status(fd, path);
            s.base_ = static_cast<std::byte*>(posix::map_object(fd, total, true, path));
            s.mapped_ = total;
            s.device_ = st.device;
            s.inode_ = st.inode;
        } catch (...) {
            if (s.base_) posix::unmap(s.base_, s.mapped_);
            s.base_ = nullptr;
            posix::shm_remove_quietly(path); // the error being thrown is the one to report
            throw;
        }
        s.creator_ = posix::current_pid();
        s.unlink_on_close_ = p.unlink_on_close;
        if (p.unlink_on_close) s.slot_ = CreatedNames::add(name);
        Header* h = new (s.base_) Header;
        h->creator_pid.store(s.creator_);
        h->creator_start.store(posix::own_start_time());
        h->payload_bytes.store(payload_bytes);
        h->type_hash.store(type_hash(type));
        h->version.store(layout_version);
        h->kind.store(static_cast<std::uint32_t>(kind));
        h->flags.store(p.unlink_on_close ? 0u : std::uint32_t{kept_flag});
        type.copy(h->type_name, std::min(type.size(), sizeof h->type_name - 1));
        h->magic.store(magic_value, std::memory_order_release);
        return s;
    }

    /// Attaches to /dev/shm/mproc.<name>, which must hold a `kind` of `type`. Waits up to `p.wait`
    /// for the name to appear and (up to 10 s more) for a live creator to finish building it.
    /// Throws ValueError (bad name, another kind or type, another size), OSError (ENOENT: no such name;
    /// EACCES: not readable and writable by this user; EPERM: owned by another user than this one and
    /// `allowed_owner`), StateError (its creator died before finishing it), TimeoutError.
    static Segment attach(std::string_view name, Kind kind, std::string_view type, const AttachParams& p,
                          const std::string& op) {
        validate_name(name, op);
        const std::string path = system_path(name);
        const Deadline name_deadline = Deadline::after(p.wait);
        Backoff backoff = name_backoff();
        int fd = -1;
        for (;;) {
            try {
                fd = posix::shm_open_existing(path, true);
                break;
            } catch (const OSError& e) {
                if (e.code() == ENOENT && !name_deadline.expired()) {
                    backoff.pause(name_deadline);
                    continue;
                }
                if (e.code() == ENOENT)
                    throw OSError(ENOENT, op + ": no shared memory named " + quote_name(name) + " (" + file_path(name) + ")" +
                                              (p.wait.count() > 0 ? " appeared in time" : "") +
                                              ": it has not been created yet, or it has been removed");
                if (e.code() == EACCES)
                    throw OSError(EACCES, op + ": " + quote_name(name) + " is not readable and writable by this user (" +
                                              e.what() + ")");
                throw OSError(e.code(), op + ": cannot open " + quote_name(name) + ": " + e.what());
            }
        }
        FdCloser closer{fd};
        // Ownership first, before a byte of the object is read: an object of another user is refused.
        const uid_t me = posix::effective_uid();
        if (const uid_t owner = posix::object_status(fd, path).owner; owner != me && owner != p.allowed_owner)
            throw OSError(EPERM, op + ": " + quote_name(name) + " (" + file_path(name) + ") is owned by uid " +
                                     std::to_string(owner) + ", not by this user (uid " + std::to_string(me) +
                                     "): refused, as another user's object could feed this process its data; pass "
                                     "AttachOptions{.allowed_owner = " + std::to_string(owner) + "} to trust that user");
        const Deadline build_deadline =
            Deadline::after(std::max<std::chrono::duration<double>>(p.wait, build_timeout));
        auto never_built = [&] {
            return TimeoutError(op + ": " + quote_name(name) + " has had no header for " +
                                std::to_string(build_timeout.count()) +
                                " s: its creator probably died at once; remove it with "
                                "mproc::remove_stale_shared_memory() or `mproc-shm clean`");
        };
        // The creator sizes the object right after creating it, then writes the header.
        posix::ObjectStatus st;
        for (backoff = name_backoff();; backoff.pause(build_deadline)) {
            st = posix::object_status(fd, path);
            if (st.size >= header_bytes) break;
            if (build_deadline.expired()) throw never_built();
        }
        Segment s;
        s.name_ = std::string(name);
        s.base_ = static_cast<std::byte*>(posix::map_object(fd, st.size, true, path));
        s.mapped_ = st.size;
        s.device_ = st.device;
        s.inode_ = st.inode;
        Header* h = s.header();
        for (backoff = name_backoff();; backoff.pause(build_deadline)) {
            std::uint64_t m = h->magic.load(std::memory_order_acquire);
            if (m == magic_value) break;
            if (m != 0) throw ValueError(op + ": " + quote_name(name) + " is not an mproc segment (its header is unknown)");
            if (build_deadline.expired()) throw never_built();
        }
        if (h->version.load() != layout_version)
            throw ValueError(op + ": " + quote_name(name) + " has layout version " + std::to_string(h->version.load()) +
                             "; this mproc reads version " + std::to_string(layout_version));
        const pid_t creator = static_cast<pid_t>(h->creator_pid.load());
        const std::uint64_t creator_start = h->creator_start.load();
        auto is_ready = [h] { return h->ready.load(std::memory_order_acquire) != 0; };
        while (!is_ready()) {
            // Short sleeps, so that a creator's death is noticed within 50 ms.
            auto step = Deadline::after(std::chrono::milliseconds(50));
            if (!build_deadline.is_never() && build_deadline.at() < step.at()) step = build_deadline;
            if (await(is_ready, h->ready_waiters, step)) break;
            if (!posix::process_alive(creator, creator_start) && !is_ready())
                throw StateError(op + ": " + quote_name(name) + " was never finished: its creator, pid " +
                                 std::to_string(creator) +
                                 ", died while building it; remove it with mproc::remove_stale_shared_memory() or "
                                 "`mproc-shm clean`");
            if (build_deadline.expired() && !is_ready())
                throw TimeoutError(op + ": " + quote_name(name) + " is still being built by pid " + std::to_string(creator) +
                                   " after " + std::to_string(build_timeout.count()) + " s");
        }
        const std::string_view held_type(h->type_name, ::strnlen(h->type_name, sizeof h->type_name));
        if (h->kind.load() != static_cast<std::uint32_t>(kind) || h->type_hash.load() != type_hash(type))
            throw ValueError(op + ": " + quote_name(name) + " holds a " + describe(h->kind.load(), held_type) + ", not a " +
                             describe(static_cast<std::uint32_t>(kind), type));
        const std::uint64_t payload = h->payload_bytes.load();
        if (payload > st.size - header_bytes)
            throw ValueError(op + ": " + quote_name(name) + " is damaged: its header claims " + std::to_string(payload) +
                             " bytes, its object has " + std::to_string(st.size - header_bytes));
        if (p.payload_bytes && *p.payload_bytes != payload)
            throw ValueError(op + ": " + quote_name(name) + " holds " + std::to_string(payload) + " bytes, not the " +
                             std::to_string(*p.payload_bytes) + " asked for");
        s.creator_pid_ = creator;
        return s;
    }

    Segment() = default;
    Segment(Segment&& o) noexcept { take(o); }
    Segment& operator=(Segment&& o) noexcept {
        if (this != &o) {
            close();
            take(o);
        }
        return *this;
    }
    ~Segment() { close(); }

    /// Creator: the payload is built; attachers waiting for it go on.
    void publish() noexcept {
        header()->ready.store(1, std::memory_order_release);
        notify(header()->ready_waiters);
        published_ = true;
    }

    std::byte* payload() const noexcept { return base_ ? base_ + header_bytes : nullptr; }
    std::size_t payload_size() const noexcept { return base_ ? static_cast<std::size_t>(header()->payload_bytes.load()) : 0; }
    const std::string& name() const noexcept { return name_; }
    bool mapped() const noexcept { return base_ != nullptr; }
    /// True in the process that created the segment (not in its forked children).
    bool is_creator() const noexcept { return creator_ != 0 && creator_ == posix::current_pid(); }
    pid_t creator_pid() const noexcept { return creator_ ? creator_ : creator_pid_; }

    /// Removes the name, if it still names this segment: a name that was removed, or removed and
    /// made again by someone else, is left alone (false). Mappings, ours included, stay valid.
    /// Throws OSError if the name cannot be removed (EACCES).
    bool unlink() {
        if (unlinked_) return false;
        if (is_creator()) CreatedNames::remove(std::exchange(slot_, -1));
        const std::string path = system_path(name_);
        int fd = -1;
        try {
            fd = posix::shm_open_existing(path, false);
        } catch (const OSError& e) {
            if (e.code() != ENOENT) throw;
            unlinked_ = true;
            return false;
        }
        FdCloser closer{fd};
        // Our mapping keeps our object alive, so its inode cannot have been reused for another.
        posix::ObjectStatus st = posix::object_status(fd, path);
        unlinked_ = true;
        if (st.device != device_ || st.inode != inode_) return false;
        return posix::shm_remove(path);
    }

    /// Unmaps (and, for the creator that does not keep it, or that never finished it, removes the
    /// name). Idempotent; never throws.
    void close() noexcept {
        if (!base_) return;
        if (is_creator() && (unlink_on_close_ || !published_)) {
            try {
                unlink();
            } catch (...) {
            }
        }
        if (is_creator()) CreatedNames::remove(std::exchange(slot_, -1));
        posix::unmap(base_, mapped_);
        base_ = nullptr;
        mapped_ = 0;
    }

private:
    static std::string octal(unsigned v) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%o", v);
        return buf;
    }
    Header* header() const noexcept { return reinterpret_cast<Header*>(base_); }
    void take(Segment& o) noexcept {
        name_ = std::move(o.name_);
        base_ = std::exchange(o.base_, nullptr);
        mapped_ = std::exchange(o.mapped_, 0);
        device_ = o.device_;
        inode_ = o.inode_;
        creator_ = o.creator_;
        creator_pid_ = o.creator_pid_;
        unlink_on_close_ = o.unlink_on_close_;
        published_ = o.published_;
        unlinked_ = o.unlinked_;
        slot_ = std::exchange(o.slot_, -1);
    }

    std::string name_;
    std::byte* base_ = nullptr;
    std::size_t mapped_ = 0;
    dev_t device_ = 0;
    ino_t inode_ = 0;
    pid_t creator_ = 0;     // our pid if we created it
    pid_t creator_pid_ = 0; // the creator's pid, for an attacher
    bool unlink_on_close_ = false;
    bool published_ = false;
    bool unlinked_ = false;
    int slot_ = -1; // in CreatedNames, while this creator is to remove the name
};

/// The mproc names in /dev/shm whose name (after "mproc.") starts with `name_prefix`.
inline std::vector<SegmentInfo> list(std::string_view name_prefix) {
    std::vector<SegmentInfo> out;
    for (const std::string& file : posix::shm_names(std::string(prefix) + std::string(name_prefix)))
        if (auto info = inspect(std::string_view(file).substr(prefix.size()))) out.push_back(std::move(*info));
    return out;
}

} // namespace mproc::detail::shm
