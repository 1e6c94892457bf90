// Named POSIX shared memory: shm_open, fchmod, ftruncate, fstat, mmap of the object, shm_unlink, and
// the listing of /dev/shm. Every call retries EINTR and throws OSError naming the call and the object.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "syscall.hpp"

namespace mproc::detail::posix {

/// Where glibc keeps the objects of shm_open on Linux; what the listing reads.
inline constexpr const char* shm_directory = "/dev/shm";

/// Creates the shared memory object `path` ("/mproc.x") exclusively (O_CREAT|O_EXCL), so that an
/// existing object is never taken over, and gives it exactly the permission bits `mode`, whatever
/// the umask. Returns a close-on-exec read-write descriptor. Throws OSError (EEXIST: name taken).
inline int shm_create_exclusive(const std::string& path, unsigned mode) {
    const std::string op = "shm_open(" + path + ", O_CREAT|O_EXCL)";
    int fd = check_call(op.c_str(), [&] { return ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode); });
    // shm_open applies the umask; fchmod does not. Were it to fail, the object must not stay behind.
    if (::fchmod(fd, mode) != 0) {
        int err = errno;
        ::shm_unlink(path.c_str());
        close_fd(fd);
        throw_os_error("fchmod(" + path + ")", err);
    }
    return fd;
}

/// Opens the existing object `path`, read-write or read-only. Throws OSError (ENOENT: no such name,
/// EACCES: another user's object).
inline int shm_open_existing(const std::string& path, bool writable) {
    const std::string op = "shm_open(" + path + (writable ? ", O_RDWR)" : ", O_RDONLY)");
    return check_call(op.c_str(), [&] { return ::shm_open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0); });
}

/// Sets the object's size; new bytes read as zero.
inline void resize_object(int fd, std::size_t size, const std::string& path) {
    const std::string op = "ftruncate(" + path + ", " + std::to_string(size) + ")";
    check_call(op.c_str(), [&] { return ::ftruncate(fd, static_cast<off_t>(size)); });
}

struct ObjectStatus {
    std::size_t size = 0;
    unsigned mode = 0;          // permission bits only
    uid_t owner = 0;
    dev_t device = 0;
    ino_t inode = 0;            // with `device`: which object a name refers to now
    std::int64_t changed_ns = 0; // last status change, CLOCK_REALTIME nanoseconds
};

/// The calling process's effective user id (geteuid never fails).
inline uid_t effective_uid() noexcept { return ::geteuid(); }

inline ObjectStatus object_status(int fd, const std::string& path) {
    struct stat st{};
    const std::string op = "fstat(" + path + ")";
    check_call(op.c_str(), [&] { return ::fstat(fd, &st); });
    return ObjectStatus{static_cast<std::size_t>(st.st_size), static_cast<unsigned>(st.st_mode & 07777), st.st_uid,
                        st.st_dev, st.st_ino,
                        static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

/// Maps `size` bytes of the object shared (changes are seen by every process mapping it).
inline void* map_object(int fd, std::size_t size, bool writable, const std::string& path) {
    void* p = ::mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_os_error("mmap(" + path + ", " + std::to_string(size) + " bytes)", errno);
    return p;
}

/// Removes the name `path`; processes that have the object mapped keep it. Returns false if there
/// was no such name. Throws OSError for any other failure (EACCES...).
inline bool shm_remove(const std::string& path) {
    if (::shm_unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw_os_error("shm_unlink(" + path + ")", errno);
}

/// shm_remove for cleanup paths that are already reporting another error.
inline void shm_remove_quietly(const std::string& path) noexcept { ::shm_unlink(path.c_str()); }

/// The names in /dev/shm that start with `prefix`, without a leading '/'. Empty where there is no
/// /dev/shm. Throws OSError if the directory cannot be read.
inline std::vector<std::string> shm_names(std::string_view prefix) {
    std::vector<std::string> out;
    DIR* dir = ::opendir(shm_directory);
    if (!dir) {
        if (errno == ENOENT) return out;
        throw_os_error(std::string("opendir(") + shm_directory + ")", errno);
    }
    for (;;) {
        errno = 0;
        const dirent* e = ::readdir(dir);
        if (!e) break;
        std::string_view name(e->d_name);
        if (name.starts_with(prefix)) out.emplace_back(name);
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) throw_os_error(std::string("readdir(") + shm_directory + ")", err);
    return out;
}

} // namespace mproc::detail::posix
