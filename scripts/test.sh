#!/usr/bin/env bash
# scripts/test.sh: the test command of the README's quick start, and what CI runs (.ci/run).
#
# Usage: scripts/test.sh [--no-install] [--skip-allocators] [--skip-asan] [--skip-fuzz]
#                        [--help]
#
# Installs the Debian packages it needs when one is missing (scripts/install_packages.sh),
# then:
#   1. Release build with the default malloc (system); the whole ctest suite;
#   2. the invariant, stress and unit tests again with each other malloc (jemalloc,
#      mimalloc: they replace the program's malloc, beside cmr's own tracked heap);
#   3. AddressSanitizer + UBSan build (system malloc, which the sanitizers replace; the
#      tracked heap poisons its free slots for them); the whole suite;
#   4. the scanner fuzz target for FUZZ_SECONDS (default 60) under libFuzzer + ASan
#      (scripts/fuzz.sh; needs clang-14);
#   5. the install/consumer check, CMake package and pkg-config (scripts/check_package.sh).
#
#   --no-install       never run apt-get; a step whose tool is missing fails and names it
#   --skip-allocators  leave out step 2
#   --skip-asan        leave out step 3
#   --skip-fuzz        leave out step 4 (the way to run the rest without clang)
# Every step that runs must pass; none is skipped without its flag.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
install=1
asan=1
fuzz=1
allocators=1
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --no-install) install=0 ;;
    --skip-asan) asan=0 ;;
    --skip-fuzz) fuzz=0 ;;
    --skip-allocators) allocators=0 ;;
    *) echo "test.sh: unknown option '$arg' (--help)" >&2; exit 2 ;;
  esac
done

# Only what the chosen steps use; pkg-config is for check_package.sh's pkg-config consumer.
packages=(cmake g++ make libgtest-dev libgmock-dev pkg-config)
((allocators)) && packages+=(libjemalloc-dev libmimalloc-dev)
((fuzz)) && packages+=(clang-14 libclang-rt-14-dev)
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
  # Packages were handled above (or refused with --no-install): fuzz.sh only checks them.
  scripts/fuzz.sh --no-install "${FUZZ_SECONDS:-60}"
fi

echo "== install + find_package and pkg-config consumers"
scripts/check_package.sh
echo "== all tests passed"
