#!/usr/bin/env bash
# The test command of the README's quick start, and what CI runs.
#
# Installs what it needs (Debian 12 packages, when missing), then:
#   1. Release build with the default malloc (system); the whole ctest suite;
#   2. the invariant, stress and unit tests again with each other malloc (jemalloc,
#      mimalloc: they replace the program's malloc, beside cmr's own tracked heap);
#   3. AddressSanitizer + UBSan build (system malloc, which the sanitizers replace; the
#      tracked heap poisons its free slots for them); the whole suite;
#   4. the scanner fuzz target for FUZZ_SECONDS (default 60) under libFuzzer + ASan;
#   5. the install/consumer check (find_package(cmr CONFIG) from a separate project).
# Usage: scripts/test.sh [--no-install] [--skip-asan] [--skip-fuzz] [--skip-allocators]
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
asan=1
fuzz=1
allocators=1
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --skip-asan) asan=0 ;;
    --skip-fuzz) fuzz=0 ;;
    --skip-allocators) allocators=0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

packages=(cmake g++ make libgtest-dev libgmock-dev libjemalloc-dev libmimalloc-dev
          clang-14 libclang-rt-14-dev)
if ((install)); then
  scripts/install_packages.sh "${packages[@]}"
fi

jobs=$(nproc)

echo "== Release build and tests (default malloc)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCMR_BUILD_BENCHMARKS=OFF
cmake --build build/release -j"$jobs"
ctest --test-dir build/release --output-on-failure --timeout 600

if ((allocators)); then
  for allocator in jemalloc mimalloc; do
    echo "== Release build with CMR_ALLOCATOR=$allocator: invariant, stress and unit tests"
    cmake -S . -B "build/$allocator" -DCMAKE_BUILD_TYPE=Release -DCMR_BUILD_BENCHMARKS=OFF \
      -DCMR_BUILD_EXAMPLES=OFF -DCMR_ALLOCATOR="$allocator"
    cmake --build "build/$allocator" -j"$jobs"
    ctest --test-dir "build/$allocator" --output-on-failure --timeout 600 -L 'invariant|stress|unit'
  done
fi

if ((asan)); then
  echo "== AddressSanitizer + UBSan build and tests"
  cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMR_SANITIZE=address,undefined \
    -DCMR_ALLOCATOR=system -DCMR_BUILD_BENCHMARKS=OFF -DCMR_BUILD_EXAMPLES=OFF
  cmake --build build/asan -j"$jobs"
  ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build/asan --output-on-failure --timeout 900
fi

if ((fuzz)); then
  echo "== scanner fuzz target, ${FUZZ_SECONDS:-60} s"
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi

if [[ -x scripts/check_package.sh ]]; then
  echo "== install + find_package consumer"
  scripts/check_package.sh
fi
echo "== all tests passed"
