// mproc-shm — list and clean mproc's named shared memory (/dev/shm/mproc.*).
//
//   mproc-shm list [--stale] [PREFIX]              every mproc name (or only the stale ones) starting with PREFIX
//   mproc-shm clean [--all] [--dry-run] [PREFIX]   remove the stale names (--all: every name whose creator
//                                                  is not running); --dry-run: only say what would go
//   mproc-shm remove NAME...                       remove these names, whatever they hold
//   mproc-shm --help | --version
//
// A name is stale when the process that created it is gone (same pid and start time, so a reused
// pid does not count) and it was not created to be kept; see <mproc/shared_memory.hpp>. clean never
// removes a name whose creator is running, not even with --all: it says so on stderr and skips it.
// Removing a name never takes memory away from a process that has it mapped. Only names with mproc's
// prefix are ever touched. Exit status: 0 (also for --help and --version, whose text goes to stdout),
// 1 if something could not be removed or read, 2 for bad usage (the usage then goes to stderr).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <mproc/shared_memory.hpp>
#include <mproc/version.hpp>

namespace {

/// Prints the usage to `out`: stdout when asked for (--help), stderr after a usage error.
void print_usage(std::FILE* out, const char* self) {
    std::fprintf(out,
                 "usage: %s list [--stale] [PREFIX]\n"
                 "       %s clean [--all] [--dry-run] [PREFIX]\n"
                 "       %s remove NAME...\n"
                 "       %s --help | --version\n"
                 "Lists and removes mproc's named shared memory (/dev/shm/mproc.*). A name is stale when its\n"
                 "creator is gone and it was not created to be kept; clean removes those (--all: every name\n"
                 "whose creator is not running; a name in use by its running creator is never removed).\n"
                 "--dry-run prints what clean would remove and removes nothing.\n"
                 "Exit status: 0; 1 if something could not be removed or read; 2 for bad usage.\n",
                 self, self, self, self);
}

int usage_error(const char* self, const std::string& why) {
    std::fprintf(stderr, "mproc-shm: %s\n", why.c_str());
    print_usage(stderr, self);
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
    const char* self = argv[0];
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            print_usage(stdout, self);
            return 0;
        }
        if (std::strcmp(argv[i], "--version") == 0) {
            std::printf("mproc-shm (mproc) %s\n", MPROC_VERSION_STRING);
            return 0;
        }
    }
    if (argc < 2) return usage_error(self, "no command given");
    const std::string cmd = argv[1];
    if (cmd != "list" && cmd != "clean" && cmd != "remove") return usage_error(self, "unknown command '" + cmd + "'");
    bool stale_only = false, all = false, dry_run = false;
    std::vector<std::string> rest;
    for (int i = 2; i < argc; ++i) {
        if (cmd == "list" && std::strcmp(argv[i], "--stale") == 0) {
            stale_only = true;
        } else if (cmd == "clean" && std::strcmp(argv[i], "--all") == 0) {
            all = true;
        } else if (cmd == "clean" && std::strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else if (argv[i][0] == '-') {
            return usage_error(self, "unknown option '" + std::string(argv[i]) + "' for " + cmd);
        } else {
            rest.emplace_back(argv[i]);
        }
    }
    try {
        if (cmd == "list") {
            if (rest.size() > 1) return usage_error(self, "list takes at most one PREFIX");
            std::vector<mproc::SharedMemoryInfo> shown;
            for (auto& info : mproc::list_shared_memory(rest.empty() ? "" : rest[0]))
                if (!stale_only || info.stale) shown.push_back(std::move(info));
            print(shown);
            return 0;
        }
        if (cmd == "clean") {
            if (rest.size() > 1) return usage_error(self, "clean takes at most one PREFIX");
            const std::string prefix = rest.empty() ? "" : rest[0];
            std::vector<std::string> removed;
            if (all || dry_run) {
                for (const auto& info : mproc::list_shared_memory(prefix)) {
                    if (info.creator_alive) {
                        // Removing the name would strand whoever attaches to it next, while its creator
                        // still runs and expects others to find it.
                        if (all)
                            std::fprintf(stderr, "mproc-shm clean: kept %s: its creator (pid %d) is running\n",
                                         info.name.c_str(), static_cast<int>(info.creator_pid));
                        continue;
                    }
                    if (!all && !info.stale) continue;
                    if (dry_run) removed.push_back(info.name);
                    else if (mproc::unlink_shared_memory(info.name)) removed.push_back(info.name);
                }
            } else {
                removed = mproc::remove_stale_shared_memory(prefix);
            }
            for (const auto& n : removed) std::printf("%s %s\n", dry_run ? "would remove" : "removed", n.c_str());
            std::printf("%zu name(s) %s\n", removed.size(), dry_run ? "would be removed" : "removed");
            return 0;
        }
        // remove
        if (rest.empty()) return usage_error(self, "remove needs at least one NAME");
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
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mproc-shm %s: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
