#!/usr/bin/env bash
# scripts/bench.sh: the side-by-side comparison, from a clean checkout to tables and plots.
#
#   scripts/bench.sh            # everything, ~5-10 minutes on 2 cores
#
# 1. installs the Debian packages it needs when one is missing (apt-get; sudo if not root);
# 2. configures and builds cmr_compare (Release) in build-bench/;
# 3. runs every implementation on every workload at 1, 2, 4 threads (plus nproc and
#    2 x nproc when larger), SECONDS_PER_RUN seconds each -> out/results.csv;
# 4. runs the stalled-thread experiment (queue, 2 workers + 1 stalled thread)
#    -> out/stall.csv, out/stall_timeline.csv;
# 5. writes out/results.md (ratios against cmr) and out/throughput_<workload>.png,
#    out/stall.png.
#
# Environment: SECONDS_PER_RUN (default 1), STALL_SECONDS (default 3), IMPLS (default all),
# THREADS (override the thread list, e.g. 1,2,8), BUILD_DIR, OUT_DIR, SKIP_APT=1 (never
# install), CMAKE_ARGS (extra configure flags, e.g. -DCMR_STATIC_RUNTIME=ON).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
out=${OUT_DIR:-$root/out}
seconds=${SECONDS_PER_RUN:-1}
stall_seconds=${STALL_SECONDS:-3}
impls=${IMPLS:-all}

say() { printf '\n== %s\n' "$*" >&2; }

# --- 1. dependencies -----------------------------------------------------------------
packages=(cmake g++ libcds-dev liburcu-dev libboost-dev libbenchmark-dev gnuplot-nox
          libjemalloc-dev libmimalloc-dev libgtest-dev)
if [[ ${SKIP_APT:-0} != 1 ]] && command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
  fi
fi

# --- 2. build --------------------------------------------------------------------------
say "building cmr_compare in $build"
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMR_BUILD_BENCHMARKS=ON \
  -DCMR_BUILD_TESTS=OFF -DCMR_BUILD_EXAMPLES=OFF ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" --target cmr_compare -j "$(nproc)"
compare=$(find "$build" -type f -name cmr_compare -perm -u+x | head -n1)
[[ -x $compare ]] || { echo "bench.sh: cmr_compare was not built" >&2; exit 1; }
"$compare" --list >&2

# --- 3. the sweep ----------------------------------------------------------------------
if [[ -n ${THREADS:-} ]]; then
  threads=$THREADS
else
  n=$(nproc)
  threads=$(printf '%s\n' 1 2 4 "$n" $((2 * n)) | sort -n | uniq | paste -sd, -)
fi
mkdir -p "$out"
status=0
say "sweep: impls=$impls threads=$threads, ${seconds}s per configuration"
"$compare" --impl "$impls" --workload queue,stack,set,list --mix 90/5/5,50/25/25 \
  --keys 1000,100000 --threads "$threads" --seconds "$seconds" --csv \
  > "$out/results.csv" || status=$?

# --- 4. stalled thread -----------------------------------------------------------------
say "stalled-thread run: queue, 2 workers, ${stall_seconds}s"
"$compare" --impl "$impls" --workload queue --threads 2 --seconds "$stall_seconds" --stall \
  --timeline "$out/stall_timeline.csv" --csv > "$out/stall.csv" || status=$?

# --- 5. report and plots ---------------------------------------------------------------
say "report and plots in $out"
awk -f "$root/scripts/bench_report.awk" "$out/results.csv" "$out/stall.csv" > "$out/results.md"
"$root/scripts/bench_plot.sh" "$out/results.csv" "$out/stall_timeline.csv" "$out"
ls -1 "$out"/*.csv "$out"/*.md "$out"/*.png 2>/dev/null >&2 || true
if ((status != 0)); then
  echo "bench.sh: some configurations failed or failed their check (see 'ok' and 'note' in $out/*.csv)" >&2
fi
exit "$status"
