#!/usr/bin/env python3
"""The pictures and the generated table of bench/README.md, from bench/results/results.json.

bench/python/compare.py measures (mproc_bench's Pool cases and the same workloads with Python's
multiprocessing) and writes results.json, then calls this; run alone, this redraws from the JSON:

    python3 bench/plot.py [--results bench/results/results.json] [--out bench/results] [--readme bench/README.md]

It writes
    results/speedup.svg   sum_square: time per call and speedup against the number of workers, mproc and
                          Python, beside the serial loop (factorial's speedup dashed)
    results/grain.svg     map over tasks of ~0 ns to 1 ms each: what a pool costs per item beyond a
                          perfect split over 2 CPUs, and the speedup over the serial loop; mproc Pool(2),
                          Python Pool(2), two std::threads
and replaces the part of bench/README.md between the markers "<!-- pictures:begin -->" and
"<!-- pictures:end -->" with the figures of the run. Each picture's caption states the machine (CPUs)
and the load average during the run. SVG written by hand: standard library only (no matplotlib).
"""

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))
import compare  # noqa: E402  (collect() and the formatting helpers: one definition of every figure)

fmt_time, fmt_ratio, ratio = compare.fmt_time, compare.fmt_ratio, compare.ratio

COLORS = {"mproc": "#1f77b4", "python": "#d62728", "threads": "#2ca02c", "serial": "#555555"}
BEGIN, END = "<!-- pictures:begin -->", "<!-- pictures:end -->"


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def load_text(meta):
    """'load average 0.4-1.8 during the run (2 s samples of the 1-minute average)', or the before/after pair."""
    samples = meta.get("load_samples") or []
    if samples:
        lo, hi = min(samples), max(samples)
        span = f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}–{hi:.2f}"
        return f"load average {span} during the run (1-minute average, sampled every 2 s)"
    return f"load average {meta.get('load_before', '?')} before, {meta.get('load_after', '?')} after"


def loaded(meta):
    """True when the 1-minute load average reached 1 during the run: other processes held CPUs."""
    samples = meta.get("load_samples") or []
    try:
        return max(samples) >= 1.0 if samples else float(str(meta.get("load_before", "0")).split()[0]) >= 1.0
    except ValueError:
        return False


LOADED_NOTE = "LOADED MACHINE: other processes held the CPUs, so every speedup here understates an idle machine's"


def caption(meta):
    return f"{meta.get('machine', '?')}; {meta.get('date', '?')}; {load_text(meta)}"


class Svg:
    def __init__(self, width, height, title):
        self.w, self.h = width, height
        self.out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                    f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
                    f'<rect width="{width}" height="{height}" fill="white"/>',
                    f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{esc(title)}</text>']

    def add(self, s):
        self.out.append(s)

    def text(self, x, y, s, anchor="start", size=None, color=None, bold=False):
        attrs = f'x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"'
        if size:
            attrs += f' font-size="{size}"'
        if color:
            attrs += f' fill="{color}"'
        if bold:
            attrs += ' font-weight="bold"'
        self.add(f"<text {attrs}>{esc(s)}</text>")

    def line(self, x1, y1, x2, y2, color, width=1.0, dash=""):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" stroke-width="{width}"{d}/>')

    def polyline(self, X, Y, pts, color, dash="", marker=True, width=2.5, sort=False):
        pts = [(x, y) for x, y in pts if x is not None and y is not None and y > 0 and x > 0]
        if sort:
            pts.sort()
        if not pts:
            return
        d = f' stroke-dasharray="{dash}"' if dash else ""
        if len(pts) > 1:
            p = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
            self.add(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="{width}"{d}/>')
        if marker:
            for x, y in pts:
                self.add(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="4" fill="{color}"/>')

    def caption(self, lines, y, meta=None):
        if meta is not None and loaded(meta):
            lines = lines + [LOADED_NOTE]
        for i, s in enumerate(lines):
            warn = s == LOADED_NOTE
            self.text(self.w / 2, y + i * 17, s, anchor="middle", size=12, color="#b00" if warn else "#333", bold=warn)

    def legend(self, entries, x, y, step):
        for i, (color, dash, label) in enumerate(entries):
            xx = x + i * step
            self.line(xx, y, xx + 34, y, color, 2.5, dash)
            if not dash:
                self.add(f'<circle cx="{xx + 17}" cy="{y}" r="4" fill="{color}"/>')
            self.text(xx + 42, y + 4, label)

    def done(self):
        return "\n".join(self.out + ["</svg>"]) + "\n"


def log_ticks(lo, hi, mults=(1, 2, 5)):
    ticks, e = [], math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in mults:
            v = m * 10 ** e
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def axes(svg, x0, y0, w, h, title, xlabel, ylabel, xrange_, yrange, xlog, ylog, xticks, yticks, xfmt, yfmt):
    """Draws a framed panel with grid and labels; returns the X and Y mappings."""
    def mapper(lo, hi, log, a, b):
        if log:
            return lambda v: a + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (b - a)
        return lambda v: a + (v - lo) / (hi - lo) * (b - a)

    X = mapper(xrange_[0], xrange_[1], xlog, x0, x0 + w)
    Y = mapper(yrange[0], yrange[1], ylog, y0 + h, y0)
    svg.text(x0 + w / 2, y0 - 12, title, anchor="middle", size=14, bold=True)
    svg.add(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
    for v in xticks:
        svg.line(X(v), y0, X(v), y0 + h, "#eee")
        svg.line(X(v), y0 + h, X(v), y0 + h + 5, "#444")
        svg.text(X(v), y0 + h + 20, xfmt(v), anchor="middle")
    for v in yticks:
        svg.line(x0, Y(v), x0 + w, Y(v), "#ddd")
        svg.text(x0 - 6, Y(v) + 4, yfmt(v), anchor="end")
    svg.text(x0 + w / 2, y0 + h + 40, xlabel, anchor="middle")
    svg.add(f'<text transform="translate({x0 - 62},{y0 + h / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>')
    return X, Y


def short_time(seconds):
    return fmt_time(seconds).replace(".0 ", " ")


# ------------------------------------------------------------------ speedup against workers

def svg_workers(d, meta):
    ss, fa = d["sum_square"], d["factorial"]
    workers = d["workers"]
    ncpu = meta.get("cpus", len(workers))
    svg = Svg(980, 580, f"sum_square(0..{compare.SUM_SQUARE_COUNT - 1}) by Pool(w).map: mproc and Python, "
                        f"on {ncpu} CPUs")
    times = [t for t in [ss["mproc_serial"], ss["python_serial"]] + list(ss["mproc_pool"].values())
             + list(ss["python_pool"].values()) if t]
    lo = 10 ** math.floor(math.log10(min(times) * 0.8)) if times else 1e-3
    hi = 10 ** math.ceil(math.log10(max(times) * 1.25)) if times else 10
    xr = (0.5, workers[-1] + 0.5)
    X, Y = axes(svg, 110, 70, 340, 300, "time per call (log scale)", "workers w", "seconds per map call",
                xr, (lo, hi), False, True, workers, log_ticks(lo, hi), str, short_time)
    for who in ("mproc", "python"):
        serial = ss[f"{who}_serial"]
        if serial:
            svg.line(110, Y(serial), 450, Y(serial), COLORS[who], 2, "7,5")
        svg.polyline(X, Y, [(w, ss[f"{who}_pool"][w]) for w in workers], COLORS[who])

    sp = [v for k in ("mproc_speedup", "python_speedup") for t in (ss, fa) for v in t[k].values() if v]
    ymax = math.ceil(max([min(ncpu, workers[-1]) + 0.5] + [v + 0.25 for v in sp]) * 2) / 2
    X2, Y2 = axes(svg, 590, 70, 340, 300, "speedup over the serial loop", "workers w", "serial time / pooled time",
                  xr, (0, ymax), False, False, workers, [i * 0.5 for i in range(int(ymax * 2) + 1)], str,
                  lambda v: f"{v:g}×")
    ideal = [(w, float(min(w, ncpu))) for w in workers]
    svg.polyline(X2, Y2, ideal, "#888", dash="2,4", marker=False, width=1.5)
    svg.text(X2(workers[-1]) - 4, Y2(ideal[-1][1]) + 18, "ideal: min(w, CPUs)", anchor="end", color="#666")
    if workers[-1] > ncpu:  # more workers than CPUs: shaded, the speedup can only flatten there
        for x0, XX, YY in ((110, X, None), (590, X2, None)):
            left = XX(ncpu + 0.5)
            svg.add(f'<rect x="{left:.1f}" y="70" width="{x0 + 340 - left:.1f}" height="300" fill="#000" '
                    'fill-opacity="0.05"/>')
            svg.text(left + 6, 86, f"w > {ncpu} CPUs", color="#666", size=11)
    if 2 in workers:
        svg.line(X2(2) - 16, Y2(1.9), X2(2) + 16, Y2(1.9), "#9467bd", 3)
    for who in ("mproc", "python"):
        pts = [(w, ss[f"{who}_speedup"][w]) for w in workers]
        svg.polyline(X2, Y2, pts, COLORS[who])
        svg.polyline(X2, Y2, [(w, fa[f"{who}_speedup"][w]) for w in workers], COLORS[who], dash="3,3", width=1.8)
    for w in workers:  # the sum_square speedups beside their points: the higher one above, the other below
        m, p = ss["mproc_speedup"][w], ss["python_speedup"][w]
        for who, v, other in (("mproc", m, p), ("python", p, m)):
            if v:
                above = other is None or v > other or (v == other and who == "mproc")
                svg.text(X2(w) + 8, Y2(v) + (-10 if above else 20), f"{v:.2f}×", color=COLORS[who], bold=True)
    svg.legend([(COLORS["mproc"], "", "mproc Pool(w).map"), (COLORS["mproc"], "7,5", "mproc serial loop"),
                (COLORS["mproc"], "3,3", "mproc factorial speedup")], 40, 440, 310)
    svg.legend([(COLORS["python"], "", "Python Pool(w).map"), (COLORS["python"], "7,5", "Python serial loop"),
                (COLORS["python"], "3,3", "Python factorial speedup")], 40, 462, 310)
    svg.line(820, 418, 854, 418, "#9467bd", 3)
    svg.text(860, 422, "target 1.9×")
    svg.caption([caption(meta),
                 f"sum_square(n) = Σ i² for i < n, n = 0..{compare.SUM_SQUARE_COUNT - 1}; pools built before timing; "
                 f"mproc: median of interleaved repetitions, Python: median of {meta.get('repeat', '?')} runs"], 500, meta)
    return svg.done()


# ------------------------------------------------------------------ per-item cost against task size

def grain_rows(d):
    """Per task size: x (serial time per item) and, per side, the overhead beyond a perfect 2-way split and
    the speedup. Missing figures are None."""
    rows = []
    for g in d.get("grain", []):
        row = {"work_ns": g["work_ns"], "serial": g["serial"], "python_serial": g["python_serial"]}
        for side, serial_key in (("threads2", "serial"), ("mproc_pool2", "serial"), ("python_pool2", "python_serial")):
            t, s = g.get(side), g.get(serial_key)
            row[side] = t
            row[side + "_overhead"] = t - s / 2 if t is not None and s is not None else None
            row[side + "_speedup"] = ratio(s, t)
        rows.append(row)
    return rows


def payoff(rows, side, serial_key, level=1.0):
    """The serial time per item from which `side` stays at or above `level` speedup for every larger task
    (log-interpolated at the last crossing), or None if its largest task is below `level`."""
    pts = sorted((r[serial_key], r[side + "_speedup"]) for r in rows if r[serial_key] and r[side + "_speedup"])
    if not pts or pts[-1][1] < level:
        return None
    k = len(pts) - 1
    while k > 0 and pts[k - 1][1] >= level:
        k -= 1
    if k == 0:
        return pts[0][0]
    (x1, y1), (x2, y2) = pts[k - 1], pts[k]
    f = (level - y1) / (y2 - y1)
    return 10 ** (math.log10(x1) + f * (math.log10(x2) - math.log10(x1)))


def svg_grain(d, meta):
    rows = grain_rows(d)
    ncpu = meta.get("cpus", "?")
    svg = Svg(1000, 630, f"map over N tasks of t each, 2 ways on {ncpu} CPUs: where processes pay off")
    sides = [("threads2", "serial", COLORS["threads"], "two std::threads (one process)"),
             ("mproc_pool2", "serial", COLORS["mproc"], "mproc Pool(2).map"),
             ("python_pool2", "python_serial", COLORS["python"], "Python multiprocessing Pool(2).map")]
    xs = [r[k] for r in rows for k in ("serial", "python_serial") if r[k]]
    if not xs:
        return None
    xlo = 10 ** math.floor(math.log10(min(xs) * 0.9))
    xhi = 10 ** math.ceil(math.log10(max(xs) * 1.1))
    xticks = [10 ** e for e in range(round(math.log10(xlo)), round(math.log10(xhi)) + 1)]

    over = [r[s + "_overhead"] for r in rows for s, *_ in sides if r[s + "_overhead"] and r[s + "_overhead"] > 0]
    ylo = max(0.1e-9, 10 ** math.floor(math.log10(min(over) * 0.9))) if over else 1e-9
    yhi = 10 ** math.ceil(math.log10(max(over) * 1.1)) if over else 1e-3
    X, Y = axes(svg, 100, 70, 360, 320, "cost per item beyond a perfect split", "t: serial time per item (log)",
                "time per item − t/2 (log)", (xlo, xhi), (ylo, yhi), True, True, xticks,
                log_ticks(ylo, yhi, (1,)), short_time, short_time)
    # the diagonal t/2: a "pool" that ran everything on one CPU would cost this much beyond the split
    svg.polyline(X, Y, [(xlo, xlo / 2), (xhi, xhi / 2)], "#999", dash="2,4", marker=False, width=1.5)
    xl = 10 ** (math.log10(xlo) + 0.72 * (math.log10(xhi) - math.log10(xlo)))
    if ylo < xl / 2 < yhi:
        svg.text(X(xl) + 8, Y(xl / 2) + 14, "t/2: no parallelism", color="#666")
    for side, serial_key, color, _ in sides:
        pts = [(r[serial_key], max(r[side + "_overhead"], ylo)) for r in rows
               if r[serial_key] and r[side + "_overhead"] is not None]
        svg.polyline(X, Y, pts, color, sort=True)

    sp = [r[s + "_speedup"] for r in rows for s, *_ in sides if r[s + "_speedup"]]
    ymax = max(2.5, math.ceil(max(sp + [0]) * 2 + 0.5) / 2)
    X2, Y2 = axes(svg, 590, 70, 360, 320, "speedup over the serial loop", "t: serial time per item (log)",
                  "serial time / 2-way time", (xlo, xhi), (0, ymax), True, False, xticks,
                  [i * 0.5 for i in range(int(ymax * 2) + 1)], short_time, lambda v: f"{v:g}×")
    svg.line(590, Y2(1), 950, Y2(1), "#555", 1.5, "6,4")
    svg.text(596, Y2(1) - 6, "break-even with the serial loop", color="#555")
    svg.line(590, Y2(2), 950, Y2(2), "#999", 1.5, "2,4")
    svg.text(596, Y2(2) - 6, "ideal on 2 CPUs", color="#666")
    for side, serial_key, color, _ in sides:
        svg.polyline(X2, Y2, [(r[serial_key], r[side + "_speedup"]) for r in rows], color, sort=True)
        x1 = payoff(rows, side, serial_key)
        if x1:
            svg.line(X2(x1), Y2(1) - 7, X2(x1), Y2(1) + 7, color, 3)
    svg.legend([(c, "", label) for _, _, c, label in sides], 60, 470, 300)
    notes = []
    for side, serial_key, _, label in sides:
        x1, x18 = payoff(rows, side, serial_key), payoff(rows, side, serial_key, 1.8)
        name = label.split(' (')[0].split(' multiprocessing')[0]
        if x1 is None:
            notes.append(f"{name}: not above the loop at the largest t")
        else:
            notes.append(f"{name}: beats the loop for every t ≥ {short_time(x1)}, "
                         f"≥ 1.8× {'for t ≥ ' + short_time(x18) if x18 else 'nowhere'}")
    svg.caption(["; ".join(notes[:2]) + ";", notes[2], caption(meta),
                 "N = 20 ms / t items (64..200,000) per call, default chunks, pools built before timing;",
                 "t is each side's own serial time per item (Python's loop step and call are slower)"], 505, meta)
    return svg.done()


# ------------------------------------------------------------------ the README block

def readme_block(d, meta):
    ss = d["sum_square"]
    w = d["workers"]
    lines = [BLOCKS["table"][0], "",
             f"Generated by `bench/pictures.sh` ({meta.get('date', '?')}): {meta.get('machine', '?')}; "
             f"{load_text(meta)}. mproc: {meta.get('bench_args', '?')}; Python {meta.get('python', 'not run')}, "
             f"median of {meta.get('repeat', '?')} runs. Ratios come from the same run; with a load above ~0.5 "
             "absolute times are noise." + (f" **{LOADED_NOTE}.**" if loaded(meta) else ""), "",
             "| target | measured | met? |", "|---|---|---|"]

    def met(value, target, at_most):
        if value is None:
            return "—"
        return "yes" if (value <= target if at_most else value >= target) else "**no**"

    per = d["map_default"][0]
    thr = d["map_threads"]
    lines.append(f"| map(square) over 1M ints ≤ 5 ns per item (two threads: {fmt_time(thr)}; Python: "
                 f"{fmt_time(d['map_default'][1])}) | {fmt_time(per)} | {met(per and per * 1e9, 5, True)} |")
    s2 = ss["mproc_speedup"].get(2)
    lines.append(f"| sum_square Pool(2) speedup ≥ 1.9 (serial {fmt_time(ss['mproc_serial'])}, Pool(2) "
                 f"{fmt_time(ss['mproc_pool'].get(2))}; Python: {fmt_ratio(ss['python_speedup'].get(2))}×) | "
                 f"{fmt_ratio(s2)}× | {met(s2, 1.9, False)} |")
    for placement, text in (("same_cpu", "one CPU"), ("two_cpus", "two CPUs")):
        r = ratio(d[f"apply_{placement}"][0], d[f"futex_{placement}"])
        lines.append(f"| apply round trip ≤ 1.5× a futex ping-pong, {text} ({fmt_time(d[f'apply_{placement}'][0])} / "
                     f"{fmt_time(d[f'futex_{placement}'])}) | {fmt_ratio(r)}× | {met(r, 1.5, True)} |")
    lines += ["", "Speedup against workers (sum_square, `results/speedup.svg`):", "",
              "| workers | " + " | ".join(str(k) for k in w) + " |", "|---|" + "---|" * len(w),
              "| mproc | " + " | ".join(f"{fmt_ratio(ss['mproc_speedup'][k])}×" for k in w) + " |",
              "| Python | " + " | ".join(f"{fmt_ratio(ss['python_speedup'][k])}×" for k in w) + " |",
              "", "Per item as the task grows (`results/grain.svg`): time per item, and speedup over the serial loop:", "",
              "| task (C++ serial per item) | two threads | mproc Pool(2) | Python serial per item | Python Pool(2) |",
              "|---|---|---|---|---|"]
    for r in grain_rows(d):
        def cell(side):
            t, s = r[side], r[side + "_speedup"]
            return "—" if t is None else f"{fmt_time(t)} ({fmt_ratio(s)}×)"
        lines.append(f"| {fmt_time(r['serial'])} | {cell('threads2')} | {cell('mproc_pool2')} | "
                     f"{fmt_time(r['python_serial'])} | {cell('python_pool2')} |")
    rows = grain_rows(d)
    lines += ["", "Two-way runs beat the serial loop for every task from about " + ", ".join(
        f"{name} {short_time(x) if x else '— (not at the largest task)'}" for name, x in (
            ("two threads", payoff(rows, "threads2", "serial")),
            ("mproc", payoff(rows, "mproc_pool2", "serial")),
            ("Python", payoff(rows, "python_pool2", "python_serial")))) + " (serial time per item).", "", BLOCKS["table"][1]]
    return "\n".join(lines)


def caption_block(d, meta):
    """The top-level README's pictures and their caption."""
    ss = d["sum_square"]
    s2 = ss["mproc_speedup"].get(2)
    rows = grain_rows(d)
    x1 = payoff(rows, "mproc_pool2", "serial")
    return "\n".join([
        BLOCKS["caption"][0], "",
        "![sum_square: time and speedup against the number of workers, mproc and Python](bench/results/speedup.svg)",
        "",
        "![map over tasks of ~0 ns to 1 ms: cost per item and speedup of mproc Pool(2), Python Pool(2) and two "
        "threads](bench/results/grain.svg)", "",
        f"*{meta.get('machine', '?')}, {load_text(meta)} ({meta.get('date', '?')}). sum_square over 0..9999: "
        f"Pool(2) {fmt_ratio(s2)}× the serial loop (Python {fmt_ratio(ss['python_speedup'].get(2))}×); "
        + (f"mproc's Pool(2).map beats a serial loop for every task from about {short_time(x1)} of work. " if x1 else
           "mproc's Pool(2).map did not stay above the serial loop at any task size in this run. ")
        + "Redrawn by `bench/pictures.sh`; figures in [bench/README.md](bench/README.md).*"
        + (f" **{LOADED_NOTE}.**" if loaded(meta) else ""), "",
        BLOCKS["caption"][1]])


BLOCKS = {"table": (BEGIN, END, readme_block),
          "caption": ("<!-- pictures:caption:begin -->", "<!-- pictures:caption:end -->", caption_block)}


def write_all(raw, out_dir, readmes):
    """Draws the pictures into out_dir and replaces the generated blocks found in each of `readmes`."""
    meta = raw["meta"]
    d = compare.collect(raw.get("mproc", {}), raw.get("python", {}), meta.get("workers") or compare.workers_list())
    written = []
    for name, text in (("speedup.svg", svg_workers(d, meta)), ("grain.svg", svg_grain(d, meta))):
        if text:
            with open(os.path.join(out_dir, name), "w") as f:
                f.write(text)
            written.append(os.path.join(out_dir, name))
    for readme in readmes:
        if not os.path.isfile(readme):
            continue
        with open(readme) as f:
            doc = f.read()
        changed = False
        for begin, end, make in BLOCKS.values():
            if begin in doc and end in doc:
                doc = doc[:doc.index(begin)] + make(d, meta) + doc[doc.index(end) + len(end):]
                changed = True
        if changed:
            with open(readme, "w") as f:
                f.write(doc)
            written.append(readme)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "results", "results.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--readme", action="append",
                    help="a file whose generated blocks are replaced; repeatable (default: bench/README.md and README.md)")
    args = ap.parse_args()
    with open(args.results) as f:
        raw = json.load(f)
    readmes = args.readme if args.readme is not None else [os.path.join(HERE, "README.md"),
                                                           os.path.join(os.path.dirname(HERE), "README.md")]
    for path in write_all(raw, args.out, readmes):
        print("wrote " + path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
