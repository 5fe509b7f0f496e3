#!/usr/bin/env bash
# scripts/micro.sh: the Google Benchmark microbenchmarks of benchmarks/micro/, built, run and
# summarised as one table of ns/op and ratios against each group's baseline.
#
# Usage: scripts/micro.sh [--no-install] [--summarize] [--help] [BENCHMARK_ARGS...]
#
#   scripts/micro.sh                          # all three, ~1 minute on 2 cores
#   scripts/micro.sh --benchmark_filter=make  # other arguments go to every binary
#   scripts/micro.sh --summarize              # re-print the table from out/micro_*.json
#
#   --no-install  never run apt-get; without Google Benchmark the targets are not built
#                 and it fails, naming the package
#   --summarize   build and run nothing: the table again from the JSON files in OUT_DIR
#
# 1. installs the Debian packages it needs when one is missing (scripts/install_packages.sh);
# 2. configures and builds protect_bench, make_bench, cycle_bench (Release) in
#    build-bench/system/ with the configure flags of scripts/bench.sh, so that the two
#    share that build;
# 3. runs each with JSON output -> out/micro_protect.json, micro_make.json, micro_cycle.json;
# 4. prints the summary: per benchmark the real and CPU time per op, the ratio to the `base_*`
#    variant of the same group (same name but for the second component), and its counters.
#    The ratio uses CPU time (process CPU for make_bench: the collector thread's freeing
#    included), except for manual-time benchmarks (cycle_bench), whose CPU time is only the
#    calling thread's and means nothing there.
#
# The summary is plain awk (no Python, no jq). Environment: BUILD_DIR, OUT_DIR, MIN_TIME
# (seconds per benchmark, default 0.1; cycle_bench fixes its own iterations), BENCHES (subset,
# e.g. "protect_bench"), JOBS (build parallelism, default nproc), CMAKE_ARGS (extra configure
# flags).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
install=1
summarize=0
bench_args=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --no-install) install=0 ;;
    --summarize) summarize=1 ;;
    *) bench_args+=("$arg") ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench/system}
out=${OUT_DIR:-$root/out}
min_time=${MIN_TIME:-0.1}
benches=${BENCHES:-protect_bench make_bench cycle_bench}

say() { printf '\n== %s\n' "$*" >&2; }

# Reads Google Benchmark JSON files; prints one table. POSIX awk (mawk, gawk, busybox): the
# JSON reporter writes one "key": value per line, which is all this relies on.
summarise() {
  awk '
    function unq(s) { gsub(/^[ \t]*"|"?,?[ \t]*$/, "", s); return s }
    function ns(v, unit) {
      if (unit == "us") return v * 1e3
      if (unit == "ms") return v * 1e6
      if (unit == "s") return v * 1e9
      return v
    }
    function tfmt(v) {
      if (v >= 1e9) return sprintf("%.3gs", v / 1e9)
      if (v >= 1e6) return sprintf("%.3gms", v / 1e6)
      if (v >= 1e3) return sprintf("%.3gus", v / 1e3)
      return sprintf("%.3gns", v)
    }
    function fmt(v) {
      if (v == "") return "-"
      if (v >= 1e9) return sprintf("%.3gG", v / 1e9)
      if (v >= 1e6) return sprintf("%.3gM", v / 1e6)
      if (v >= 1e4) return sprintf("%.3gk", v / 1e3)
      if (v >= 100) return sprintf("%.0f", v)
      if (v >= 10) return sprintf("%.1f", v)
      return sprintf("%.3g", v)
    }
    # group key: the name without its second component (the variant)
    function key(name,    parts, n, i, k) {
      n = split(name, parts, "/")
      k = parts[1]
      for (i = 3; i <= n; i++) k = k "/" parts[i]
      return k
    }
    function variant(name,    parts) { split(name, parts, "/"); return parts[2] }

    FNR == 1 { inb = 0; file = FILENAME; sub(/.*\//, "", file); files[++nfiles] = file }
    !inb && /"load_avg"/ { line = $0; sub(/.*\[/, "", line); sub(/\].*/, "", line); load[file] = line }
    !inb && /"num_cpus"/ { line = $0; sub(/.*: */, "", line); sub(/,.*/, "", line); cpus[file] = line }
    /"benchmarks": *\[/ { inb = 1; next }
    !inb { next }
    /^ *\{/ { cur = ++n; fileof[cur] = file; ncnt[cur] = 0; aftertime = 0; next }
    /^ *\}/ { next }
    {
      line = $0
      k = line; sub(/^[ \t]*"/, "", k); sub(/".*/, "", k)
      v = line; sub(/^[^:]*:[ \t]*/, "", v); v = unq(v)
      if (k == "name") name[cur] = v
      else if (k == "run_type") rtype[cur] = v
      else if (k == "aggregate_name") agg[cur] = v
      else if (k == "real_time") real[cur] = v + 0
      else if (k == "cpu_time") cpu[cur] = v + 0
      else if (k == "time_unit") { unit[cur] = v; aftertime = 1 }
      else if (k == "error_occurred") err[cur] = v
      else if (k == "error_message") errmsg[cur] = v
      else if (aftertime && k != "label" && v ~ /^-?[0-9.eE+-]+$/) {
        cnt[cur] = cnt[cur] sprintf(" %s=%s", k, fmt(v + 0))
      }
    }
    END {
      # With --benchmark_repetitions, summarise the medians only.
      for (i = 1; i <= n; i++) if (agg[i] == "median") medians = 1
      for (i = 1; i <= n; i++) {
        keep[i] = medians ? (agg[i] == "median") : (rtype[i] == "iteration" || rtype[i] == "")
        if (!keep[i]) continue
        manual[i] = (name[i] ~ /manual_time/)
        r = ns(real[i], unit[i]); c = ns(cpu[i], unit[i])
        rns[i] = r; cns[i] = c
        basis[i] = manual[i] ? r : c
        if (variant(name[i]) ~ /^base_/) base[fileof[i], key(name[i])] = basis[i]
      }
      w = 20
      for (i = 1; i <= n; i++) if (keep[i] && length(name[i]) > w) w = length(name[i])
      last = ""
      for (i = 1; i <= n; i++) {
        if (!keep[i]) continue
        if (fileof[i] != last) {
          last = fileof[i]
          printf "\n%s  (cpus %s, load %s)\n", last, cpus[last], load[last]
          printf "%-" w "s %12s %12s %8s  %s\n", "benchmark", "real/op", "cpu/op", "ratio", "counters"
        }
        if (err[i] == "true") { printf "%-" w "s  ERROR: %s\n", name[i], errmsg[i]; continue }
        b = base[fileof[i], key(name[i])]
        ratio = (b != "" && b > 0) ? sprintf("%.2f", basis[i] / b) : "-"
        printf "%-" w "s %12s %12s %8s %s\n", name[i], tfmt(rns[i]), manual[i] ? "-" : tfmt(cns[i]), ratio, cnt[i]
      }
      print ""
      print "ratio: against the base_* variant of the same group, on CPU time (wall time for manual_time rows)."
    }
  ' "$@"
}

declare -A file_of=([protect_bench]=micro_protect.json [make_bench]=micro_make.json
                    [cycle_bench]=micro_cycle.json)

if ((!summarize)); then
  if ((install)); then
    "$root/scripts/install_packages.sh" cmake g++ make libbenchmark-dev
  fi
  say "building $benches in $build"
  # The configure line of scripts/bench.sh: keep them identical so the build is shared.
  # shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMR_BUILD_BENCHMARKS=ON \
    -DCMR_BUILD_TESTS=OFF -DCMR_BUILD_EXAMPLES=OFF -DCMR_ALLOCATOR=system ${CMAKE_ARGS:-} >/dev/null
  # shellcheck disable=SC2086  # benches is a list of targets
  cmake --build "$build" --target $benches -j "${JOBS:-$(nproc)}" ||
    { echo "micro.sh: FAILED: building $benches in $build (without Google Benchmark," \
           "Debian libbenchmark-dev, the targets do not exist)" >&2; exit 1; }

  mkdir -p "$out"
  status=0
  for b in $benches; do
    exe=$(find "$build" -type f -name "$b" -perm -u+x | head -n1)
    if [[ ! -x $exe ]]; then
      echo "micro.sh: $b was not built (is Google Benchmark installed? libbenchmark-dev)" >&2
      exit 1
    fi
    say "running $b -> $out/${file_of[$b]}"
    # stdout repeats the JSON of the file; the summary below is the readable view.
    "$exe" --benchmark_min_time="$min_time" --benchmark_format=json \
      --benchmark_out="$out/${file_of[$b]}" --benchmark_out_format=json ${bench_args[@]+"${bench_args[@]}"} >/dev/null ||
      { status=$?; echo "micro.sh: $b exited with status $status" >&2; }
  done
fi

files=()
for b in $benches; do
  [[ -s $out/${file_of[$b]} ]] && files+=("$out/${file_of[$b]}")
done
((${#files[@]})) || { echo "micro.sh: no results in $out" >&2; exit 1; }
summarise "${files[@]}"
exit "${status:-0}"
