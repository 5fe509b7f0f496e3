#!/usr/bin/env bash
# scripts/fuzz.sh: fuzzes the scanner's mark phase for a bounded time
# (tests/fuzz/scanner_fuzz.cpp).
#
# Usage: scripts/fuzz.sh [--no-install] [--help] [SECONDS]   (default 60)
#
# Installs the Debian packages it needs when one is missing (scripts/install_packages.sh),
# builds the libFuzzer target with clang-14 in build/fuzz, runs it for SECONDS, and fails
# on any crash, sanitizer report or mismatch with the reference marking. The corpus is
# kept in build/fuzz/corpus between runs; a failing input is written to
# build/fuzz/artifacts/ and can be replayed with: build/fuzz/tests/fuzz/scanner_fuzz <file>
#
#   --no-install  never run apt-get; without clang-14 and its libFuzzer runtime it fails
#                 and says so (scripts/test.sh --skip-fuzz runs the other tests without it)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
install=1
seconds=60
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --no-install) install=0 ;;
    -*) echo "fuzz.sh: unknown option '$arg' (--help)" >&2; exit 2 ;;
    *) seconds=$arg ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "fuzz.sh: SECONDS must be a positive integer, not '$seconds' (--help)" >&2
  exit 2
fi

# The tests/ directory (where the fuzz target lives) needs GoogleTest to configure.
if ((install)); then
  scripts/install_packages.sh clang-14 libclang-rt-14-dev cmake make libgtest-dev libgmock-dev
fi
# A missing compiler or fuzzer runtime would otherwise surface as a configure or link error
# deep in the build; name the package instead.
skip_hint="install it, or leave fuzzing out with scripts/test.sh --skip-fuzz"
command -v clang++-14 >/dev/null ||
  { echo "fuzz.sh: FAILED: clang++-14 not found (Debian package clang-14); $skip_hint" >&2; exit 1; }
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  > "$probe/probe.cpp"
clang++-14 -fsanitize=fuzzer,address "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/err" ||
  { cat "$probe/err" >&2
    echo "fuzz.sh: FAILED: clang++-14 cannot link a libFuzzer target (Debian package libclang-rt-14-dev); $skip_hint" >&2
    exit 1; }

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
