#!/usr/bin/env bash
# scripts/bench_repeat.sh: the side-by-side rows again, several rounds, as medians.
#
# Usage: scripts/bench_repeat.sh [--help] [ROUNDS]   # default 5 rounds
#        scripts/bench_repeat.sh --summarize         # the table again from an existing rounds.csv
#
# On a small shared machine one run of a multi-threaded row can land in a slow spell
# (the same binary gives 52 or 85 Mops/s run to run). Each round runs every chosen
# configuration once, each in its own process, so the implementations alternate within a
# round and a slow spell hits all of them; the report takes the median over rounds and
# gives cmr's ratio against the best reclaiming peer of the same row's medians.
#
# Environment: COMPARE (the cmr_compare binary; default build-bench/mimalloc/...: run
# scripts/bench.sh or build it first), IMPLS (default cmr,cds_hp,cds_dhp,urcu,boost_lf),
# WORKLOADS (default queue,stack,set,list), MIXES (90/5/5,50/25/25), KEYS (1000,100000),
# THREADS (1,2,4), SECONDS_PER_RUN (1), OUT_DIR (out/repeat).
# Output: rounds.csv (every row with its round), medians.md (the table). Builds and installs
# nothing.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
summarize_only=0
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --summarize) summarize_only=1; set -- 1 ;;
  -*) echo "bench_repeat.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
esac
rounds=${1:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_repeat.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
compare=${COMPARE:-$root/build-bench/mimalloc/benchmarks/cmr_compare}
[[ $summarize_only == 1 || -x $compare ]] || { echo "bench_repeat.sh: no cmr_compare at $compare (run scripts/bench.sh, or set COMPARE)" >&2; exit 2; }
out=${OUT_DIR:-$root/out/repeat}
mkdir -p "$out"

rows="$out/rounds.csv"
if [[ $summarize_only == 1 ]]; then
  [[ -s $rows ]] || { echo "bench_repeat.sh: nothing to summarize in $rows" >&2; exit 2; }
  # A run cut short leaves a partial last round; only whole rounds are counted.
  rounds=$(awk -F, 'NR > 1 { n[$1]++ } END { max = 0; for (r in n) if (n[r] > max) max = n[r];
    whole = 0; for (r in n) if (n[r] == max && r + 0 > whole) whole = r + 0; print whole }' "$rows")
  awk -F, -v keep="$rounds" 'NR == 1 || $1 + 0 <= keep' "$rows" > "$rows.tmp" && mv "$rows.tmp" "$rows"
else
  : > "$rows"
fi
for ((r = 1; r <= rounds && summarize_only == 0; ++r)); do
  printf '== round %d of %d\n' "$r" "$rounds" >&2
  "$compare" --impl "${IMPLS:-cmr,cds_hp,cds_dhp,urcu,boost_lf}" \
    --workload "${WORKLOADS:-queue,stack,set,list}" --mix "${MIXES:-90/5/5,50/25/25}" \
    --keys "${KEYS:-1000,100000}" --threads "${THREADS:-1,2,4}" \
    --seconds "${SECONDS_PER_RUN:-1}" --csv |
    awk -v r="$r" -v first="$([[ -s $rows ]] && echo 0 || echo 1)" '
      FNR == 1 { if (first == 1) print "round," $0; next } { print r "," $0 }' >> "$rows"
done

# Medians per (workload, mix, keys, threads, impl); then one line per row of the table.
awk -F, -v rounds="$rounds" '
  function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; --j) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
  {
    key = $col["workload"] " " $col["mix"] " " $col["keys"] " " $col["threads"]
    impl = $col["impl"]
    if (!(key in seen)) { seen[key] = 1; order[++nkeys] = key }
    if (!(impl in iseen)) { iseen[impl] = 1; impls[++nimpls] = impl }
    mops[key, impl] = mops[key, impl] " " $col["mops"]
    unrec[key, impl] = unrec[key, impl] " " $col["peak_unreclaimed"]
    rss[key, impl] = rss[key, impl] " " $col["peak_rss_kib"]
  }
  END {
    printf "# Medians of %d rounds\n\nThroughput in Mops/s (median, and the spread min-max); cmr against the best reclaiming peer (cds_hp, cds_dhp, urcu) of the row, by medians.\n\n", rounds
    printf "| workload | mix | keys | threads |"
    for (i = 1; i <= nimpls; ++i) printf " %s |", impls[i]
    printf " cmr / best peer |\n|---|---|---|---:|"
    for (i = 1; i <= nimpls; ++i) printf "---:|"
    printf "---:|\n"
    for (k = 1; k <= nkeys; ++k) {
      key = order[k]; split(key, f, " ")
      printf "| %s | %s | %s | %s |", f[1], f[2], f[3], f[4]
      best = 0; bestname = "-"
      for (i = 1; i <= nimpls; ++i) {
        impl = impls[i]
        if (!((key, impl) in mops)) { printf " - |"; continue }
        n = split(mops[key, impl], v, " "); lo = v[1]; hi = v[1]
        for (j = 2; j <= n; ++j) { if (v[j] + 0 < lo + 0) lo = v[j]; if (v[j] + 0 > hi + 0) hi = v[j] }
        m = median(mops[key, impl]); med[impl] = m
        printf " %.2f (%.1f-%.1f) |", m, lo, hi
        if ((impl == "cds_hp" || impl == "cds_dhp" || impl == "urcu") && m + 0 > best + 0) { best = m; bestname = impl }
      }
      if (best > 0 && ("cmr" in med)) printf " %.2fx (%s) |\n", med["cmr"] / best, bestname
      else printf " - |\n"
      delete med
    }
    printf "\nPeak unreclaimed objects and peak RSS (KiB), medians:\n\n| workload | mix | keys | threads |"
    for (i = 1; i <= nimpls; ++i) printf " %s |", impls[i]
    printf "\n|---|---|---|---:|"
    for (i = 1; i <= nimpls; ++i) printf "---:|"
    printf "\n"
    for (k = 1; k <= nkeys; ++k) {
      key = order[k]; split(key, f, " ")
      printf "| %s | %s | %s | %s |", f[1], f[2], f[3], f[4]
      for (i = 1; i <= nimpls; ++i) {
        impl = impls[i]
        if (!((key, impl) in mops)) { printf " - |"; continue }
        printf " %d / %d |", median(unrec[key, impl]), median(rss[key, impl])
      }
      printf "\n"
    }
  }' "$rows" > "$out/medians.md"
echo "bench_repeat.sh: $rows, $out/medians.md" >&2
