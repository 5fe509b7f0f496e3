#!/usr/bin/env bash
# scripts/repeat.sh: the whole test suite many times, under extra CPU load, to find flakes.
#
# Usage: scripts/repeat.sh [--help] [RUNS] [BUILD_DIR]   (default 20 runs of build/release)
#
# A test that depends on timing must force the interleaving it claims to test; one that
# only hopes for it fails now and then on a loaded machine. This runs `ctest -j` RUNS
# times while busy loops keep every core occupied (one per CPU, at normal priority, so the
# tests compete for the CPU as on a shared CI machine), and reports every test that failed
# even once, with how often. Builds and installs nothing: configure and build BUILD_DIR
# first (the README's test command does).
# Environment: LOAD=0 runs without the busy loops; JOBS sets ctest -j (default: CPUs).
# Output: out/repeat-tests/run-N.log per run, summary.txt; exit 1 if any test failed.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) echo "repeat.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-20}
build=${2:-$root/build/release}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "repeat.sh: RUNS must be a positive integer, not '$runs'" >&2; exit 2; }
[[ -f $build/CTestTestfile.cmake ]] || { echo "repeat.sh: no test suite in $build (build it first: scripts/test.sh)" >&2; exit 2; }
out=$root/out/repeat-tests
rm -rf "$out"
mkdir -p "$out"

loaders=()
stop_load() { for pid in "${loaders[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_load EXIT
if [[ ${LOAD:-1} != 0 ]]; then
  for ((i = 0; i < $(nproc); ++i)); do
    bash -c 'while :; do :; done' &
    loaders+=($!)
  done
fi

passed=0
for ((r = 1; r <= runs; ++r)); do
  log=$out/run-$r.log
  if (cd "$build" && ctest -j "${JOBS:-$(nproc)}" --output-on-failure) > "$log" 2>&1; then
    passed=$((passed + 1))
    printf 'repeat.sh: run %d of %d passed\n' "$r" "$runs" >&2
  else
    printf 'repeat.sh: run %d of %d FAILED: %s\n' "$r" "$runs" \
      "$(grep -oE '[0-9]+ - [A-Za-z0-9_]+ \((Failed|Timeout|SEGFAULT|Subprocess aborted|Child aborted)\)' "$log" | tr '\n' ' ')" >&2
  fi
done

{
  echo "$passed of $runs runs passed (load: ${LOAD:-1}, $(nproc) CPUs, $build)"
  grep -hoE '[0-9]+ - [A-Za-z0-9_]+ \((Failed|Timeout|SEGFAULT|Subprocess aborted|Child aborted)\)' "$out"/run-*.log |
    sed -E 's/^[0-9]+ - //' | sort | uniq -c | sort -rn | sed 's/^/  failed: /' || true
} | tee "$out/summary.txt"
[[ $passed == "$runs" ]]
