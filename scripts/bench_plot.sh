#!/usr/bin/env bash
# scripts/bench_plot.sh: PNG plots of cmr_compare and pause_vs_rss output with gnuplot.
#
# Usage: scripts/bench_plot.sh [--help] RESULTS_CSV [STALL_TIMELINE_CSV] OUT_DIR
#        scripts/bench_plot.sh --pause PAUSE_CSV OUT_DIR
#
# Writes OUT_DIR/throughput_<workload>.png (throughput vs threads, one line per impl, one
# panel per mix/key range) and, given a timeline, OUT_DIR/stall.png (RSS and unreclaimed
# objects over time in the stalled-thread run, one line per impl); with --pause,
# OUT_DIR/pause_vs_rss.png from the pause CSV that scripts/bench.sh writes. Every CSV is read
# by its header's column names. awk splits the CSV into per-line data files so gnuplot never
# has to filter (filtered-out points break lines). Needs gnuplot (Debian: gnuplot-nox) and
# fails without it, or when the CSV has no rows: scripts/bench.sh --skip-plots is the way
# to run the benchmark without plots. Installs nothing (bench.sh does).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
fail() { echo "bench_plot.sh: FAILED: $*" >&2; exit 1; }
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
command -v gnuplot >/dev/null ||
  fail "gnuplot not found (Debian: gnuplot-nox); install it, or run scripts/bench.sh --skip-plots"

if [[ ${1:-} == --pause ]]; then
  [[ $# -eq 3 ]] || { echo "usage: $0 --pause PAUSE_CSV OUT_DIR (--help)" >&2; exit 2; }
  pause_csv=$2; out=$3
  data="$out/plot-data-pause"; rm -rf "$data"; mkdir -p "$data"
  # Points with live tracked objects are their own line: that memory is the tracked heap,
  # which every child needs, not the program's memory isolation removes. Rows with no cycle
  # marked in the pause under isolation are the forced-child series, unless they are the
  # live-heap series (which needs a child anyway). Of the memory kinds, only the default
  # one made after init is plotted (the other kinds are in the report's table).
  awk -F, -v dir="$data" '
    FNR == 1 {
      for (i = 1; i <= NF; i++) col[$i] = i
      split("isolated live_mib in_pause rss_mib pause_p50_us pause_p99_us", need, " ")
      for (i in need) if (!(need[i] in col)) { print "bench_plot.sh: no column " need[i] " in " FILENAME > "/dev/stderr"; bad = 1; exit 1 }
      next
    }
    !("kind" in col) || ($col["kind"] == "nohugepage" && $col["made"] == "after") {
      series = ($col["live_mib"] + 0) > 0 ? "live" : ($col["isolated"] != 1 ? "off" : (($col["in_pause"] + 0) == 0 ? "child" : "on"))
      print $col["rss_mib"], $col["pause_p50_us"], $col["pause_p99_us"] > (dir "/" series ".dat")
      rows++
    }
    END { if (bad) exit 1; if (rows == 0) { print "bench_plot.sh: no rows in " FILENAME > "/dev/stderr"; exit 1 } }' "$pause_csv" ||
    fail "no pause plot from $pause_csv"
  touch "$data/on.dat" "$data/off.dat" "$data/live.dat" "$data/child.dat"
  for f in "$data"/*.dat; do sort -n "$f" -o "$f"; done
  term="pngcairo noenhanced size 1100,700 font ',10'"
  gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term="png noenhanced size 1100,700"
  gnuplot <<GP
set terminal $term
set output '$out/pause_vs_rss.png'
set title 'cmr pause vs resident memory, 8 threads'
set xlabel 'process RSS (MiB)'; set ylabel 'pause (microseconds)'; set logscale y; set grid
set key outside right
plot '$data/on.dat' using 1:2 with linespoints lw 2 title 'isolation on, p50', \
     '$data/on.dat' using 1:3 with linespoints lw 1 dt 2 title 'isolation on, p99', \
     '$data/child.dat' using 1:2 with linespoints lw 2 title 'a child every cycle (isolation on), p50', \
     '$data/child.dat' using 1:3 with linespoints lw 1 dt 2 title 'a child every cycle (isolation on), p99', \
     '$data/off.dat' using 1:2 with linespoints lw 2 title 'isolation off, p50', \
     '$data/off.dat' using 1:3 with linespoints lw 1 dt 2 title 'isolation off, p99', \
     '$data/live.dat' using 1:2 with linespoints lw 2 title 'live tracked heap grows (isolation on), p50', \
     '$data/live.dat' using 1:3 with linespoints lw 1 dt 2 title 'live tracked heap grows (isolation on), p99'
GP
  exit 0
fi
if [[ $# -eq 2 ]]; then results=$1; timeline=""; out=$2
elif [[ $# -eq 3 ]]; then results=$1; timeline=$2; out=$3
else echo "usage: $0 RESULTS_CSV [STALL_TIMELINE_CSV] OUT_DIR (--help)" >&2; exit 2; fi

data="$out/plot-data"
rm -rf "$data"
mkdir -p "$data"
# noenhanced: impl names such as cds_hp are literal text, not subscripts.
terminal="pngcairo noenhanced size 1400,900 font ',10'"
gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || terminal="png noenhanced size 1400,900"

# Throughput: data/<workload>.<panel>.<impl>.dat with "threads mops", plus a panel index.
awk -F, -v dir="$data" '
  FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $col["mops"] == "" { next }
  {
    w = $col["workload"]
    panel = ($col["mix"] == "-") ? "push+pop" : ($col["mix"] " keys " $col["keys"])
    if (!((w, panel) in pid)) { pid[w, panel] = ++np[w]; print w "\t" np[w] "\t" panel > (dir "/panels.tsv") }
    f = dir "/" w "." pid[w, panel] "." $col["impl"] ".dat"
    print $col["threads"], $col["mops"] > f
  }' "$results"

[[ -f "$data/panels.tsv" ]] || fail "no rows with a throughput in $results"

cut -f1 "$data/panels.tsv" | sort -u | while read -r w; do
  panels=$(awk -F'\t' -v w="$w" '$1 == w' "$data/panels.tsv" | wc -l)
  cols=$(( panels > 1 ? 2 : 1 )); rows=$(( (panels + cols - 1) / cols ))
  {
    echo "set terminal $terminal"
    echo "set output '$out/throughput_$w.png'"
    echo "set multiplot layout $rows,$cols title 'cmr_compare: $w workload, throughput vs threads'"
    echo "set xlabel 'threads'; set ylabel 'Mops/s'; set key outside right; set grid"
    echo "set logscale x 2; set yrange [0:*]"
    awk -F'\t' -v w="$w" '$1 == w { print $2 "\t" $3 }' "$data/panels.tsv" | while IFS=$'\t' read -r id title; do
      plots=""
      for f in "$data/$w.$id."*.dat; do
        impl=${f##*/"$w"."$id".}; impl=${impl%.dat}
        sort -n "$f" -o "$f"
        plots+="${plots:+, }'$f' using 1:2 with linespoints lw 2 title '$impl'"
      done
      echo "set title '$w $title'"
      echo "plot $plots"
    done
    echo "unset multiplot"
  } > "$data/$w.gp"
  gnuplot "$data/$w.gp"
done

# Stalled-thread timeline: data/stall.<impl>.dat with "seconds rss_mib unreclaimed".
if [[ -n "$timeline" ]]; then
  awk -F, -v dir="$data" '
    FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["stall"] == "yes" {
      u = $col["unreclaimed"]; if (u == "") u = "NaN"
      print $col["t_ms"] / 1000.0, $col["rss_kib"] / 1024.0, u > (dir "/stall." $col["impl"] ".dat")
    }' "$timeline"
  if compgen -G "$data/stall.*.dat" >/dev/null; then
    rss_plots=""; unrec_plots=""
    for f in "$data"/stall.*.dat; do
      impl=${f##*/stall.}; impl=${impl%.dat}; label=$impl
      rss_plots+="${rss_plots:+, }'$f' using 1:2 with lines lw 2 title '$label'"
      unrec_plots+="${unrec_plots:+, }'$f' using 1:3 with lines lw 2 title '$label'"
    done
    gnuplot <<GP
set terminal $terminal
set output '$out/stall.png'
set multiplot layout 2,1 title 'cmr_compare: memory held back while one thread stalls (queue workload)'
set grid; set key outside right; set xlabel 'seconds'
set ylabel 'RSS (MiB)'; set yrange [0:*]
plot $rss_plots
set ylabel 'unreclaimed objects'; set logscale y; set yrange [*:*]
plot $unrec_plots
unset multiplot
GP
  else
    fail "no stalled-thread rows in $timeline"
  fi
fi
