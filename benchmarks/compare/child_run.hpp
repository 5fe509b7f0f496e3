// compare/child_run.hpp: one configuration in a fresh process.
//
// The parent re-executes its own binary (/proc/self/exe) with --child and the
// configuration's flags, so nothing of one run (garbage, allocator caches, RSS high-water
// mark, a library's global state) survives into the next. The child writes its report as
// `name=value` lines on a dedicated pipe (its stdout goes to stderr, so a chatty library
// cannot corrupt the CSV); the parent enforces a timeout and turns a crash into a row.
#pragma once

#include <string>
#include <string_view>

#include "harness/run_report.hpp"

namespace cmr::bench {

struct ChildOutcome {
  RunReport report;
  std::string failure;  // empty when the child exited 0 and reported
};

ChildOutcome run_in_child(const RunConfig& cfg, double timeout_s);

// The child side: the report, in the format run_in_child parses.
void write_report(int fd, const RunReport& report);

}  // namespace cmr::bench
