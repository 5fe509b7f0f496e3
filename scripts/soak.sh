#!/usr/bin/env bash
# scripts/soak.sh: the long soak run, outside CI.
#
# Usage: scripts/soak.sh [--no-install] [--help] [SECONDS [WORKERS]]   (default 600 4)
#
# Installs the Debian packages it needs when one is missing (scripts/install_packages.sh),
# builds cmr_soak with AddressSanitizer + UBSan (system malloc, which they watch) in
# build/soak-asan and runs it: workers churn a queue, a stack and a set while every fault
# the runtime knows is injected at random (failed process creation, crashed, hung and
# silent scanners, a thread that blocks the handshake, heap_limit pressure). It fails on
# any lost or duplicated element, any use-after-free or other sanitizer report, or a live
# heap past its limit; it also samples the process's RSS every second and fails if it
# exceeds SOAK_MAX_RSS_MIB (default 2048).
#
#   --no-install  never run apt-get; a missing tool or library fails the build, which names it
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
install=1
positional=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --no-install) install=0 ;;
    -*) echo "soak.sh: unknown option '$arg' (--help)" >&2; exit 2 ;;
    *) positional+=("$arg") ;;
  esac
done
seconds=${positional[0]:-600}
workers=${positional[1]:-4}
for n in "$seconds" "$workers"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: SECONDS and WORKERS must be positive integers, not '$n'" >&2; exit 2; }
done
((${#positional[@]} <= 2)) || { echo "soak.sh: at most SECONDS and WORKERS (--help)" >&2; exit 2; }

if ((install)); then
  scripts/install_packages.sh cmake g++ make libgtest-dev libgmock-dev
fi
cmake -S . -B build/soak-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMR_SANITIZE=address,undefined \
  -DCMR_ALLOCATOR=system -DCMR_BUILD_BENCHMARKS=OFF -DCMR_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/soak-asan --target cmr_soak -j"$(nproc)"

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
build/soak-asan/tests/soak/cmr_soak "$seconds" "$workers" &
pid=$!
max_rss=0
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null || echo 0)
  ((rss > max_rss)) && max_rss=$rss
  sleep 1
done
status=0
wait "$pid" || status=$?
echo "soak.sh: exit status $status, peak RSS ${max_rss} MiB"
if ((max_rss > ${SOAK_MAX_RSS_MIB:-2048})); then
  echo "soak.sh: FAILED: RSS passed ${SOAK_MAX_RSS_MIB:-2048} MiB" >&2
  exit 1
fi
exit "$status"
