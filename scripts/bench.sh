#!/usr/bin/env bash
# scripts/bench.sh: the side-by-side comparison, from a clean checkout to tables and plots.
#
#   scripts/bench.sh            # everything, ~15-20 minutes on 2 cores
#
# 1. installs the Debian packages it needs when one is missing (apt-get; sudo if not root);
# 2. for each backing allocator (ALLOCATORS, default "mimalloc jemalloc system"): builds
#    cmr_compare (Release) in build-bench/<allocator>/, runs every implementation on every
#    workload at 1, 2, 4 threads (plus nproc and 2 x nproc when larger), SECONDS_PER_RUN
#    seconds each -> out/<allocator>/results.csv (+ results.md, throughput_<wl>.png);
# 3. the stalled-thread experiment (queue, 2 workers + 1 stalled thread) per allocator
#    -> out/<allocator>/stall.csv, stall_timeline.csv, stall.png;
# 4. out/results.csv: all rows, with an allocator column;
# 5. pause vs resident memory: 0/256/1024/4096 MiB of program memory, 8 threads, snapshot
#    isolation on and off, and with a scanner child forced every cycle; then 64/256/1024 MiB
#    of live tracked objects (the part the child always needs); then 4096 MiB of each kind
#    of private memory (harness/program_memory.hpp), made before and after init, with a
#    child every cycle -> out/pause.csv (columns kind, made), out/pause_vs_rss.png;
# 6. out/results.md: everything above as tables of ratios against cmr.
#
# Environment: SECONDS_PER_RUN (default 1), STALL_SECONDS (default 3), IMPLS (default all),
# THREADS (override the thread list, e.g. 1,2,8), ALLOCATORS, PAUSE_MIB, PAUSE_CYCLES,
# PAUSE_LIVE_MIB, PAUSE_KINDS (default all eleven), PAUSE_KIND_MIB, SKIP_PAUSE=1, BUILD_DIR, OUT_DIR, SKIP_APT=1 (never install), CMAKE_ARGS (extra
# configure flags, e.g. -DCMR_STATIC_RUNTIME=ON).
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

# --- 2-4. per allocator: build, sweep, stalled thread -----------------------------------
# Every implementation runs in the same binary, so the peers use the same allocator as cmr
# (both region allocators replace malloc for the whole process once linked).
if [[ -n ${THREADS:-} ]]; then
  threads=$THREADS
else
  n=$(nproc)
  threads=$(printf '%s\n' 1 2 4 "$n" $((2 * n)) | sort -n | uniq | paste -sd, -)
fi
allocators=${ALLOCATORS:-mimalloc jemalloc system}
mkdir -p "$out"
status=0
combined="$out/results.csv"
: > "$combined"
for allocator in $allocators; do
  dir="$build/$allocator"
  say "building cmr_compare and pause_vs_rss with CMR_ALLOCATOR=$allocator in $dir"
  # shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMR_BUILD_BENCHMARKS=ON \
    -DCMR_BUILD_TESTS=OFF -DCMR_BUILD_EXAMPLES=OFF -DCMR_ALLOCATOR="$allocator" \
    ${CMAKE_ARGS:-} >/dev/null
  cmake --build "$dir" --target cmr_compare pause_vs_rss -j "$(nproc)"
  compare="$dir/benchmarks/cmr_compare"
  [[ -x $compare ]] || { echo "bench.sh: cmr_compare was not built" >&2; exit 1; }
  sub="$out/$allocator"
  mkdir -p "$sub"
  say "[$allocator] sweep: impls=$impls threads=$threads, ${seconds}s per configuration"
  "$compare" --impl "$impls" --workload queue,stack,set,list --mix 90/5/5,50/25/25 \
    --keys 1000,100000 --threads "$threads" --seconds "$seconds" --csv \
    > "$sub/results.csv" || status=$?
  say "[$allocator] stalled-thread run: queue, 2 workers, ${stall_seconds}s"
  "$compare" --impl "$impls" --workload queue --threads 2 --seconds "$stall_seconds" --stall \
    --timeline "$sub/stall_timeline.csv" --csv > "$sub/stall.csv" || status=$?
  awk -f "$root/scripts/bench_report.awk" "$sub/results.csv" "$sub/stall.csv" > "$sub/results.md"
  "$root/scripts/bench_plot.sh" "$sub/results.csv" "$sub/stall_timeline.csv" "$sub"
  # The combined CSV: the driver's columns, then the allocator.
  awk -v a="$allocator" -v first="$([[ -s $combined ]] && echo 0 || echo 1)" '
    FNR == 1 { if (first == 1) print $0 ",allocator"; next } { print $0 "," a }' \
    "$sub/results.csv" >> "$combined"
done

# --- 5. pause against the program's resident memory -------------------------------------
# Default allocator, 8 registered threads, with snapshot isolation on and off, each point
# in its own process.
pause_allocator=${PAUSE_ALLOCATOR:-${allocators%% *}}
pause_bin="$build/$pause_allocator/benchmarks/pause/pause_vs_rss"
if [[ -x $pause_bin && ${SKIP_PAUSE:-0} != 1 ]]; then
  say "pause vs resident memory ($pause_allocator): ${PAUSE_MIB:-0 256 1024 4096} MiB"
  echo "allocator,isolate,isolated,app_mib,threads,cycles,pause_p50_us,pause_p99_us,pause_max_us,handshake_p50_us,rss_mib,live_mib,heap_rss_mib,in_pause,kind,made" \
    > "$out/pause.csv"
  for mib in ${PAUSE_MIB:-0 256 1024 4096}; do
    for isolate in 1 0; do
      "$pause_bin" "$mib" "$isolate" 8 "${PAUSE_CYCLES:-100}" >> "$out/pause.csv" || status=$?
    done
    # The same with a scanner child every cycle (what a live heap too large to mark in the
    # pause gets): the clone is then part of every pause.
    CMR_BENCH_PAUSE_MARK_US=0 "$pause_bin" "$mib" 1 8 "${PAUSE_CYCLES:-100}" >> "$out/pause.csv" || status=$?
  done
  # The tracked heap itself is always copied into the child: its own series.
  for live in ${PAUSE_LIVE_MIB:-64 256 1024}; do
    "$pause_bin" 0 1 8 "${PAUSE_CYCLES:-100}" "$live" >> "$out/pause.csv" || status=$?
  done
  # Every kind of program memory (harness/program_memory.hpp), made before and after init,
  # with a scanner child every cycle: what snapshot isolation keeps out, at what cost.
  for kind in ${PAUSE_KINDS:-plain nohugepage hugepage mlock noreserve populate file split mremap small stacks}; do
    for made in --before ""; do
      CMR_BENCH_PAUSE_MARK_US=0 "$pause_bin" --kind "$kind" $made "${PAUSE_KIND_MIB:-4096}" 1 8 \
        "${PAUSE_CYCLES:-100}" >> "$out/pause.csv" || status=$?
    done
  done
  "$root/scripts/bench_plot.sh" --pause "$out/pause.csv" "$out"
fi

# --- 6. one report -------------------------------------------------------------------------
{
  echo "# cmr side-by-side results"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)."
  echo "Each allocator section: every implementation in one binary on that allocator."
  for allocator in $allocators; do
    echo
    echo "# Allocator: $allocator"
    sed 's/^#/##/' "$out/$allocator/results.md"
  done
  if [[ -s $out/pause.csv ]]; then
    echo
    echo "# Pause against resident memory ($pause_allocator, 8 threads; microseconds)"
    echo
    echo "| app MiB | live tracked MiB | isolation | marked in the pause | p50 | p99 | max | handshake p50 | RSS MiB | tracked heap RSS MiB |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    awk -F, 'NR > 1 { printf "| %s | %s | %s | %s of %s | %s | %s | %s | %s | %s | %s |\n", $4, $12, ($3 == 1 ? "on" : "off"), $14, $6, $7, $8, $9, $10, $11, $13 }' "$out/pause.csv"
  fi
} > "$out/results.md"
ls -1 "$out"/*.csv "$out"/*.md "$out"/*.png "$out"/*/*.png 2>/dev/null >&2 || true
if ((status != 0)); then
  echo "bench.sh: some configurations failed or failed their check (see 'ok' and 'note' in $out/*/*.csv)" >&2
fi
exit "$status"
