#!/usr/bin/env bash
# Fuzzes the scanner's mark phase for a bounded time (tests/fuzz/scanner_fuzz.cpp).
#
# Installs what it needs (Debian 12 packages, when missing), builds the libFuzzer target
# with clang-14 in build/fuzz, runs it for the given number of seconds, and fails on any
# crash, sanitizer report or mismatch with the reference marking. The corpus is kept in
# build/fuzz/corpus between runs; a failing input is written to build/fuzz/artifacts/ and
# can be replayed with: build/fuzz/tests/fuzz/scanner_fuzz <file>
# Usage: scripts/fuzz.sh [seconds]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: $0 [seconds]" >&2
  exit 2
fi

# The tests/ directory (where the fuzz target lives) needs GoogleTest to configure.
scripts/install_packages.sh clang-14 libclang-rt-14-dev cmake make libgtest-dev libgmock-dev

echo "== building scanner_fuzz (clang-14, ASan + UBSan + libFuzzer)"
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMR_ALLOCATOR=system \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
  -DCMR_BUILD_TESTS=ON -DCMR_BUILD_FUZZ=ON -DCMR_BUILD_BENCHMARKS=OFF -DCMR_BUILD_EXAMPLES=OFF
cmake --build build/fuzz --target scanner_fuzz -j"$(nproc)"

echo "== fuzzing for ${seconds}s"
mkdir -p build/fuzz/corpus build/fuzz/artifacts
# -timeout: one input takes well under a millisecond; a stuck one is a hang (a loop over a
# broken log chain, say), reported as a failure.
build/fuzz/tests/fuzz/scanner_fuzz -max_total_time="$seconds" -timeout=20 \
  -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ build/fuzz/corpus
echo "== no failure in ${seconds}s"
