#!/usr/bin/env python3
"""mproc's Pool against Python's multiprocessing.Pool, on the same workloads.

Runs the Pool cases of mproc_bench (Google Benchmark, --benchmark_format=json) and the same workloads
with Python's multiprocessing, then writes

    bench/results/comparison.md   tables: workload, mproc, Python, ratio; the speedups; the targets
    bench/results/speedup.svg     sum_square time and speedup against workers, serial vs pooled,
                                  mproc vs Python (factorial's speedup too)

Workloads (bench/pool_bench.cpp has the C++ side):
  sum_square   sum of i*i for i < n, n = 0..9999: serially, and Pool(w).map for w = 1..cpu_count()
  factorial    n! for n = 0..1999 (C++: Boost cpp_int; Python: math.factorial), returning its bit
               length: serially and Pool(w).map
  map(square)  Pool().map(square, 1M ints), per item, default chunks; and chunksize 1 over 20,000 ints
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

BENCH_FILTER = "^(serial|mproc|raw|raw_threads)/(SumSquare|Factorial|Map_square|Apply_round_trip)"


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
    else:
        raise ValueError("unknown workload " + name)
    return out


def python_workload_names(workers):
    names = ["sum_square_serial"] + [f"sum_square_pool_{w}" for w in workers]
    names += ["factorial_serial"] + [f"factorial_pool_{w}" for w in workers]
    names += ["map_square", "map_square_chunksize1", "apply_same_cpu", "apply_two_cpus"]
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
        for k in ("items_per_second", "ns_per_item"):
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
    return list(range(1, max(2, os.cpu_count() or 1) + 1))


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
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the picture

def svg(d):
    """Two panels: sum_square time per call against workers (log scale), and the speedup."""
    W, H = 960, 480
    ss, fa = d["sum_square"], d["factorial"]
    workers = d["workers"]
    colors = {"mproc": "#1f77b4", "python": "#d62728"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
           f'mproc Pool vs Python multiprocessing.Pool, {len(workers)} CPUs</text>']

    def panel(x0, y0, w, h, title, xlabel, ylabel, xs, ymin, ymax, log):
        xlo, xhi = 0.5, xs[-1] + 0.5

        def X(x):
            return x0 + (x - xlo) / (xhi - xlo) * w

        def Y(y):
            if log:
                return y0 + h - (math.log10(y) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)) * h
            return y0 + h - (y - ymin) / (ymax - ymin) * h

        out.append(f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
        for x in xs:
            out.append(f'<line x1="{X(x)}" y1="{y0 + h}" x2="{X(x)}" y2="{y0 + h + 5}" stroke="#444"/>')
            out.append(f'<text x="{X(x)}" y="{y0 + h + 20}" text-anchor="middle">{x}</text>')
        if log:
            ticks = []
            e = math.floor(math.log10(ymin))
            while 10 ** e <= ymax * 1.0001:
                for m in (1, 2, 5):
                    v = m * 10 ** e
                    if ymin * 0.9999 <= v <= ymax * 1.0001:
                        ticks.append(v)
                e += 1
        else:
            step = 0.5 if ymax - ymin <= 4 else 1
            ticks = [ymin + i * step for i in range(int((ymax - ymin) / step + 1e-9) + 1)]
        for v in ticks:
            out.append(f'<line x1="{x0}" y1="{Y(v):.1f}" x2="{x0 + w}" y2="{Y(v):.1f}" stroke="#ddd"/>')
            label = fmt_time(v) if log else f"{v:g}×"
            out.append(f'<text x="{x0 - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{label}</text>')
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 40}" text-anchor="middle">{xlabel}</text>')
        out.append(f'<text transform="translate({x0 - 72},{y0 + h / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>')
        return X, Y

    def polyline(X, Y, pts, color, dash="", marker=True, width=2.5):
        pts = [(x, y) for x, y in pts if y is not None and y > 0]
        if not pts:
            return
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(pts) > 1:
            p = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="{width}"{dash_attr}/>')
        if marker:
            for x, y in pts:
                out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="4.5" fill="{color}"/>')

    # left: time per call, log scale
    times = [t for t in [ss["mproc_serial"], ss["python_serial"]] + list(ss["mproc_pool"].values())
             + list(ss["python_pool"].values()) if t]
    if times:
        lo = 10 ** math.floor(math.log10(min(times) * 0.8))
        hi = 10 ** math.ceil(math.log10(max(times) * 1.25))
    else:
        lo, hi = 1e-3, 10
    px, py_, pw, ph = 110, 70, 330, 280
    X, Y = panel(px, py_, pw, ph, f"sum_square(0..{SUM_SQUARE_COUNT - 1}): time per call", "workers (Pool(w).map)",
                 "time per call (log scale)", workers, lo, hi, True)
    for who in ("mproc", "python"):
        serial = ss[f"{who}_serial"]
        if serial:
            out.append(f'<line x1="{px}" y1="{Y(serial):.1f}" x2="{px + pw}" y2="{Y(serial):.1f}" '
                       f'stroke="{colors[who]}" stroke-width="2" stroke-dasharray="7,5"/>')
        polyline(X, Y, [(w, ss[f"{who}_pool"][w]) for w in workers], colors[who])

    # right: speedup, linear
    sp = [v for k in ("mproc_speedup", "python_speedup") for t in (ss, fa) for v in t[k].values() if v]
    ymax = max([len(workers) + 0.5] + [v + 0.25 for v in sp])
    ymax = math.ceil(ymax * 2) / 2
    qx = 580
    X2, Y2 = panel(qx, py_, pw, ph, "speedup over the serial loop", "workers (Pool(w).map)",
                   "serial time / pooled time", workers, 0, ymax, False)
    ideal = [(w, float(w)) for w in workers]
    polyline(X2, Y2, ideal, "#888", dash="2,4", marker=False, width=1.5)
    out.append(f'<text x="{X2(1.5) - 8:.1f}" y="{Y2(1.5) - 6:.1f}" text-anchor="end" fill="#666">ideal</text>')
    target_y = Y2(1.9)
    out.append(f'<line x1="{X2(2) - 16:.1f}" y1="{target_y:.1f}" x2="{X2(2) + 16:.1f}" y2="{target_y:.1f}" stroke="#2ca02c" stroke-width="3"/>')
    for who in ("mproc", "python"):
        pts = [(w, ss[f"{who}_speedup"][w]) for w in workers]
        polyline(X2, Y2, pts, colors[who])
        polyline(X2, Y2, [(w, fa[f"{who}_speedup"][w]) for w in workers], colors[who], dash="3,3", width=1.8)
        for w, v in pts:  # the sum_square speedups, written beside their points
            if v:
                dy = -9 if who == "mproc" else 17
                out.append(f'<text x="{X2(w) + 9:.1f}" y="{Y2(v) + dy:.1f}" fill="{colors[who]}" font-weight="bold">{v:.2f}×</text>')

    # legend: one row per side
    ly = H - 44
    for row, (who, name) in enumerate((("mproc", "mproc"), ("python", "Python"))):
        y = ly + row * 22
        entries = [("", f"{name} Pool(w).map, sum_square"), ("7,5", f"{name} serial loop (left)"),
                   ("3,3", f"{name} factorial speedup (right)")]
        for i, (dash, text) in enumerate(entries):
            x = 40 + i * 305
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{x}" y1="{y}" x2="{x + 34}" y2="{y}" stroke="{colors[who]}" stroke-width="2.5"{dash_attr}/>')
            if not dash:
                out.append(f'<circle cx="{x + 17}" cy="{y}" r="4" fill="{colors[who]}"/>')
            out.append(f'<text x="{x + 42}" y="{y + 4}">{text}</text>')
    out.append(f'<line x1="{W - 190}" y1="{ly - 26}" x2="{W - 156}" y2="{ly - 26}" stroke="#2ca02c" stroke-width="3"/>')
    out.append(f'<text x="{W - 148}" y="{ly - 22}">target, 2 workers</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main

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
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_before": loadavg(), "repeat": repeat}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    meta["machine"] = f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"

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
    meta["load_after"] = loadavg()

    d = collect(m, py, workers)
    os.makedirs(args.out, exist_ok=True)
    meta["log"] = log_lines
    md = markdown(d, meta)
    with open(os.path.join(args.out, "comparison.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "speedup.svg"), "w") as f:
        f.write(svg(d))
    raw = {"meta": meta, "mproc": m, "python": py,
           "mproc_table": mmeta.get("table", "")}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(raw, f, indent=1, sort_keys=True)
    print(md)
    print(f"wrote {args.out}/comparison.md, speedup.svg, results.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
