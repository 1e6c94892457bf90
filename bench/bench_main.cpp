// bench_main.cpp — runs every mproc benchmark beside its raw OS baseline and ends with a table of
// mproc/raw ratios against the targets.
//
// Pairing is by name: "mproc/<case>" is compared with "raw/<case>" (and the same arguments, if any).
//
// Unless the command line says otherwise, the run uses
//   --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//   --benchmark_display_aggregates_only=true --benchmark_min_time=0.2
// so the repetitions of every case are shuffled among those of all the others (machine noise then
// falls on both sides of a pair alike) and each side of a pair is represented by its median.
// Every --benchmark_* flag is passed through. Extra flag: --ratios_json=FILE writes the table as JSON.
//
// The exit code is 1 if a benchmark reported an error (a helper process failed, lost increments...),
// never because a ratio missed its target: targets are reported, not asserted.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

struct Target {
    std::string_view name; // the case, without the "mproc/" or "raw/" prefix and without suffixes
    double max_ratio;      // <= 0: informational, no target
    std::string_view what;
};

// Table order; cases not listed here follow, alphabetically.
constexpr Target targets[] = {
    {"Lock_uncontended", 1.3, "lock+unlock, one process"},
    {"Lock_contended_2proc", 1.3, "lock+unlock, another process hammers the lock"},
    {"SharedValue_fetch_add", 1.1, "fetch_add(1), one process"},
    {"Process_start_join", 1.2, "start+join of a child that does nothing"},
    {"Lock_own_lock_each_2proc", 0.0, "info: two processes, a lock each (false sharing)"},
};

constexpr const char* reference_note =
    "Reference, measured on this kind of 2-core VM: raw robust mutex lock+unlock ~11 ns, Python\n"
    "multiprocessing.Lock ~96 ns; raw fork+waitpid ~220 us, Python Process start+join ~2 ms.\n";

const Target* find_target(std::string_view pair) {
    const std::string_view base = pair.substr(0, pair.find('/'));
    for (const Target& t : targets)
        if (t.name == base) return &t;
    return nullptr;
}

double median(std::vector<double> v) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string format_time(double ns) {
    if (std::isnan(ns)) return "-";
    char buf[32];
    if (ns < 1e3)
        std::snprintf(buf, sizeof buf, "%.2f ns", ns);
    else if (ns < 1e6)
        std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
    return buf;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

/// One side of a pair: every repetition's real time per iteration, and the library's median
/// aggregate when only aggregates are displayed.
struct Side {
    std::vector<double> samples_ns;
    std::optional<double> median_ns;
    long repetitions = 0;

    double value() const { return median_ns ? *median_ns : median(samples_ns); }
    bool empty() const { return samples_ns.empty() && !median_ns; }
};

struct PairRow {
    std::string name;
    double mproc_ns, raw_ns, ratio;
    const Target* target;
    long repetitions;
};

/// Wraps one of Google Benchmark's reporters (ConsoleReporter by default): reports exactly as it
/// does, and collects every run's real time per iteration to print the mproc/raw table at the end.
template <class Base>
class RatioReporter : public Base {
public:
    template <class... Args>
    RatioReporter(std::ostream* table_out, std::string ratios_json, Args&&... args)
        : Base(std::forward<Args>(args)...), table_out_(table_out), ratios_json_(std::move(ratios_json)) {}

    void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
        for (const auto& run : runs) collect(run);
        Base::ReportRuns(runs);
    }

    void Finalize() override {
        Base::Finalize();
        const std::vector<PairRow> rows = pair_rows();
        std::ostream& out = table_out_ ? *table_out_ : this->GetOutputStream();
        print_table(out, rows);
        if (!ratios_json_.empty()) write_json(rows);
    }

    bool errors() const { return errors_; }

private:
    void collect(const benchmark::BenchmarkReporter::Run& run) {
        if (run.error_occurred) {
            errors_ = true;
            return;
        }
        // The pair is the case name and its arguments; run settings such as "/real_time" or
        // "/repeats:5" are left out of it.
        const std::string& fn = run.run_name.function_name;
        bool is_mproc;
        std::string key;
        if (fn.rfind("mproc/", 0) == 0) {
            is_mproc = true;
            key = fn.substr(6);
        } else if (fn.rfind("raw/", 0) == 0) {
            is_mproc = false;
            key = fn.substr(4);
        } else {
            return;
        }
        if (!run.run_name.args.empty()) key += "/" + run.run_name.args;
        if (std::find(order_.begin(), order_.end(), key) == order_.end()) order_.push_back(key);
        Side& side = is_mproc ? sides_[key].first : sides_[key].second;
        const double ns = run.GetAdjustedRealTime() * 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
        if (run.run_type == benchmark::BenchmarkReporter::Run::RT_Aggregate) {
            if (run.aggregate_name == "median") side.median_ns = ns;
        } else {
            side.samples_ns.push_back(ns);
        }
        side.repetitions = std::max<long>(side.repetitions, static_cast<long>(run.repetitions));
    }

    std::vector<PairRow> pair_rows() const {
        std::vector<std::string> keys = order_;
        auto rank = [](const std::string& k) {
            const Target* t = find_target(k);
            return t ? static_cast<std::size_t>(t - targets) : std::size(targets);
        };
        std::stable_sort(keys.begin(), keys.end(), [&](const std::string& a, const std::string& b) {
            return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
        });
        std::vector<PairRow> rows;
        for (const std::string& k : keys) {
            const auto& [m, r] = sides_.at(k);
            const double mv = m.empty() ? std::nan("") : m.value();
            const double rv = r.empty() ? std::nan("") : r.value();
            rows.push_back({k, mv, rv, mv / rv, find_target(k), std::max(m.repetitions, r.repetitions)});
        }
        return rows;
    }

    static void print_table(std::ostream& out, const std::vector<PairRow>& rows) {
        if (rows.empty()) return;
        std::size_t width = 4;
        long reps = 0;
        for (const PairRow& r : rows) {
            width = std::max(width, r.name.size());
            reps = std::max(reps, r.repetitions);
        }
        std::string line(width + 52, '-');
        char buf[512];
        out << "\nmproc / raw: real time per iteration"
            << (reps > 1 ? ", median of " + std::to_string(reps) + " repetitions" : std::string()) << "\n"
            << line << "\n";
        std::snprintf(buf, sizeof buf, "%-*s %12s %12s %7s %8s  %s\n", static_cast<int>(width), "pair", "mproc", "raw",
                      "ratio", "target", "met?");
        out << buf << line << "\n";
        for (const PairRow& r : rows) {
            char target[16] = "-";
            const char* met = "n/a";
            const bool has_target = r.target && r.target->max_ratio > 0;
            if (has_target) {
                std::snprintf(target, sizeof target, "<= %.2f", r.target->max_ratio);
                met = std::isnan(r.ratio) ? "n/a" : r.ratio <= r.target->max_ratio ? "yes" : "NO";
            }
            char ratio[16] = "-";
            if (!std::isnan(r.ratio)) std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio);
            std::snprintf(buf, sizeof buf, "%-*s %12s %12s %7s %8s  %s\n", static_cast<int>(width), r.name.c_str(),
                          format_time(r.mproc_ns).c_str(), format_time(r.raw_ns).c_str(), ratio, target, met);
            out << buf;
        }
        out << line << "\n" << reference_note << std::flush;
    }

    void write_json(const std::vector<PairRow>& rows) const {
        std::ofstream f(ratios_json_);
        if (!f) {
            std::cerr << "mproc_bench: cannot write " << ratios_json_ << "\n";
            return;
        }
        auto num = [](double v) { return std::isnan(v) ? std::string("null") : std::to_string(v); };
        f << "{\n  \"pairs\": [";
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const PairRow& r = rows[i];
            const bool has_target = r.target && r.target->max_ratio > 0;
            f << (i ? ",\n" : "\n") << "    {\"name\": \"" << json_escape(r.name) << "\", \"mproc_ns\": " << num(r.mproc_ns)
              << ", \"raw_ns\": " << num(r.raw_ns) << ", \"ratio\": " << num(r.ratio)
              << ", \"target\": " << (has_target ? num(r.target->max_ratio) : "null") << ", \"met\": "
              << (has_target && !std::isnan(r.ratio) ? (r.ratio <= r.target->max_ratio ? "true" : "false") : "null")
              << ", \"repetitions\": " << r.repetitions << "}";
        }
        f << "\n  ]\n}\n";
    }

    std::ostream* table_out_;
    std::string ratios_json_;
    std::vector<std::string> order_;
    std::map<std::string, std::pair<Side, Side>> sides_; // mproc, raw
    bool errors_ = false;
};

/// The value of `--name=value` (or `-name=value`; a bare `--name` reads as "true"), last one wins.
std::optional<std::string> flag_value(const std::vector<char*>& args, std::string_view name) {
    std::optional<std::string> found;
    for (std::size_t i = 1; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a.rfind("--", 0) == 0)
            a.remove_prefix(2);
        else if (a.rfind("-", 0) == 0)
            a.remove_prefix(1);
        else
            continue;
        if (a.rfind(name, 0) != 0) continue;
        a.remove_prefix(name.size());
        if (a.empty())
            found = "true";
        else if (a[0] == '=')
            found = std::string(a.substr(1));
    }
    return found;
}

bool truthy(const std::string& v) {
    return v == "true" || v == "yes" || v == "1" || v == "on" || v == "always";
}

void print_help() {
    benchmark::PrintDefaultHelp();
    std::fprintf(stdout,
                 "\nmproc_bench:\n"
                 "          [--ratios_json=<file>]   also write the mproc/raw ratio table as JSON\n"
                 "  Defaults unless given: --benchmark_repetitions=5 --benchmark_min_time=0.2\n"
                 "    --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true\n");
}

template <class Base, class... Args>
int run(std::ostream* table_out, const std::string& ratios_json, Args&&... args) {
    RatioReporter<Base> reporter(table_out, ratios_json, std::forward<Args>(args)...);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    return reporter.errors() ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<char*> args(argv, argv + argc);

    // Our own flag, taken out before Google Benchmark sees the rest.
    std::string ratios_json;
    std::erase_if(args, [&](char* a) {
        std::string_view s = a;
        for (std::string_view prefix : {"--ratios_json=", "-ratios_json="})
            if (s.rfind(prefix, 0) == 0) {
                ratios_json = std::string(s.substr(prefix.size()));
                return true;
            }
        return false;
    });

    // Defaults that make the pairs comparable on a noisy machine; any of them given on the command
    // line wins.
    static char d_reps[] = "--benchmark_repetitions=5";
    static char d_interleave[] = "--benchmark_enable_random_interleaving=true";
    static char d_aggregates[] = "--benchmark_display_aggregates_only=true";
    static char d_min_time[] = "--benchmark_min_time=0.2";
    const std::pair<const char*, char*> defaults[] = {
        {"benchmark_repetitions", d_reps},
        {"benchmark_enable_random_interleaving", d_interleave},
        {"benchmark_display_aggregates_only", d_aggregates},
        {"benchmark_min_time", d_min_time},
    };
    std::vector<char*> injected;
    for (const auto& [name, flag] : defaults)
        if (!flag_value(args, name)) injected.push_back(flag);
    args.insert(args.begin() + 1, injected.begin(), injected.end());

    // A custom display reporter means Google Benchmark no longer builds one from these flags: read
    // them here (Initialize consumes them).
    const std::string format = flag_value(args, "benchmark_format").value_or("console");
    const std::string color = flag_value(args, "benchmark_color").value_or("auto");
    const bool tabular = truthy(flag_value(args, "benchmark_counters_tabular").value_or("false"));

    args.push_back(nullptr);
    int n = static_cast<int>(args.size()) - 1;
    benchmark::Initialize(&n, args.data(), print_help);
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

    const char* term = std::getenv("TERM");
    const bool use_color = color == "auto" ? ::isatty(STDOUT_FILENO) && term && std::strcmp(term, "dumb") != 0
                                           : truthy(color);
    int options = benchmark::ConsoleReporter::OO_None;
    if (use_color) options |= benchmark::ConsoleReporter::OO_Color;
    if (tabular) options |= benchmark::ConsoleReporter::OO_Tabular;

    int rc;
    if (format == "json") {
        rc = run<benchmark::JSONReporter>(&std::cerr, ratios_json); // keep stdout valid JSON
    } else if (format == "csv") {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        rc = run<benchmark::CSVReporter>(&std::cerr, ratios_json);
#pragma GCC diagnostic pop
    } else if (format == "console") {
        rc = run<benchmark::ConsoleReporter>(nullptr, ratios_json,
                                             static_cast<benchmark::ConsoleReporter::OutputOptions>(options));
    } else {
        std::cerr << "mproc_bench: unknown --benchmark_format=" << format << " (console, json or csv)\n";
        rc = 1;
    }
    benchmark::Shutdown();
    return rc;
}
