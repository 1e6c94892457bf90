#!/usr/bin/env bash
# Builds everything (library checks, tests, examples, benchmarks) and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh g++ cmake libboost1.81-dev catch2 libbenchmark-dev
build=build/all
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=ON -DMPROC_BUILD_BENCH=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
