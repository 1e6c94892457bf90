#!/usr/bin/env bash
# Builds mproc's demos and runs each one at its original length (pass --quick to shorten them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh g++ cmake libboost1.81-dev
build=build/demos
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_BENCH=OFF -DMPROC_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc)"
for demo in counter bank_balance sleepers watchdog semaphore lock_order exit_codes \
  producer_consumer queue_colors pipe square_map work_log sum_square factorial; do
  printf '\n===== %s =====\n' "$demo"
  "$build/examples/$demo" "$@"
done
