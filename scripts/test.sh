#!/usr/bin/env bash
# Builds and runs every test: the whole suite (tests, examples, benchmark smoke run, packaging) in
# the default configuration, built with -Wall -Wextra -Wpedantic -Wconversion -Wshadow
# -Wsign-conversion -Werror at g++ -O2; then builds (without running), with the same flags, every
# test and example, the tool and each public header alone under g++ -O3 and clang 16; then runs the suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer, then the libFuzzer targets
# for a bounded time each (MPROC_FUZZ_SECONDS, 30).
#   scripts/test.sh          everything (what CI runs)
#   scripts/test.sh --quick  the default configuration only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

scripts/deps.sh g++ cmake libboost1.81-dev catch2 libbenchmark-dev libopenmpi-dev openmpi-bin pkgconf
# clang-16: the -Werror stage's clang (Debian 12's default clang 14, and clang 15, cannot compile
# Pool::imap against libstdc++ 12's <ranges>).
[ $quick = 1 ] || scripts/deps.sh clang libclang-rt-14-dev clang-16

# Each stage's banner says how long the run has taken so far (SECONDS: bash's clock since start), so
# a CI log shows where the time goes.
stage() { printf '\n===== %s (at %d s) =====\n' "$*" "$SECONDS"; }

# Names the named-memory tests create are "mproc.shmtest-<pid>-...". A run that was killed midway can
# leave some; they are removed before each run so that the suite's own check ("nothing left by an
# ended test process") judges this run only.
clean_test_names() { rm -f /dev/shm/mproc.shmtest-* 2>/dev/null || true; }

run_preset() {
  stage "$1: configure and build"
  cmake --preset "$1" >/dev/null
  cmake --build "build/$1" -j "$jobs"
  stage "$1: test"
  clean_test_names
  ctest --test-dir "build/$1" --output-on-failure -j "$jobs"
}

# The default preset builds into build/all.
stage "default: configure and build"
cmake --preset default >/dev/null
cmake --build build/all -j "$jobs"
stage "default: test"
clean_test_names
ctest --test-dir build/all --output-on-failure -j "$jobs"
[ $quick = 1 ] && exit 0

# Warnings as errors: the default stage above already built every test, example and benchmark with
# -Werror at g++ -O2 (mproc's headers come in by -I, so a warning inside them fails the build).
# These stages build only (every test, example, the tool and each header alone); each says how long
# it took (about 3 minutes each on 2 CPUs).
for preset in werror-gcc-o3 werror-clang; do
  stage "$preset: configure and build"
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build "build/$preset" -j "$jobs"
  echo "$preset: built in $((SECONDS - start)) s"
done

# Sanitizers: an error report fails the test that produced it.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
export MPROC_NO_FORK_WARNING=1
run_preset asan
run_preset tsan

# Fuzzers: replay the seed corpus (ctest), then explore for a bounded time each.
run_preset fuzz
seconds=${MPROC_FUZZ_SECONDS:-30}
for target in codec pipe queue; do
  stage "fuzz: $target for ${seconds}s"
  work=build/fuzz/corpus-$target
  mkdir -p "$work" build/fuzz/artifacts
  build/fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix=build/fuzz/artifacts/$target- "$work" tests/fuzz/corpus/$target 2>&1 | tail -n 12
done
stage "all stages passed"
