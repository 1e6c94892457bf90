#!/bin/sh
# pictures.sh — one command that measures and redraws every picture and the generated tables:
#
#   bench/pictures.sh [BUILD_DIR]        (default build/pictures; measuring takes 2.5-3 min on 2 CPUs, the
#                                        first build of mproc_bench another ~3 min)
#
# 1. configures BUILD_DIR if needed (Release, benchmarks only) and builds mproc_bench;
# 2. runs bench/python/compare.py: mproc_bench's Pool cases (sum_square and factorial against
#    workers, map(square), apply round trips, the grain cases) and the same workloads with Python's
#    multiprocessing, sampling the load average meanwhile;
# 3. which writes bench/results/{results.json,comparison.md,speedup.svg,grain.svg} and replaces the
#    generated blocks of bench/README.md and README.md (bench/plot.py; rerun it alone to redraw from
#    results.json).
#
# Run it on an idle machine: every caption states the CPUs and the load average during the run, and
# the figures mean something only when that load is well under 1. Environment: PYTHON (python3),
# BENCH_ARGS (extra mproc_bench flags), JOBS (build parallelism, default: all CPUs).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build/pictures"}
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_BENCH=ON -DMPROC_BUILD_TESTS=OFF \
    -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_TOOLS=OFF >/dev/null
fi
cmake --build "$build" --target mproc_bench -j "$jobs"

echo "CPUs: $(nproc); $(uptime)" >&2
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: load average $load: the figures will be noisy (the captions will say so)" >&2
fi

start=$(date +%s)
"$python" "$root/bench/python/compare.py" --bench "$build/bench/mproc_bench" \
  --bench-args "${BENCH_ARGS:-}" --out "$root/bench/results" \
  --readme "$root/bench/README.md" --readme "$root/README.md" >/dev/null
echo "measured and drawn in $(( $(date +%s) - start )) s; $(uptime)" >&2
