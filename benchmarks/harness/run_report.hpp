// harness/run_report.hpp: what a run hands back to the driver, and the columns that every
// workload fills the same way from a timed phase.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/columns.hpp"
#include "harness/config.hpp"
#include "harness/memory.hpp"
#include "harness/monitor.hpp"
#include "harness/timed_run.hpp"

namespace cmr::bench {

struct RunReport {
  Columns columns;
  std::vector<TimelinePoint> timeline;
};

// Throughput counts every operation attempted (a pop that found the structure empty, a
// lookup that missed and an insert of a present key each count as one).
inline void record_timed(RunReport& report, const RunConfig& cfg, const TimedResult& r,
                         std::uint64_t ops) {
  Columns& c = report.columns;
  c.set("impl", cfg.impl);
  c.set("workload", std::string(workload_name(cfg.workload)));
  c.set("mix", uses_mix(cfg.workload) ? mix_name(cfg.mix) : "-");
  c.set_number("threads", cfg.threads);
  c.set_fixed("mops", r.elapsed_s > 0 ? static_cast<double>(ops) / r.elapsed_s / 1e6 : 0.0, 3);
  c.set_number("peak_rss_kib", r.peak_rss_kib);
  c.set("peak_unreclaimed", r.peak_unreclaimed ? std::to_string(*r.peak_unreclaimed) : "");
  c.set("end_unreclaimed", r.end_unreclaimed ? std::to_string(*r.end_unreclaimed) : "");
  c.set("keys", uses_mix(cfg.workload) ? std::to_string(effective_keys(cfg)) : "-");
  c.set_fixed("seconds", r.elapsed_s, 3);
  c.set("stall", cfg.stall ? "yes" : "no");
  c.set_number("ops", ops);
  c.set_number("children_peak_rss_kib", children_peak_rss_kib());
  // In the note: CPU seconds of the timed phase (all threads, background ones included, and
  // reaped children), and operations per CPU second, a figure that holds up better than
  // mops when other processes take a varying share of the machine.
  c.set_fixed("cpu_s", r.cpu_s, 3);
  c.set_fixed("mops_per_cpu_s", r.cpu_s > 0 ? static_cast<double>(ops) / r.cpu_s / 1e6 : 0.0, 3);
  report.timeline = r.timeline;
}

// Sets ok=yes, or ok=no with the reason appended to the note.
inline void record_check(RunReport& report, bool ok, const std::string& detail) {
  report.columns.set("ok", ok ? "yes" : "no");
  if (!ok) report.columns.add_note("check failed: " + detail);
}

}  // namespace cmr::bench
