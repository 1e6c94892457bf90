#!/usr/bin/env bash
# What including mproc costs a translation unit: compile time (user + system CPU seconds) and peak
# memory (maximum resident set size, from /usr/bin/time -v) of a file that includes only
# <mproc/mproc.hpp>, beside one that includes only <thread> and <future> (the baseline: what a
# program using threads instead would include), and the ratios. The target is <= 2x on both.
#   bench/compile_cost.sh                  g++, -O2 -std=c++20, 5 runs each (the median counts)
#   CXX=clang++-16 RUNS=3 bench/compile_cost.sh
#   bench/compile_cost.sh mproc/pool.hpp mproc/shared_memory.hpp   also these headers, one TU each
# CPU time rather than wall time, so that other work on the machine counts less; still, run it on
# a quiet machine. INSTRUCTIONS=1 also counts the compiler's instructions (valgrind's cachegrind, one
# run each, about 20 s per file): the same on every run and under any load, the figure to compare
# two versions of a header by.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
RUNS=${RUNS:-5}
FLAGS=${FLAGS:--O2 -std=c++20}
command -v /usr/bin/time >/dev/null || { echo "compile_cost: needs /usr/bin/time (Debian: apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# translation_unit NAME INCLUDE... -> writes $work/NAME.cpp: the includes and an empty main.
translation_unit() {
  local src=$work/$1.cpp; shift
  : >"$src"
  for h in "$@"; do echo "#include <$h>" >>"$src"; done
  echo 'int main() {}' >>"$src"
}

# measure NAME INCLUDE... -> "seconds kilobytes", the medians over $RUNS compilations.
measure() {
  local name=$1 src=$work/$1.cpp
  translation_unit "$@"
  local times=() mems=()
  for _ in $(seq "$RUNS"); do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$CXX" $FLAGS -Iinclude -c "$src" -o "$work/$name.o" 2>"$work/time.txt"
    times+=("$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$work/time.txt")")
    mems+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")")
  done
  local mid=$(((RUNS + 1) / 2))
  echo "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "${mid}p") $(printf '%s\n' "${mems[@]}" | sort -g | sed -n "${mid}p")"
}

read -r base_s base_kb <<<"$(measure baseline thread future)"
printf '%s %s, %s runs each (medians)\n' "$CXX" "$FLAGS" "$RUNS"
printf '%-28s %8s %8s %10s %8s\n' "translation unit includes" "CPU s" "ratio" "peak MB" "ratio"
printf '%-28s %8.2f %8s %10.0f %8s\n' "<thread> + <future>" "$base_s" "1.00" "$((base_kb / 1024))" "1.00"
for h in mproc/mproc.hpp "$@"; do
  read -r s kb <<<"$(measure "$(basename "$h" .hpp)" "$h")"
  printf '%-28s %8.2f %8.2f %10.0f %8.2f\n' "<$h>" "$s" "$(awk "BEGIN {print $s / $base_s}")" "$((kb / 1024))" \
    "$(awk "BEGIN {print $kb / $base_kb}")"
done

# instructions NAME INCLUDE... -> millions of instructions executed by the compiler proper (cc1plus).
instructions() {
  local name=$1 src=$work/$1.cpp
  translation_unit "$@"
  # shellcheck disable=SC2086
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null --trace-children=yes \
    "$CXX" $FLAGS -Iinclude -c "$src" -o "$work/$name.o" 2>&1 |
    awk '/I *refs/ {gsub(",", "", $4); if ($4 + 0 > max + 0) max = $4 + 0} END {printf "%.0f", max / 1e6}'
}

if [ "${INSTRUCTIONS:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "compile_cost: INSTRUCTIONS=1 needs valgrind (Debian: apt-get install valgrind)" >&2; exit 1; }
  base_i=$(instructions baseline thread future)
  printf '\n%-28s %14s %8s\n' "translation unit includes" "instructions" "ratio"
  printf '%-28s %13sM %8s\n' "<thread> + <future>" "$base_i" "1.00"
  for h in mproc/mproc.hpp "$@"; do
    i=$(instructions "$(basename "$h" .hpp)" "$h")
    printf '%-28s %13sM %8.2f\n' "<$h>" "$i" "$(awk "BEGIN {print $i / $base_i}")"
  done
fi
