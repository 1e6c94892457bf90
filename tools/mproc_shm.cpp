// mproc-shm — list and clean mproc's named shared memory (/dev/shm/mproc.*).
//
//   mproc-shm list [--stale] [PREFIX]    every mproc name (or only the stale ones) starting with PREFIX
//   mproc-shm clean [--all] [PREFIX]     remove the stale names (--all: every mproc name, in use or not)
//   mproc-shm remove NAME...             remove these names, whatever they hold
//
// A name is stale when the process that created it is gone (same pid and start time, so a reused
// pid does not count) and it was not created to be kept; see <mproc/shared_memory.hpp>. Removing a
// name never takes memory away from a process that has it mapped. Only names with mproc's prefix are
// ever touched. Exit status: 0, 1 if something could not be removed or read, 2 for bad usage.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <mproc/shared_memory.hpp>

namespace {

int usage(const char* self) {
    std::fprintf(stderr,
                 "usage: %s list [--stale] [PREFIX]\n"
                 "       %s clean [--all] [PREFIX]\n"
                 "       %s remove NAME...\n"
                 "Lists and removes mproc's named shared memory (/dev/shm/mproc.*). A name is stale when its\n"
                 "creator is gone and it was not created to be kept; clean removes those (--all: every name).\n",
                 self, self, self);
    return 2;
}

std::string human(std::size_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

void print(const std::vector<mproc::SharedMemoryInfo>& infos) {
    std::printf("%-40s %-10s %-11s %9s %5s %8s  %s\n", "NAME", "STATE", "SIZE", "CREATOR", "MODE", "OWNER", "HOLDS");
    for (const auto& i : infos) {
        std::printf("%-40s %-10s %-11s %9d %04o %8u  %s\n", i.name.c_str(), i.state.c_str(), human(i.size).c_str(),
                    static_cast<int>(i.creator_pid), i.mode, static_cast<unsigned>(i.owner),
                    i.holds.empty() ? "?" : i.holds.c_str());
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(argv[0]);
    const std::string cmd = argv[1];
    bool stale_only = false, all = false;
    std::vector<std::string> rest;
    for (int i = 2; i < argc; ++i) {
        if (cmd == "list" && std::strcmp(argv[i], "--stale") == 0) {
            stale_only = true;
        } else if (cmd == "clean" && std::strcmp(argv[i], "--all") == 0) {
            all = true;
        } else if (argv[i][0] == '-') {
            return usage(argv[0]);
        } else {
            rest.emplace_back(argv[i]);
        }
    }
    try {
        if (cmd == "list") {
            if (rest.size() > 1) return usage(argv[0]);
            std::vector<mproc::SharedMemoryInfo> shown;
            for (auto& info : mproc::list_shared_memory(rest.empty() ? "" : rest[0]))
                if (!stale_only || info.stale) shown.push_back(std::move(info));
            print(shown);
            return 0;
        }
        if (cmd == "clean") {
            if (rest.size() > 1) return usage(argv[0]);
            const std::string prefix = rest.empty() ? "" : rest[0];
            std::vector<std::string> removed;
            if (all) {
                for (const auto& info : mproc::list_shared_memory(prefix))
                    if (mproc::unlink_shared_memory(info.name)) removed.push_back(info.name);
            } else {
                removed = mproc::remove_stale_shared_memory(prefix);
            }
            for (const auto& n : removed) std::printf("removed %s\n", n.c_str());
            std::printf("%zu name(s) removed\n", removed.size());
            return 0;
        }
        if (cmd == "remove") {
            if (rest.empty()) return usage(argv[0]);
            int status = 0;
            for (const auto& n : rest) {
                if (mproc::unlink_shared_memory(n)) {
                    std::printf("removed %s\n", n.c_str());
                } else {
                    std::fprintf(stderr, "mproc-shm: no such name: %s\n", n.c_str());
                    status = 1;
                }
            }
            return status;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mproc-shm %s: %s\n", cmd.c_str(), e.what());
        return 1;
    }
    return usage(argv[0]);
}
