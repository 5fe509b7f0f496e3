#!/usr/bin/awk -f
# scripts/bench_report.awk: turns cmr_compare CSV into Markdown tables of ratios against cmr.
#
#   awk -f scripts/bench_report.awk out/results.csv [out/stall.csv] > out/results.md
#
# One table per metric (throughput, peak unreclaimed objects, peak RSS); one row per
# (workload, mix, keys, threads); one column per implementation, in the order they appear.
# Each cell is the value and, when cmr ran that configuration, value / cmr's value.
# Plain POSIX awk (mawk, gawk, busybox): the columns used all precede the quoted `note`.
BEGIN { FS = ","; nimpl = 0; nrow = 0; nstall = 0; nfail = 0 }

FNR == 1 {
  delete col
  for (i = 1; i <= NF; i++) col[$i] = i
  file++
  next
}

file == 1 {
  impl = $col["impl"]
  key = $col["workload"] SUBSEP $col["mix"] SUBSEP $col["keys"] SUBSEP $col["threads"]
  if (!(impl in seen_impl)) { seen_impl[impl] = 1; impls[++nimpl] = impl }
  if (!(key in seen_row)) { seen_row[key] = 1; rows[++nrow] = key }
  mops[key, impl] = $col["mops"]
  unrec[key, impl] = $col["peak_unreclaimed"]
  rss[key, impl] = $col["peak_rss_kib"]
  pause[key, impl] = $col["pause_max_us"]
  if ($col["ok"] != "yes") failed[++nfail] = impl " " $col["workload"] " " $col["mix"] " keys=" $col["keys"] " threads=" $col["threads"]
  next
}

file == 2 {
  nstall++
  s_impl[nstall] = $col["impl"]; s_threads[nstall] = $col["threads"]
  s_mops[nstall] = $col["mops"]; s_unrec[nstall] = $col["peak_unreclaimed"]
  s_end[nstall] = $col["end_unreclaimed"]; s_rss[nstall] = $col["peak_rss_kib"]
  s_ok[nstall] = $col["ok"]
}

function cell(v, base,    r) {
  if (v == "") return "-"
  if (base == "" || base + 0 == 0) return v
  r = v / base
  return sprintf("%s (%.2fx)", v, r)
}

function table(title, metric, note,    r, i, split_key, line, base) {
  print "## " title
  print ""
  if (note != "") { print note; print "" }
  line = "| workload | mix | keys | threads |"
  for (i = 1; i <= nimpl; i++) line = line " " impls[i] " |"
  print line
  line = "|---|---|---|---:|"
  for (i = 1; i <= nimpl; i++) line = line "---:|"
  print line
  for (r = 1; r <= nrow; r++) {
    split(rows[r], split_key, SUBSEP)
    line = "| " split_key[1] " | " split_key[2] " | " split_key[3] " | " split_key[4] " |"
    base = (have_cmr ? value(metric, rows[r], "cmr") : "")
    for (i = 1; i <= nimpl; i++) line = line " " cell(value(metric, rows[r], impls[i]), base) " |"
    print line
  }
  print ""
}

function value(metric, key, impl) {
  if (metric == "mops") return ((key, impl) in mops) ? mops[key, impl] : ""
  if (metric == "unrec") return ((key, impl) in unrec) ? unrec[key, impl] : ""
  if (metric == "rss") return ((key, impl) in rss) ? rss[key, impl] : ""
  return ""
}

END {
  have_cmr = ("cmr" in seen_impl)
  print "# cmr_compare results"
  print ""
  if (have_cmr)
    print "Cells: value (value / cmr's value). Throughput: >1x is faster than cmr; memory: >1x holds more than cmr."
  else
    print "cmr did not run in this build: absolute values only."
  print "Each configuration ran in its own process; see docs/benchmarks.md for what is measured and its caveats."
  print ""
  table("Throughput (Mops/s)", "mops", "")
  table("Peak unreclaimed objects", "unrec", \
        "Allocated and not yet freed, live nodes included (cmr: stats().live_objects; others: allocation counter). Sampled every --sample-ms.")
  table("Peak RSS (KiB)", "rss", "")
  if (nstall > 0) {
    print "## Stalled thread"
    print ""
    print "One extra thread holds a guard / read lock / hazard pointer for the whole run (see the note column of stall.csv for what each holds)."
    print ""
    print "| impl | threads | Mops/s | peak unreclaimed | unreclaimed at end | peak RSS KiB | ok |"
    print "|---|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= nstall; i++)
      print "| " s_impl[i] " | " s_threads[i] " | " s_mops[i] " | " s_unrec[i] " | " s_end[i] " | " s_rss[i] " | " s_ok[i] " |"
    print ""
  }
  if (nfail > 0) {
    print "## Failed runs or checks"
    print ""
    for (i = 1; i <= nfail; i++) print "- " failed[i]
    print ""
  }
}
