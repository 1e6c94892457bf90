#!/usr/bin/env python3
"""mproc's Pool against Python's multiprocessing.Pool, on the same workloads.

Runs the Pool cases of mproc_bench (Google Benchmark, --benchmark_format=json) and the same workloads
with Python's multiprocessing, then writes

    bench/results/comparison.md   tables: workload, mproc, Python, ratio; the speedups; the targets
    bench/results/results.json    every figure, the machine, the load average sampled every 2 s
and then, through bench/plot.py, the pictures (speedup.svg: against workers; grain.svg: against the
task size) and the generated blocks of the files given with --readme (bench/pictures.sh does it all).

Workloads (bench/pool_bench.cpp has the C++ side):
  sum_square   sum of i*i for i < n, n = 0..9999: serially, and Pool(w).map for w = 1..cpu_count() + 2
  factorial    n! for n = 0..1999 (C++: Boost cpp_int; Python: math.factorial), returning its bit
               length: serially and Pool(w).map
  map(square)  Pool().map(square, 1M ints), per item, default chunks; and chunksize 1 over 20,000 ints
  grain        N tasks of t = 0 ns .. 1 ms of a calibrated loop each (N = 20 ms / t): serially and by
               Pool(2).map; C++ adds two std::threads (pool_bench.cpp's Grain cases)
  apply        Pool(1).apply(f, x) round trip, the worker on the caller's CPU or on another one;
               mproc_bench's futex ping-pong between two processes is the bound

Every pool is built before its timed part (the map or apply call). Each Python workload runs in its
own interpreter process with a timeout; a workload that fails or times out is left out of the tables.
With no Python interpreter (see --python), or --no-python, only the mproc side is reported; with
--no-mproc (or no mproc_bench binary) only the Python side.

    python3 bench/python/compare.py [--bench build/bench/mproc_bench] [--quick]

Standard library only (no numpy or matplotlib).
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SUM_SQUARE_COUNT = 10000
FACTORIAL_COUNT = 2000
MAP_COUNT = 1_000_000
MAP_CHUNKSIZE1_COUNT = 20_000
APPLY_CALLS = 2000

# Task sizes of the grain workload, ns of work per item (bench/pool_bench.cpp, grain_sizes).
GRAIN_SIZES = [0, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]

BENCH_FILTER = "^(serial|mproc|raw|raw_threads|threads2)/(SumSquare|Factorial|Map_square|Apply_round_trip|Grain)"


# ------------------------------------------------------------------ the Python workloads
# These run in a child interpreter: `compare.py --python-workload NAME --repeat R`, which prints a
# JSON object on its last line. Top-level functions, so that multiprocessing can pickle them.

def sum_square(number):
    s = 0
    for i in range(number):
        s += i * i
    return s


def factorial_bits(n):
    return math.factorial(n).bit_length()


def burn(steps):
    """The grain workload's task: `steps` steps of a plain loop."""
    s = 0
    for i in range(steps):
        s ^= i
    return s


def grain_items(work_ns):
    """Items per call: ~20 ms of serial work, 64..200,000 items (as pool_bench.cpp's grain_items)."""
    return min(200_000, max(64, 20_000_000 // max(work_ns, 100)))


def square(x):
    return x * x


def plus_one(x):
    return x + 1


def _median_seconds(run, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _cpus():
    return sorted(os.sched_getaffinity(0))


def _workload(name, repeat):
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the default on Linux up to 3.13; what mproc does too
    out = {"workload": name, "repeat": repeat}
    if name in ("sum_square_serial", "factorial_serial"):
        f, count = (sum_square, SUM_SQUARE_COUNT) if name == "sum_square_serial" else (factorial_bits, FACTORIAL_COUNT)
        out["seconds"], out["runs"] = _median_seconds(lambda: [f(n) for n in range(count)], repeat)
        out["items"] = count
    elif name.startswith(("sum_square_pool_", "factorial_pool_")):
        workers = int(name.rsplit("_", 1)[1])
        f, count = (sum_square, SUM_SQUARE_COUNT) if name.startswith("sum_square") else (factorial_bits, FACTORIAL_COUNT)
        expected = [f(n) for n in range(min(count, 500))]
        with ctx.Pool(workers) as pool:
            pool.map(plus_one, range(workers * 4))  # every worker started
            result = []

            def run():
                nonlocal result
                result = pool.map(f, range(count))

            out["seconds"], out["runs"] = _median_seconds(run, repeat)
            if result[: len(expected)] != expected or len(result) != count:
                raise RuntimeError("wrong results")
        out["items"] = count
        out["workers"] = workers
    elif name in ("map_square", "map_square_chunksize1"):
        count = MAP_COUNT if name == "map_square" else MAP_CHUNKSIZE1_COUNT
        chunksize = None if name == "map_square" else 1
        inputs = list(range(count))
        with ctx.Pool() as pool:  # cpu_count() workers, as mproc's Pool()
            pool.map(plus_one, range(64))
            result = []

            def run():
                nonlocal result
                result = pool.map(square, inputs, chunksize)

            out["seconds"], out["runs"] = _median_seconds(run, repeat)
            if result[-1] != (count - 1) ** 2:
                raise RuntimeError("wrong results")
        out["items"] = count
        out["ns_per_item"] = out["seconds"] / count * 1e9
    elif name in ("apply_same_cpu", "apply_two_cpus"):
        cpus = _cpus()
        saved = set(cpus)
        # The calling thread is pinned before the pool exists, so the pool's threads and its worker
        # inherit that CPU; for two CPUs the worker is then moved to another one.
        os.sched_setaffinity(0, {cpus[0]})
        placed = True
        try:
            with ctx.Pool(1) as pool:
                pool.apply(plus_one, (0,))
                if name == "apply_two_cpus":
                    if len(cpus) > 1:
                        for p in pool._pool:  # the worker processes; no public accessor
                            os.sched_setaffinity(p.pid, {cpus[1]})
                    else:
                        placed = False
                calls = max(200, APPLY_CALLS // (1 if repeat > 1 else 2))

                def run():
                    x = 0
                    for _ in range(calls):
                        x = pool.apply(plus_one, (x,))
                    if x != calls:
                        raise RuntimeError("wrong results")

                seconds, runs = _median_seconds(run, repeat)
        finally:
            os.sched_setaffinity(0, saved)
        out["seconds"] = seconds / calls
        out["runs"] = [r / calls for r in runs]
        out["placed"] = placed
    elif name == "grain":
        # One interpreter, one Pool(2) for every task size: serial loop and Pool(2).map of the same inputs.
        best = min(_median_seconds(lambda: burn(200_000), 1)[0] for _ in range(5))
        ns_per_step = best / 200_000 * 1e9
        out["ns_per_step"] = ns_per_step
        sizes = {}
        with ctx.Pool(2) as pool:
            pool.map(plus_one, range(8))
            for work_ns in GRAIN_SIZES:
                inputs = [round(work_ns / ns_per_step)] * grain_items(work_ns)
                expected = burn(inputs[0])
                serial_s, _ = _median_seconds(lambda: [burn(k) for k in inputs], repeat)
                result = []

                def run():
                    nonlocal result
                    result = pool.map(burn, inputs)

                pool_s, _ = _median_seconds(run, repeat)
                if len(result) != len(inputs) or result[0] != expected or result[-1] != expected:
                    raise RuntimeError("wrong results")
                sizes[str(work_ns)] = {"items": len(inputs), "serial_s": serial_s, "pool2_s": pool_s}
        out["sizes"] = sizes
        out["seconds"] = sum(v["serial_s"] + v["pool2_s"] for v in sizes.values())
    else:
        raise ValueError("unknown workload " + name)
    return out


def python_workload_names(workers):
    names = ["sum_square_serial"] + [f"sum_square_pool_{w}" for w in workers]
    names += ["factorial_serial"] + [f"factorial_pool_{w}" for w in workers]
    names += ["map_square", "map_square_chunksize1", "apply_same_cpu", "apply_two_cpus", "grain"]
    return names


def run_python_side(python, workers, repeat, timeout, log):
    """{workload: result} for every workload that finished; failures are logged and left out."""
    results = {}
    info = {}
    try:
        v = subprocess.run([python, "-c", "import sys, platform; print(platform.python_version())"],
                           capture_output=True, text=True, timeout=60)
        info["version"] = v.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        log(f"python side skipped: cannot run {python}: {e}")
        return results, info
    for name in python_workload_names(workers):
        cmd = [python, os.path.abspath(__file__), "--python-workload", name, "--repeat", str(repeat)]
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"  python {name}: timed out after {timeout} s, left out")
            continue
        lines = p.stdout.strip().splitlines()
        if p.returncode != 0 or not lines:
            log(f"  python {name}: failed (exit {p.returncode}): {p.stderr.strip()[-400:]}")
            continue
        results[name] = json.loads(lines[-1])
        log(f"  python {name}: {results[name]['seconds']:.6g} s ({time.monotonic() - t0:.1f} s)")
    return results, info


# ------------------------------------------------------------------ the mproc side

def find_bench(given):
    if given:
        return given if os.path.isfile(given) and os.access(given, os.X_OK) else None
    candidates = [os.environ.get("MPROC_BENCH", "")]
    candidates += [os.path.join(ROOT, d, "mproc_bench") for d in ("build/all/bench", "build/bench")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def run_mproc_side(bench, extra_args, timeout, log):
    """{case name: {"real_time_ns", "items_per_second", "ns_per_item", "label"}}: medians."""
    cmd = [bench, "--benchmark_format=json", "--benchmark_filter=" + BENCH_FILTER] + extra_args
    log("running " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"mproc_bench timed out after {timeout} s")
        return {}, {}
    if p.returncode != 0:
        log(f"mproc_bench exited with {p.returncode}; using what it reported")
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        log("mproc_bench printed no JSON: " + p.stderr[-400:])
        return {}, {}
    unit = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    per_case = {}
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            log(f"  {b.get('name')}: error: {b.get('error_message')}")
            continue
        name = b["run_name"].replace("/real_time", "")
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        entry = per_case.setdefault(name, {"samples": []})
        sample = {"real_time_ns": b["real_time"] * unit[b["time_unit"]]}
        for k in ("items_per_second", "ns_per_item", "items", "work_ns"):
            if k in b:
                sample[k] = b[k]
        if b.get("label"):
            entry["label"] = b["label"]
        if b.get("run_type") == "aggregate":
            entry["median"] = sample
        else:
            entry["samples"].append(sample)
    cases = {}
    for name, e in per_case.items():
        if "median" in e:
            cases[name] = dict(e["median"])
        elif e["samples"]:
            cases[name] = {k: statistics.median(s[k] for s in e["samples"] if k in s)
                           for k in e["samples"][0]}
        if name in cases and "label" in e:
            cases[name]["label"] = e["label"]
    # the table bench_main.cpp prints (stderr), kept for the record
    return cases, {"context": doc.get("context", {}), "table": p.stderr[p.stderr.find("mproc against"):]}


# ------------------------------------------------------------------ formatting

def fmt_time(seconds):
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.3g} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_ratio(x, digits=2):
    return "—" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b is not None and b > 0 else None


def workers_list():
    """1..cpu_count() + 2 (at least 1..4): the last two show what more workers than CPUs give."""
    return list(range(1, max(2, os.cpu_count() or 1) + 3))


def collect(m, py, workers):
    """Everything the tables and the picture need, in seconds and speedups (None when missing)."""
    def ms(case):
        return m[case]["real_time_ns"] / 1e9 if case in m else None

    def pys(name):
        return py[name]["seconds"] if name in py else None

    d = {"workers": workers}
    for key, case, pyname in (("sum_square", "SumSquare", "sum_square"), ("factorial", "Factorial", "factorial")):
        d[key] = {
            "mproc_serial": ms(f"serial/{case}"),
            "python_serial": pys(f"{pyname}_serial"),
            "mproc_pool": {w: ms(f"mproc/{case}_pool/{w}") for w in workers},
            "python_pool": {w: pys(f"{pyname}_pool_{w}") for w in workers},
        }
        d[key]["mproc_speedup"] = {w: ratio(d[key]["mproc_serial"], t) for w, t in d[key]["mproc_pool"].items()}
        d[key]["python_speedup"] = {w: ratio(d[key]["python_serial"], t) for w, t in d[key]["python_pool"].items()}

    def per_item(case, n):
        return m[case]["real_time_ns"] / n / 1e9 if case in m else None

    d["map_default"] = (per_item(f"mproc/Map_square/{MAP_COUNT}", MAP_COUNT), pys("map_square") and pys("map_square") / MAP_COUNT)
    d["map_chunksize1"] = (per_item(f"mproc/Map_square_chunksize1/{MAP_CHUNKSIZE1_COUNT}", MAP_CHUNKSIZE1_COUNT),
                           pys("map_square_chunksize1") and pys("map_square_chunksize1") / MAP_CHUNKSIZE1_COUNT)
    d["map_threads"] = per_item(f"raw_threads/Map_square/{MAP_COUNT}", MAP_COUNT)
    d["grain"] = []  # one row per task size: seconds per item, each side's serial loop and its 2-way runs
    for work_ns in GRAIN_SIZES:
        def per(case):
            return m[case]["real_time_ns"] / 1e9 / m[case]["items"] if case in m and m[case].get("items") else None
        pyg = py.get("grain", {}).get("sizes", {}).get(str(work_ns))
        d["grain"].append({
            "work_ns": work_ns,
            "serial": per(f"serial/Grain/{work_ns}"),
            "threads2": per(f"threads2/Grain/{work_ns}"),
            "mproc_pool2": per(f"mproc/Grain_pool2/{work_ns}"),
            "python_serial": pyg["serial_s"] / pyg["items"] if pyg else None,
            "python_pool2": pyg["pool2_s"] / pyg["items"] if pyg else None,
        })
    for placement in ("same_cpu", "two_cpus"):
        d[f"apply_{placement}"] = (ms(f"mproc/Apply_round_trip_{placement}"), pys(f"apply_{placement}"))
        d[f"futex_{placement}"] = ms(f"raw/Apply_round_trip_{placement}")
    return d


def markdown(d, meta):
    w = d["workers"]
    lines = [
        "# mproc Pool against Python's multiprocessing.Pool",
        "",
        f"Generated by `bench/python/compare.py` on {meta['date']}: {meta['machine']}. "
        f"Load average {meta['load_before']} before, {meta['load_after']} after. mproc: `mproc_bench` "
        f"({meta['bench_args']}), medians of its repetitions; Python {meta.get('python', 'not run')}: "
        f"median of {meta['repeat']} runs per workload. Pools are built before the timed call.",
        "",
        "## Costs",
        "",
        "| workload | mproc | Python | Python / mproc |",
        "|---|---|---|---|",
    ]

    def row(name, a, b, note=""):
        lines.append(f"| {name}{note} | {fmt_time(a)} | {fmt_time(b)} | {fmt_ratio(ratio(b, a), 1)} |")

    ss, fa = d["sum_square"], d["factorial"]
    row(f"sum_square(0..{SUM_SQUARE_COUNT - 1}), serial loop", ss["mproc_serial"], ss["python_serial"])
    for k in w:
        row(f"sum_square(0..{SUM_SQUARE_COUNT - 1}), Pool({k}).map", ss["mproc_pool"][k], ss["python_pool"][k])
    row(f"factorial bit lengths, n = 0..{FACTORIAL_COUNT - 1}, serial loop", fa["mproc_serial"], fa["python_serial"])
    for k in w:
        row(f"factorial bit lengths, n = 0..{FACTORIAL_COUNT - 1}, Pool({k}).map", fa["mproc_pool"][k], fa["python_pool"][k])
    row("map(square), 1M ints, default chunks: per item", *d["map_default"])
    row(f"map(square), chunksize 1 ({MAP_CHUNKSIZE1_COUNT:,} ints): per item", *d["map_chunksize1"])
    row("two threads of one process, chunked loop over 1M ints: per item (bound for map)", d["map_threads"], None)
    row("apply round trip, Pool(1), worker on the caller's CPU", *d["apply_same_cpu"])
    row("apply round trip, Pool(1), worker on another CPU", *d["apply_two_cpus"])
    row("futex ping-pong between two processes, one CPU (bound for apply)", d["futex_same_cpu"], None)
    row("futex ping-pong between two processes, two CPUs (bound for apply)", d["futex_two_cpus"], None)

    lines += ["", "## Speedup over the serial loop", "",
              "| workers | sum_square mproc | sum_square Python | factorial mproc | factorial Python |",
              "|---|---|---|---|---|"]
    for k in w:
        lines.append(f"| {k} | {fmt_ratio(ss['mproc_speedup'][k])}× | {fmt_ratio(ss['python_speedup'][k])}× | "
                     f"{fmt_ratio(fa['mproc_speedup'][k])}× | {fmt_ratio(fa['python_speedup'][k])}× |")

    def met(value, target, at_most):
        if value is None:
            return "—"
        return "yes" if (value <= target if at_most else value >= target) else "**no**"

    s2 = ss["mproc_speedup"].get(2)
    per = d["map_default"][0]
    lines += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|",
              f"| sum_square speedup with 2 workers ≥ 1.9× (Python: 1.82×) | {fmt_ratio(s2)}× | {met(s2, 1.9, False)} |",
              f"| map(square) over 1M ints ≤ 5 ns per item, default chunks (Python: ~344 ns) | "
              f"{fmt_time(per)} | {met(per and per * 1e9, 5, True)} |"]
    for placement, text in (("same_cpu", "one CPU"), ("two_cpus", "two CPUs")):
        r = ratio(d[f"apply_{placement}"][0], d[f"futex_{placement}"])
        lines.append(f"| apply round trip ≤ 1.5× the futex ping-pong, {text} | {fmt_ratio(r)}× "
                     f"({fmt_time(d[f'apply_{placement}'][0])} / {fmt_time(d[f'futex_{placement}'])}) | {met(r, 1.5, True)} |")
    lines += [
        "",
        "Notes. The C++ factorial multiplies a Boost `cpp_int` step by step; Python's `math.factorial` uses a "
        "divide-and-conquer product in C, so that row compares libraries more than pools. Both return the bit "
        "length, so that the results sent back are small. Python's map inputs are a list, mproc's a vector. "
        "Placement: the map cases run where the scheduler puts them; the round trips are pinned (one CPU, "
        "or the worker on a second CPU), because on this VM waking a process on the other CPU costs tens of µs.",
        "",
        "![sum_square and factorial: time and speedup against workers](speedup.svg)",
        "",
        "![map over tasks of ~0 ns to 1 ms: cost per item and speedup, mproc, Python, two threads](grain.svg)",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ main

class LoadSampler:
    """Samples the 1-minute load average every `period` seconds in a thread, for the captions."""

    def __init__(self, period=2.0):
        import threading
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)

    def _run(self, period):
        while True:
            try:
                with open("/proc/loadavg") as f:
                    self.samples.append(float(f.read().split()[0]))
            except (OSError, ValueError):
                pass
            if self._stop.wait(period):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + loadavg()


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", help="mproc_bench (default: $MPROC_BENCH, build/all/bench/, build/bench/)")
    ap.add_argument("--bench-args", default="", help="extra arguments for mproc_bench, e.g. '--benchmark_repetitions=3'")
    ap.add_argument("--python", default=sys.executable or shutil.which("python3"),
                    help="the interpreter that runs the Python workloads (default: this one)")
    ap.add_argument("--no-python", action="store_true", help="leave the Python side out")
    ap.add_argument("--no-mproc", action="store_true", help="leave the mproc side out")
    ap.add_argument("--repeat", type=int, default=3, help="runs per Python workload (median taken)")
    ap.add_argument("--quick", action="store_true", help="one run per Python workload, mproc_bench with 1 repetition")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed per Python workload")
    ap.add_argument("--bench-timeout", type=float, default=600, help="seconds allowed for mproc_bench")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"), help="where to write the results")
    ap.add_argument("--no-plot", action="store_true", help="do not draw the pictures (bench/plot.py)")
    ap.add_argument("--readme", action="append", default=[],
                    help="also replace the generated blocks of this file (bench/README.md, README.md); repeatable")
    ap.add_argument("--python-workload", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.python_workload:  # child mode: one workload, JSON on the last line
        print(json.dumps(_workload(args.python_workload, max(1, args.repeat))))
        return 0

    log_lines = []

    def log(msg):
        print(msg, file=sys.stderr, flush=True)
        log_lines.append(msg)

    repeat = 1 if args.quick else max(1, args.repeat)
    workers = workers_list()
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": loadavg(), "uptime_before": uptime(), "repeat": repeat,
            "workers": workers, "cpus": os.cpu_count()}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    meta["machine"] = f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"

    sampler = LoadSampler().__enter__()
    m, mmeta = {}, {}
    bench_args = args.bench_args.split()
    if args.quick and not any(a.startswith("--benchmark_repetitions") for a in bench_args):
        bench_args.append("--benchmark_repetitions=1")
    meta["bench_args"] = " ".join(bench_args) or "default flags: 5 interleaved repetitions, min time 0.2 s"
    if not args.no_mproc:
        bench = find_bench(args.bench)
        if bench:
            m, mmeta = run_mproc_side(bench, bench_args, args.bench_timeout, log)
            log(f"mproc side: {len(m)} cases")
        else:
            log("mproc side skipped: no mproc_bench (build it: cmake --build build --target mproc_bench, or pass --bench)")

    py, pinfo = {}, {}
    python = None if args.no_python else args.python
    if python and (os.path.isfile(python) or shutil.which(python)):
        log(f"python side: {python}")
        py, pinfo = run_python_side(python, workers, repeat, args.timeout, log)
        if pinfo.get("version"):
            meta["python"] = pinfo["version"]
    elif not args.no_python:
        log("python side skipped: no python interpreter")
    sampler.__exit__(None, None, None)
    meta["load_after"] = loadavg()
    meta["uptime_after"] = uptime()
    meta["load_samples"] = sampler.samples

    d = collect(m, py, workers)
    os.makedirs(args.out, exist_ok=True)
    meta["log"] = log_lines
    md = markdown(d, meta)
    with open(os.path.join(args.out, "comparison.md"), "w") as f:
        f.write(md)
    raw = {"meta": meta, "mproc": m, "python": py,
           "mproc_table": mmeta.get("table", "")}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(raw, f, indent=1, sort_keys=True)
    print(md)
    print(f"wrote {args.out}/comparison.md, results.json", file=sys.stderr)
    if not args.no_plot:  # the pictures and the README table (bench/plot.py)
        sys.path.insert(0, os.path.dirname(HERE))
        import plot
        for path in plot.write_all(raw, args.out, args.readme):
            print("wrote " + path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
