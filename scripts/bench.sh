#!/usr/bin/env bash
# scripts/bench.sh: the side-by-side comparison, from a clean checkout to tables and plots.
#
# Usage: scripts/bench.sh [--quick] [--no-install] [--skip-ordered] [--skip-pause]
#                         [--skip-plots] [--help]
#
#   scripts/bench.sh           # the full run, ~25-30 minutes on 2 cores -> out/
#   scripts/bench.sh --quick   # a first look in a few minutes -> out/quick/
#
#   --quick       the default allocator (system) only; the four workloads (queue, stack,
#                 set, list) at 1 and 2 threads, 0.25 s per configuration; a 1 s
#                 stalled-thread run; the pause series at 0 and 256 MiB of program memory
#                 and 64 MiB of live tracked objects, 30 cycles each, without the memory
#                 kinds. Written to out/quick/, so a full run's results stay.
#   --no-install  never run apt-get; a missing library or tool fails the run and is named
#   --skip-ordered  leave out step 4b (the ordered structures; --quick leaves it out)
#   --skip-pause  leave out step 5 (the pause series)
#   --skip-plots  no PNG plots; without this flag gnuplot is required
#
# 1. installs the Debian packages it needs when one is missing (scripts/install_packages.sh);
# 2. for each backing allocator (ALLOCATORS, default "mimalloc jemalloc system"): builds
#    cmr_compare (Release) in build-bench/<allocator>/, checks that every peer library was
#    found, runs every implementation on every workload at 1, 2, 4 threads (plus nproc and
#    2 x nproc when larger), SECONDS_PER_RUN seconds each -> out/<allocator>/results.csv
#    (+ results.md, throughput_<wl>.png);
# 3. the stalled-thread experiment (queue, 2 workers + 1 stalled thread) per allocator
#    -> out/<allocator>/stall.csv, stall_timeline.csv, stall.png;
# 4. out/results.csv: all rows, with an allocator column;
# 4b. the ordered structures on the first allocator (the default, system, unless ALLOCATORS
#    says otherwise): Harris's list at 10^3 keys, the skip list and the Natarajan-Mittal
#    tree at 10^6 keys (ORDERED_KEYS), mixes 90/5/5 and 50/25/25, and range scans of 100
#    keys (80/10/10/s100) on the skip list, ORDERED_SECONDS (default 2) each
#    -> out/ordered/results.csv, results.md;
# 5. pause vs resident memory: 0/256/1024/4096 MiB of program memory, 8 threads, snapshot
#    isolation on and off, and with a scanner child forced every cycle; then 64/256/1024 MiB
#    of live tracked objects (the part the child always needs); then 4096 MiB of each kind
#    of private memory (harness/program_memory.hpp), made before and after init, with a
#    child every cycle -> out/pause.csv (columns kind, made), out/pause_vs_rss.png;
# 6. out/results.md: everything above as tables of ratios against cmr.
#
# Environment (each overrides --quick's choice too): SECONDS_PER_RUN (default 1),
# STALL_SECONDS (3), IMPLS (all), THREADS (the thread list, e.g. 1,2,8), ALLOCATORS,
# PAUSE_ALLOCATOR (the first of ALLOCATORS), PAUSE_MIB, PAUSE_CYCLES, PAUSE_LIVE_MIB,
# PAUSE_KINDS (all eleven), PAUSE_KIND_MIB, ORDERED_SECONDS, ORDERED_KEYS, BUILD_DIR, OUT_DIR, CMAKE_ARGS (extra configure
# flags, e.g. -DCMR_STATIC_RUNTIME=ON).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
quick=0
install=1
pause=1
plots=1
ordered=1
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --quick) quick=1 ;;
    --no-install) install=0 ;;
    --skip-ordered) ordered=0 ;;
    --skip-pause) pause=0 ;;
    --skip-plots) plots=0 ;;
    *) echo "bench.sh: unknown option '$arg' (--help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "bench.sh: FAILED: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
impls=${IMPLS:-all}
n=$(nproc)
if ((quick)); then
  ordered=0
  out=${OUT_DIR:-$root/out/quick}
  seconds=${SECONDS_PER_RUN:-0.25}
  stall_seconds=${STALL_SECONDS:-1}
  threads=${THREADS:-1,2}
  allocators=${ALLOCATORS:-system}
  pause_mib=${PAUSE_MIB:-0 256}
  pause_live_mib=${PAUSE_LIVE_MIB:-64}
  pause_kinds=${PAUSE_KINDS-}
  pause_cycles=${PAUSE_CYCLES:-30}
else
  out=${OUT_DIR:-$root/out}
  seconds=${SECONDS_PER_RUN:-1}
  stall_seconds=${STALL_SECONDS:-3}
  threads=${THREADS:-$(printf '%s\n' 1 2 4 "$n" $((2 * n)) | sort -n | uniq | paste -sd, -)}
  allocators=${ALLOCATORS:-mimalloc jemalloc system}
  pause_mib=${PAUSE_MIB:-0 256 1024 4096}
  pause_live_mib=${PAUSE_LIVE_MIB:-64 256 1024}
  pause_kinds=${PAUSE_KINDS:-plain nohugepage hugepage mlock noreserve populate file split mremap small stacks}
  pause_cycles=${PAUSE_CYCLES:-100}
fi
pause_allocator=${PAUSE_ALLOCATOR:-${allocators%% *}}

# --- 1. dependencies -----------------------------------------------------------------
# The peers' libraries are optional to CMake (a missing one is left out of cmr_compare),
# so they are installed here and their presence is checked after each build.
packages=(cmake g++ make libcds-dev liburcu-dev libboost-dev)
((plots)) && packages+=(gnuplot-nox)
[[ " $allocators " == *" jemalloc "* ]] && packages+=(libjemalloc-dev)
[[ " $allocators " == *" mimalloc "* ]] && packages+=(libmimalloc-dev)
if ((install)); then
  "$root/scripts/install_packages.sh" "${packages[@]}"
fi
# Checked before the long part: a plot step that fails at the end wastes the run.
if ((plots)) && ! command -v gnuplot >/dev/null; then
  fail "gnuplot not found (Debian: gnuplot-nox); install it, or pass --skip-plots"
fi
if ((pause)) && [[ " $allocators " != *" $pause_allocator "* ]]; then
  fail "PAUSE_ALLOCATOR=$pause_allocator is not one of ALLOCATORS ($allocators), so it is not built"
fi

# --- 2-4. per allocator: build, sweep, stalled thread -----------------------------------
# Every implementation runs in the same binary, so the peers use the same allocator as cmr
# (both region allocators replace malloc for the whole process once linked).
# impl name -> the Debian package whose library provides it.
declare -A peer_package=([cds_hp]=libcds-dev [cds_dhp]=libcds-dev [urcu]=liburcu-dev
                         [boost_lf]=libboost-dev)
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
  cmake --build "$dir" --target cmr_compare pause_vs_rss -j "$n"
  compare="$dir/benchmarks/cmr_compare"
  [[ -x $compare ]] || fail "cmr_compare was not built"
  if [[ $impls == all ]]; then
    # 'all' means whatever this build has; a peer whose library was not found would simply
    # be absent from every table.
    built=" $("$compare" --list | awk 'NR > 1 && !/^\(/ { printf "%s ", $1 }')"
    for peer in cmr "${!peer_package[@]}"; do
      [[ $built == *" $peer "* ]] && continue
      [[ $peer == cmr ]] && fail "cmr_compare [$allocator] was built without cmr: $("$compare" --list | grep '^(cmr' || true)"
      fail "cmr_compare [$allocator] was built without $peer (Debian: ${peer_package[$peer]});" \
           "install it, or name the implementations with IMPLS"
    done
  fi
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
  if ((plots)); then
    "$root/scripts/bench_plot.sh" "$sub/results.csv" "$sub/stall_timeline.csv" "$sub"
  fi
  # The combined CSV: the driver's columns, then the allocator.
  awk -v a="$allocator" -v first="$([[ -s $combined ]] && echo 0 || echo 1)" '
    FNR == 1 { if (first == 1) print $0 ",allocator"; next } { print $0 "," a }' \
    "$sub/results.csv" >> "$combined"
done

# --- 4b. the ordered structures, on the first allocator -----------------------------------
if ((ordered)); then
  first=${allocators%% *}
  compare="$build/$first/benchmarks/cmr_compare"
  sub="$out/ordered"
  mkdir -p "$sub"
  o_seconds=${ORDERED_SECONDS:-2}
  say "[$first] ordered structures: threads=$threads, ${o_seconds}s per configuration"
  "$compare" --impl "$impls" --workload harris --mix 90/5/5,50/25/25 --keys 1000 \
    --threads "$threads" --seconds "$o_seconds" --csv > "$sub/results.csv" || status=$?
  "$compare" --impl "$impls" --workload skiplist,tree --mix 90/5/5,50/25/25,80/10/10/s100 \
    --keys "${ORDERED_KEYS:-1000000}" --threads "$threads" --seconds "$o_seconds" --csv \
    --no-header >> "$sub/results.csv" || status=$?
  awk -f "$root/scripts/bench_report.awk" "$sub/results.csv" > "$sub/results.md"
fi

# --- 5. pause against the program's resident memory -------------------------------------
# One allocator, 8 registered threads, with snapshot isolation on and off, each point in its
# own process. pause_vs_rss prints rows without a header; the header below names its
# columns (benchmarks/pause/pause_vs_rss.cpp), and every reader looks columns up by name.
pause_csv="$out/pause.csv"
rm -f "$pause_csv" "$out/pause_vs_rss.png"
if ((pause)); then
  pause_bin="$build/$pause_allocator/benchmarks/pause/pause_vs_rss"
  [[ -x $pause_bin ]] || fail "pause_vs_rss was not built in $build/$pause_allocator"
  say "pause vs resident memory ($pause_allocator): $pause_mib MiB, $pause_cycles cycles each"
  echo "allocator,isolate,isolated,app_mib,threads,cycles,pause_p50_us,pause_p99_us,pause_max_us,handshake_p50_us,rss_mib,live_mib,heap_rss_mib,in_pause,kind,made" \
    > "$pause_csv"
  for mib in $pause_mib; do
    for isolate in 1 0; do
      "$pause_bin" "$mib" "$isolate" 8 "$pause_cycles" >> "$pause_csv" || status=$?
    done
    # The same with a scanner child every cycle (what a live heap too large to mark in the
    # pause gets): the clone is then part of every pause.
    CMR_BENCH_PAUSE_MARK_US=0 "$pause_bin" "$mib" 1 8 "$pause_cycles" >> "$pause_csv" || status=$?
  done
  # The tracked heap itself is always copied into the child: its own series.
  for live in $pause_live_mib; do
    "$pause_bin" 0 1 8 "$pause_cycles" "$live" >> "$pause_csv" || status=$?
  done
  # Every kind of program memory (harness/program_memory.hpp), made before and after init,
  # with a scanner child every cycle: what snapshot isolation keeps out, at what cost.
  for kind in $pause_kinds; do
    for made in --before ""; do
      # shellcheck disable=SC2086  # an empty $made is no argument
      CMR_BENCH_PAUSE_MARK_US=0 "$pause_bin" --kind "$kind" $made "${PAUSE_KIND_MIB:-4096}" 1 8 \
        "$pause_cycles" >> "$pause_csv" || status=$?
    done
  done
  if ((plots)); then
    "$root/scripts/bench_plot.sh" --pause "$pause_csv" "$out"
  fi
fi

# --- 6. one report -------------------------------------------------------------------------
{
  echo "# cmr side-by-side results"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)."
  echo "Each allocator section: every implementation in one binary on that allocator."
  ((quick)) && echo "A quick run (scripts/bench.sh --quick): ${seconds}s per configuration, threads $threads."
  for allocator in $allocators; do
    echo
    echo "# Allocator: $allocator"
    sed 's/^#/##/' "$out/$allocator/results.md"
  done
  if [[ -s $out/ordered/results.md ]]; then
    echo
    echo "# Ordered structures (${allocators%% *})"
    sed 's/^#/##/' "$out/ordered/results.md"
  fi
  if [[ -s $pause_csv ]]; then
    echo
    echo "# Pause against resident memory ($pause_allocator, 8 threads; microseconds)"
    echo
    echo "| program memory | app MiB | live tracked MiB | isolation | marked in the pause | p50 | p99 | max | handshake p50 | RSS MiB | tracked heap RSS MiB |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    awk -F, '
      NR == 1 {
        for (i = 1; i <= NF; i++) col[$i] = i
        n = split("app_mib live_mib isolated in_pause cycles pause_p50_us pause_p99_us pause_max_us handshake_p50_us rss_mib heap_rss_mib kind made", need, " ")
        for (i = 1; i <= n; i++) if (!(need[i] in col)) { print "bench.sh: no column " need[i] " in " FILENAME > "/dev/stderr"; exit 1 }
        next
      }
      function v(name) { return $col[name] }
      {
        printf "| %s, made %s init | %s | %s | %s | %s of %s | %s | %s | %s | %s | %s | %s |\n",
          v("kind"), v("made"), v("app_mib"), v("live_mib"), (v("isolated") == 1 ? "on" : "off"),
          v("in_pause"), v("cycles"), v("pause_p50_us"), v("pause_p99_us"), v("pause_max_us"),
          v("handshake_p50_us"), v("rss_mib"), v("heap_rss_mib")
      }' "$pause_csv"
  fi
} > "$out/results.md"
ls -1 "$out"/*.csv "$out"/*.md "$out"/*.png "$out"/*/*.png 2>/dev/null >&2 || true
if ((status != 0)); then
  echo "bench.sh: some configurations failed or failed their check (see 'ok' and 'note' in $out/*/*.csv)" >&2
fi
exit "$status"
