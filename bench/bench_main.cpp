// bench_main.cpp — runs every mproc benchmark beside its baselines and ends with a table that
// compares them, against the targets.
//
// The table is declared in one place, `comparisons` below: each row compares two named cases by one
// statistic (real time per iteration, or the items_per_second counter), or holds one case against an
// absolute target. A case is named in full, prefix and arguments included ("mproc/Queue_1to1/64").
// Cases that no row mentions are paired by name — "mproc/<case>" with "raw/<case>", when both ran — and
// compared by time, for information.
//
// Unless the command line says otherwise, the run uses
//   --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
//   --benchmark_display_aggregates_only=true --benchmark_min_time=0.2
// so the repetitions of every case are shuffled among those of all the others (machine noise then
// falls on both sides of a pair alike) and each case is represented by its median.
// Every --benchmark_* flag is passed through. Extra flag: --ratios_json=FILE writes the table as JSON.
//
// The exit code is 1 if a benchmark reported an error (a helper process failed, lost messages...),
// never because a comparison missed its target: targets are reported, not asserted.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

/// What a comparison reads from a case: its median over the repetitions.
enum class Statistic {
    real_time,        // real time per iteration: lower is better
    items_per_second, // the items_per_second counter (SetItemsProcessed): higher is better
};

/// One row of the final table. With a `baseline`, the ratio subject/baseline of the statistic is
/// held against `target` (at most for time, at least for a rate); without one, the subject's own
/// value is. A target of 0 makes the row informational.
struct Comparison {
    std::string_view subject;
    std::string_view baseline; // empty: `target` is an absolute value of the statistic
    Statistic statistic;
    double target;
    std::string_view what;
};

using enum Statistic;

// Table order. Cases that no row mentions follow, alphabetically, as mproc/raw time rows.
constexpr Comparison comparisons[] = {
    {"mproc/Lock_uncontended", "raw/Lock_uncontended", real_time, 1.3, "lock+unlock, one process"},
    {"mproc/Lock_contended_2proc", "raw/Lock_contended_2proc", real_time, 1.3,
     "lock+unlock, another process hammers the lock"},
    {"mproc/SharedValue_fetch_add", "raw/SharedValue_fetch_add", real_time, 1.1, "fetch_add(1), one process"},
    {"mproc/Process_start_join", "raw/Process_start_join", real_time, 1.2, "start+join of a child that does nothing"},
    {"mproc/Lock_own_lock_each_2proc", "raw/Lock_own_lock_each_2proc", real_time, 0,
     "two processes, a lock each (false sharing)"},

    {"mproc/SharedMap_get/1000", "boost/SharedMap_get/1000", real_time, 0,
     "get of a present string key, 1,000 entries, against a Boost.Interprocess map behind a robust mutex"},
    {"mproc/SharedMap_get/100000", "boost/SharedMap_get/100000", real_time, 0, "the same, 100,000 entries"},
    {"mproc/SharedMap_set_existing/1000", "boost/SharedMap_set_existing/1000", real_time, 0,
     "set of a present key's long value, 1,000 entries"},
    {"mproc/SharedMap_insert_erase/1000", "boost/SharedMap_insert_erase/1000", real_time, 0,
     "insert a key in the middle, then erase it, 1,000 entries (mproc moves the rows after it)"},
    {"mproc/SharedMap_insert_erase/100000", "boost/SharedMap_insert_erase/100000", real_time, 0,
     "the same, 100,000 entries"},
    {"mproc/SharedVector_push_pop", "boost/SharedVector_push_pop", real_time, 0, "push_back + pop_back of a long"},
    {"mproc/SharedVector_at", "boost/SharedVector_at", real_time, 0, "at(i) of a long, 1,000 elements"},

    {"mproc/Queue_1to1/64", "", items_per_second, 20e6, "64-byte messages, one producer process -> one consumer"},
    {"mproc/Queue_1to1/64", "boost/Queue_1to1/64", items_per_second, 2.0, "against Boost message_queue"},
    {"mproc/Queue_1to1/64", "raw/Queue_1to1/64", items_per_second, 0.4, "against a lock-free SPSC ring (upper bound)"},
    {"mproc/Queue_1to1/8", "boost/Queue_1to1/8", items_per_second, 2.0, "8-byte messages"},
    {"mproc/Queue_1to1/8", "raw/Queue_1to1/8", items_per_second, 0, "8-byte messages, upper bound"},
    {"mproc/Queue_1to1/4096", "boost/Queue_1to1/4096", items_per_second, 2.0, "4 KiB messages"},
    {"mproc/Queue_1to1/4096", "raw/Queue_1to1/4096", items_per_second, 0, "4 KiB messages, upper bound"},
    {"mproc/Queue_2to2/64", "boost/Queue_2to2/64", items_per_second, 1.5, "two producer processes -> two consumers"},

    {"mproc/Pipe_round_trip/64", "raw/Pipe_round_trip/64", real_time, 1.15,
     "send to a child that sends it back, against the same over a raw socketpair"},
    {"mproc/Pipe_round_trip/4096", "raw/Pipe_round_trip/4096", real_time, 1.15, "the same, 4 KiB"},
    {"mproc/Pipe_round_trip/64", "raw_pipe2/Pipe_round_trip/64", real_time, 0, "against two raw pipe(2)s"},
    {"mproc/Pipe_round_trip/4096", "raw_pipe2/Pipe_round_trip/4096", real_time, 0, "against two raw pipe(2)s, 4 KiB"},
    {"mproc/Pipe_oneway_round_trip/64", "raw_pipe2/Pipe_round_trip/64", real_time, 1.15,
     "two one-way Pipes (over pipe(2)s) against two raw pipe(2)s"},
    {"mproc/Pipe_oneway_round_trip/4096", "raw_pipe2/Pipe_round_trip/4096", real_time, 1.15, "the same, 4 KiB"},

    // Pool. A pooled rate over the serial rate (items per second of one call) is the speedup.
    {"mproc/SumSquare_pool/1", "serial/SumSquare", items_per_second, 0, "sum_square(0..9999), Pool(1).map: speedup"},
    {"mproc/SumSquare_pool/2", "serial/SumSquare", items_per_second, 1.9, "sum_square(0..9999), Pool(2).map: speedup"},
    {"mproc/Factorial_pool/1", "serial/Factorial", items_per_second, 0, "cpp_int n! for n = 0..1999, Pool(1).map: speedup"},
    {"mproc/Factorial_pool/2", "serial/Factorial", items_per_second, 0, "cpp_int n! for n = 0..1999, Pool(2).map: speedup"},
    {"mproc/Map_square/1000000", "", real_time, 5e6,
     "Pool().map(square) over 1M ints, default chunks: 5 ms per call = 5 ns per item"},
    {"mproc/Map_square/1000000", "raw_threads/Map_square/1000000", real_time, 0,
     "against two threads of one process (the in-process bound)"},
    {"mproc/Map_square_chunksize1/20000", "mproc/Map_square/1000000", items_per_second, 0,
     "chunksize 1 (20,000 ints) against default chunks: items per second"},
    // Grain: N tasks of t ns of work each, Pool(2).map against the serial loop and two std::threads
    // (bench/plot.py draws all ten sizes, bench/results/grain.svg).
    {"mproc/Grain_pool2/0", "serial/Grain/0", items_per_second, 0, "empty tasks, Pool(2).map: speedup (per-item cost)"},
    {"mproc/Grain_pool2/1000", "serial/Grain/1000", items_per_second, 0, "1 us tasks, Pool(2).map: speedup"},
    {"mproc/Grain_pool2/10000", "serial/Grain/10000", items_per_second, 0, "10 us tasks, Pool(2).map: speedup"},
    {"mproc/Grain_pool2/100000", "serial/Grain/100000", items_per_second, 0, "100 us tasks, Pool(2).map: speedup"},
    {"mproc/Grain_pool2/1000000", "serial/Grain/1000000", items_per_second, 0, "1 ms tasks, Pool(2).map: speedup"},
    {"threads2/Grain/1000", "serial/Grain/1000", items_per_second, 0, "1 us tasks, two std::threads: speedup"},
    {"mproc/Apply_round_trip_same_cpu", "raw/Apply_round_trip_same_cpu", real_time, 1.5,
     "Pool(1).apply round trip against a futex ping-pong, both processes on one CPU"},
    {"mproc/Apply_round_trip_two_cpus", "raw/Apply_round_trip_two_cpus", real_time, 1.5,
     "Pool(1).apply round trip against a futex ping-pong, the two processes on two CPUs"},
};

constexpr const char* reference_note =
    "Reference, measured on this kind of 2-core VM: raw robust mutex lock+unlock ~11 ns, Python\n"
    "multiprocessing.Lock ~96 ns; raw fork+waitpid ~220 us, Python Process start+join ~2 ms;\n"
    "64-byte messages 1 -> 1, processes left where the scheduler puts them: raw lock-free shared-memory\n"
    "ring ~33 M msg/s, Boost message_queue ~6.5 M msg/s, Python multiprocessing.Queue ~0.18 M msg/s;\n"
    "raw pipe round trip ~33 us, Python Pipe ~38 us (the two processes on two CPUs).\n"
    "Here the Queue cases pin producers and consumers to different CPUs, the Pipe cases both\n"
    "processes to one CPU (bench/README.md says why); `taskset -c 0` puts everything on one CPU.\n"
    "Pool rows by rate: pooled items/s over serial items/s is the speedup (Python 3.11 here: sum_square\n"
    "Pool(2) 1.82x); Map_square/1000000 ms per call = ns per item (Python Pool().map ~344 ns per item);\n"
    "apply round trip: Python ~300 us, a futex ping-pong across two CPUs ~26 us. bench/results/\n"
    "comparison.md has the Python side (bench/python/compare.py).\n";

bool lower_is_better(Statistic s) { return s == real_time; }

std::string_view statistic_name(Statistic s) { return s == real_time ? "time" : "rate"; }

double median(std::vector<double> v) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string format_value(Statistic s, double v) {
    if (std::isnan(v)) return "-";
    char buf[32];
    if (s == real_time) {
        if (v < 1e3)
            std::snprintf(buf, sizeof buf, "%.2f ns", v);
        else if (v < 1e6)
            std::snprintf(buf, sizeof buf, "%.1f us", v / 1e3);
        else
            std::snprintf(buf, sizeof buf, "%.2f ms", v / 1e6);
    } else {
        if (v >= 1e6)
            std::snprintf(buf, sizeof buf, "%.2f M/s", v / 1e6);
        else if (v >= 1e3)
            std::snprintf(buf, sizeof buf, "%.1f k/s", v / 1e3);
        else
            std::snprintf(buf, sizeof buf, "%.1f /s", v);
    }
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

/// One statistic of one case: every repetition's value, and the library's median aggregate when
/// only aggregates are displayed.
struct Samples {
    std::vector<double> runs;
    std::optional<double> median_value;

    double value() const { return median_value ? *median_value : median(runs); }
};

struct CaseResult {
    Samples real_time_ns;
    Samples items_per_second;
    long repetitions = 0;

    double value(Statistic s) const { return (s == real_time ? real_time_ns : items_per_second).value(); }
};

/// A comparison with its names owned, and what the run measured for it.
struct Row {
    std::string subject, baseline; // case names; no baseline: an absolute target
    Statistic statistic;
    double target; // 0: informational
    std::string what;
    std::string label{}; // the rest is filled in by measure()
    double subject_value = std::nan(""), baseline_value = std::nan("");
    double ratio = std::nan(""); // subject/baseline; NaN when absolute or a side is missing
    long repetitions = 0;

    bool absolute() const { return baseline.empty(); }
    bool has_target() const { return target > 0; }
    /// The value the target applies to.
    double measured() const { return absolute() ? subject_value : ratio; }
    std::optional<bool> met() const {
        if (!has_target() || std::isnan(measured())) return std::nullopt;
        return lower_is_better(statistic) ? measured() <= target : measured() >= target;
    }
};

/// "Queue_1to1/64 mproc/boost" when both cases share a name past their prefixes, else both names.
std::string row_label(std::string_view subject, std::string_view baseline) {
    auto prefix = [](std::string_view n) { return n.substr(0, n.find('/')); };
    auto rest = [](std::string_view n) { return n.find('/') == n.npos ? n : n.substr(n.find('/') + 1); };
    if (baseline.empty()) return std::string(rest(subject)) + " " + std::string(prefix(subject));
    if (rest(subject) == rest(baseline))
        return std::string(rest(subject)) + " " + std::string(prefix(subject)) + "/" + std::string(prefix(baseline));
    return std::string(subject) + " / " + std::string(baseline);
}

/// Wraps one of Google Benchmark's reporters (ConsoleReporter by default): reports exactly as it
/// does, and collects every case's statistics to print the comparison table at the end.
template <class Base>
class ComparisonReporter : public Base {
public:
    template <class... Args>
    ComparisonReporter(std::ostream* table_out, std::string ratios_json, Args&&... args)
        : Base(std::forward<Args>(args)...), table_out_(table_out), ratios_json_(std::move(ratios_json)) {}

    void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
        for (const auto& run : runs) collect(run);
        Base::ReportRuns(runs);
    }

    void Finalize() override {
        Base::Finalize();
        const std::vector<Row> rows = table_rows();
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
        // A case is its name and arguments; run settings such as "/real_time" or "/repeats:5" are
        // left out of it.
        std::string key = run.run_name.function_name;
        if (!run.run_name.args.empty()) key += "/" + run.run_name.args;
        CaseResult& c = cases_[key];
        const double ns = run.GetAdjustedRealTime() * 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
        const auto items = run.counters.find("items_per_second");
        const bool aggregate = run.run_type == benchmark::BenchmarkReporter::Run::RT_Aggregate;
        if (aggregate && run.aggregate_name != "median") return;
        auto add = [aggregate](Samples& s, double v) {
            if (aggregate)
                s.median_value = v;
            else
                s.runs.push_back(v);
        };
        add(c.real_time_ns, ns);
        if (items != run.counters.end()) add(c.items_per_second, items->second.value);
        c.repetitions = std::max<long>(c.repetitions, static_cast<long>(run.repetitions));
    }

    /// Fills in `r`'s label and what the run measured for its cases.
    Row measure(Row r) const {
        auto find = [&](const std::string& name) -> const CaseResult* {
            const auto it = cases_.find(name);
            return it == cases_.end() ? nullptr : &it->second;
        };
        r.label = row_label(r.subject, r.baseline);
        if (const CaseResult* c = find(r.subject)) {
            r.subject_value = c->value(r.statistic);
            r.repetitions = c->repetitions;
        }
        if (const CaseResult* c = r.absolute() ? nullptr : find(r.baseline)) {
            r.baseline_value = c->value(r.statistic);
            r.repetitions = std::max(r.repetitions, c->repetitions);
        }
        r.ratio = r.subject_value / r.baseline_value; // NaN if either is missing
        return r;
    }

    std::vector<Row> table_rows() const {
        std::vector<Row> rows;
        std::set<std::string, std::less<>> mentioned;
        for (const Comparison& c : comparisons) {
            mentioned.emplace(c.subject);
            if (!c.baseline.empty()) mentioned.emplace(c.baseline);
            // Rows of cases that were filtered out are left out.
            if (cases_.count(std::string(c.subject)) || cases_.count(std::string(c.baseline)))
                rows.push_back(measure({std::string(c.subject), std::string(c.baseline), c.statistic, c.target,
                                        std::string(c.what)}));
        }
        // The rest, paired by name; cases_ is sorted, so they come alphabetically.
        std::set<std::string> pairs;
        for (const auto& entry : cases_) {
            const std::string& name = entry.first;
            if (mentioned.count(name)) continue;
            for (std::string_view prefix : {"mproc/", "raw/"})
                if (name.rfind(prefix, 0) == 0) pairs.insert(name.substr(prefix.size()));
        }
        for (const std::string& p : pairs) // both sides measured: a case alone (serial/, threads2/...) has no row
            if (cases_.count("mproc/" + p) && cases_.count("raw/" + p))
                rows.push_back(measure({"mproc/" + p, "raw/" + p, real_time, 0, "paired by name"}));
        return rows;
    }

    static void print_table(std::ostream& out, const std::vector<Row>& rows) {
        if (rows.empty()) return;
        std::size_t width = 10;
        long reps = 0;
        for (const Row& r : rows) {
            width = std::max(width, r.label.size());
            reps = std::max(reps, r.repetitions);
        }
        const std::string line(width + 67, '-');
        char buf[512];
        out << "\nmproc against its baselines: median"
            << (reps > 1 ? " of " + std::to_string(reps) + " repetitions" : std::string())
            << "; time = real time per iteration, rate = items (messages) per second\n"
            << line << "\n";
        std::snprintf(buf, sizeof buf, "%-*s %4s %12s %12s %7s %13s  %s\n", static_cast<int>(width), "comparison", "by",
                      "mproc", "baseline", "ratio", "target", "met?");
        out << buf << line << "\n";
        for (const Row& r : rows) {
            const Statistic s = r.statistic;
            const char* bound = lower_is_better(s) ? "<=" : ">=";
            char ratio[16] = "-", target[32] = "-";
            if (!std::isnan(r.ratio)) std::snprintf(ratio, sizeof ratio, "%.3f", r.ratio);
            if (r.has_target() && r.absolute())
                std::snprintf(target, sizeof target, "%s %s", bound, format_value(s, r.target).c_str());
            else if (r.has_target())
                std::snprintf(target, sizeof target, "%s %.2f", bound, r.target);
            const std::optional<bool> met = r.met();
            const char* met_text = !r.has_target() ? "-" : !met ? "n/a" : *met ? "yes" : "NO";
            std::snprintf(buf, sizeof buf, "%-*s %4s %12s %12s %7s %13s  %s\n", static_cast<int>(width),
                          r.label.c_str(), std::string(statistic_name(s)).c_str(),
                          format_value(s, r.subject_value).c_str(), format_value(s, r.baseline_value).c_str(), ratio,
                          target, met_text);
            out << buf;
        }
        out << line << "\n" << reference_note << std::flush;
    }

    void write_json(const std::vector<Row>& rows) const {
        std::ofstream f(ratios_json_);
        if (!f) {
            std::cerr << "mproc_bench: cannot write " << ratios_json_ << "\n";
            return;
        }
        auto num = [](double v) { return std::isnan(v) ? std::string("null") : std::to_string(v); };
        auto str = [](std::string_view v) { return v.empty() ? std::string("null") : "\"" + json_escape(v) + "\""; };
        f << "{\n  \"comparisons\": [";
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const Row& r = rows[i];
            const std::optional<bool> met = r.met();
            f << (i ? ",\n" : "\n") << "    {\"label\": " << str(r.label) << ", \"subject\": " << str(r.subject)
              << ", \"baseline\": " << str(r.baseline) << ", \"statistic\": \""
              << (r.statistic == real_time ? "real_time_ns" : "items_per_second") << "\", \"subject_value\": "
              << num(r.subject_value) << ", \"baseline_value\": " << num(r.baseline_value)
              << ", \"ratio\": " << num(r.ratio) << ", \"goal\": "
              << (r.has_target() ? (lower_is_better(r.statistic) ? "\"at_most\"" : "\"at_least\"") : "null")
              << ", \"target\": " << (r.has_target() ? num(r.target) : "null")
              << ", \"target_applies_to\": " << (r.absolute() ? "\"subject_value\"" : "\"ratio\"")
              << ", \"met\": " << (met ? (*met ? "true" : "false") : "null") << ", \"repetitions\": " << r.repetitions
              << ", \"what\": " << str(r.what) << "}";
        }
        f << "\n  ]\n}\n";
    }

    std::ostream* table_out_;
    std::string ratios_json_;
    std::map<std::string, CaseResult> cases_;
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
                 "          [--ratios_json=<file>]   also write the comparison table as JSON\n"
                 "  Defaults unless given: --benchmark_repetitions=5 --benchmark_min_time=0.2\n"
                 "    --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true\n");
}

template <class Base, class... Args>
int run(std::ostream* table_out, const std::string& ratios_json, Args&&... args) {
    ComparisonReporter<Base> reporter(table_out, ratios_json, std::forward<Args>(args)...);
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
