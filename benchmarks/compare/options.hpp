// compare/options.hpp: the command line of cmr_compare.
//
// The same flags describe a whole sweep (lists, in the parent) and one configuration (single
// values, in a child started with --child); parsing is shared so the two cannot drift.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/config.hpp"

namespace cmr::bench {

struct DriverOptions {
  std::vector<std::string> impls{"all"};
  std::vector<Workload> workloads{std::begin(kAllWorkloads), std::end(kAllWorkloads)};
  std::vector<Mix> mixes{Mix{}};
  std::vector<std::uint64_t> keys{1000};
  std::vector<int> threads{1, 2, 4};
  double seconds = 1.0;
  bool csv = false;
  bool header = true;
  bool stall = false;
  std::string timeline_path;  // empty: no timeline
  int sample_ms = 1;
  int timeline_ms = 100;
  bool pin = false;
  double timeout_s = 0;  // per configuration; 0: 10 x seconds + 60
  bool list = false;
  bool in_process = false;
  bool child = false;    // internal: run exactly one configuration
  int result_fd = -1;    // internal: where a child writes its report
  std::uint64_t seed = RunConfig{}.seed;
};

// Parses argv; on error prints a message (and usage) to stderr and returns nullopt.
std::optional<DriverOptions> parse_options(int argc, char** argv);

void print_usage(const char* argv0);

}  // namespace cmr::bench
