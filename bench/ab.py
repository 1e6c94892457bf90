#!/usr/bin/env python3
"""Two mproc_bench binaries (say, before and after an engine change) in alternating runs.

    python3 bench/ab.py OLD_BENCH NEW_BENCH [--filter REGEX] [--rounds 6] [--args "..."]

Runs OLD, NEW, OLD, NEW... `rounds` times each with the same Google Benchmark flags, so a change in
the machine's load falls on both alike, and prints per case the median over rounds of each binary's
median real time, the NEW/OLD ratio of those, and the per-round ratios (NEW round k over OLD round k)
with their range. The 1-minute load average before each run is printed.

--cpu (the filter must select one case): also the CPU time of every process of the run (user +
system, the parent, its pool's workers and zygote, all reaped), per call: two runs of each binary
(--benchmark_min_time 0.3 and 1.5, one repetition), the difference in CPU time over the difference in
iterations, so that starting the pools cancels out. On a loaded machine CPU time varies less than
wall time: it counts what the library makes the CPUs do, not how long it waited for them.
Standard library only.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys

UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def cpu_per_call(binary, flt):
    """CPU seconds (all processes) per iteration of the one case `flt` selects."""
    runs = []
    for min_time in (0.3, 1.5):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([binary, "--benchmark_format=json", f"--benchmark_filter={flt}",
                            "--benchmark_repetitions=1", f"--benchmark_min_time={min_time}"],
                           capture_output=True, text=True, timeout=900)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            sys.exit(f"{binary} exited with {p.returncode}: {p.stderr[-500:]}")
        its = [b["iterations"] for b in json.loads(p.stdout)["benchmarks"] if b.get("run_type") == "iteration"]
        if len(its) != 1:
            sys.exit(f"--cpu needs a filter that selects one case; {flt!r} selected {len(its)}")
        runs.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, its[0]))
    (c1, i1), (c2, i2) = runs
    return (c2 - c1) / (i2 - i1) if i2 > i1 else float("nan")


def run(binary, flt, extra):
    cmd = [binary, "--benchmark_format=json", f"--benchmark_filter={flt}"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        sys.exit(f"{binary} exited with {p.returncode}: {p.stderr[-500:]}")
    doc = json.loads(p.stdout)
    out = {}
    for b in doc["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"{b['name']}: {b.get('error_message')}")
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].replace("/real_time", "")
        out.setdefault(name, []).append(b["real_time"] * UNIT[b["time_unit"]])
    return {k: statistics.median(v) for k, v in out.items()}


def load():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--filter", default="^(mproc|raw_threads)/Map_square/")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--args", default="--benchmark_repetitions=5 --benchmark_min_time=0.2")
    ap.add_argument("--cpu", action="store_true", help="also CPU time per call, all processes (one case only)")
    a = ap.parse_args()
    cpu = {"old": [], "new": []}
    extra = a.args.split()
    rounds = {"old": [], "new": []}
    for k in range(a.rounds):
        for side in ("old", "new"):
            before = load()
            r = run(getattr(a, side), a.filter, extra)
            rounds[side].append(r)
            extra_text = ""
            if a.cpu:
                cpu[side].append(cpu_per_call(getattr(a, side), a.filter))
                extra_text = f"; CPU {cpu[side][-1] * 1e3:.3f} ms per call"
            print(f"round {k + 1} {side} (load {before}): " +
                  ", ".join(f"{n} {t / 1e6:.3f} ms" for n, t in sorted(r.items())) + extra_text, flush=True)
    print()
    print(f"{'case':45} {'old (median)':>14} {'new (median)':>14} {'new/old':>8}  per-round new/old")
    for name in sorted(rounds["old"][0]):
        olds = [r[name] for r in rounds["old"] if name in r]
        news = [r[name] for r in rounds["new"] if name in r]
        per = sorted(n / o for n, o in zip(news, olds))
        mo, mn = statistics.median(olds), statistics.median(news)
        print(f"{name:45} {mo / 1e6:11.3f} ms {mn / 1e6:11.3f} ms {mn / mo:8.3f}  "
              f"{per[0]:.2f}..{per[-1]:.2f} (median {statistics.median(per):.2f})")
    if a.cpu:
        mo, mn = statistics.median(cpu["old"]), statistics.median(cpu["new"])
        per = sorted(n / o for n, o in zip(cpu["new"], cpu["old"]))
        print(f"{'CPU time per call, all processes':45} {mo * 1e3:11.3f} ms {mn * 1e3:11.3f} ms {mn / mo:8.3f}  "
              f"{per[0]:.2f}..{per[-1]:.2f} (median {statistics.median(per):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
