#!/usr/bin/env bash
# scripts/soak.sh [seconds=600] [workers=4]: the long soak run, outside CI.
#
# Builds cmr_soak with AddressSanitizer + UBSan (system malloc, which they watch) and runs
# it: workers churn a queue, a stack and a set while every fault the runtime knows is
# injected at random (failed process creation, crashed, hung and silent scanners, a thread
# that blocks the handshake, heap_limit pressure). It fails on any lost or duplicated
# element, any use-after-free or other sanitizer report, or a live heap past its limit;
# it also samples the process's RSS every second and fails if it exceeds SOAK_MAX_RSS_MIB
# (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
workers=${2:-4}
scripts/install_packages.sh cmake g++ make libgtest-dev libgmock-dev
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
