// harness/config.hpp: what one benchmark run is — implementation, workload, operation mix,
// key range, threads, duration — and how each is spelled on the command line and in the CSV.
//
// Every implementation is measured with exactly these parameters; the constants below are
// the workload definitions of project issue 7 and are not per-implementation knobs.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cmr::bench {

enum class Workload { kQueue, kStack, kSet, kList };
inline constexpr Workload kAllWorkloads[] = {Workload::kQueue, Workload::kStack,
                                             Workload::kSet, Workload::kList};

// Elements in the queue/stack before the timed phase: the structure never runs empty, so
// every pop unlinks (and, for reclaiming schemes, retires) a node.
inline constexpr std::uint64_t kQueuePrefill = 1000;
// Buckets of the hash-set workload (fixed: no implementation resizes during a run).
inline constexpr std::size_t kSetBuckets = 1024;
// Key range of the single ordered list.
inline constexpr std::uint64_t kListKeys = 1000;

// Percentages of lookups, inserts and erases in the set/list workloads.
struct Mix {
  int lookup = 90;
  int insert = 5;
  int erase = 5;
  friend bool operator==(const Mix&, const Mix&) = default;
};

struct RunConfig {
  std::string impl;
  Workload workload = Workload::kQueue;
  Mix mix;
  std::uint64_t keys = 1000;  // key range of the set workload (the list uses kListKeys)
  int threads = 1;
  double seconds = 1.0;
  bool stall = false;      // one extra thread holds a guard / read lock for the whole run
  int sample_ms = 1;       // unreclaimed-object sampling period of the monitor
  int timeline_ms = 0;     // RSS/unreclaimed timeline period; 0 = no timeline
  bool pin = false;        // pin worker i to CPU i mod nproc
  std::uint64_t seed = 0x5eed'c0ffee'1234ULL;
};

inline std::string_view workload_name(Workload w) {
  switch (w) {
    case Workload::kQueue: return "queue";
    case Workload::kStack: return "stack";
    case Workload::kSet: return "set";
    case Workload::kList: return "list";
  }
  return "?";
}

inline std::optional<Workload> parse_workload(std::string_view s) {
  for (Workload w : kAllWorkloads)
    if (workload_name(w) == s) return w;
  return std::nullopt;
}

inline bool uses_mix(Workload w) { return w == Workload::kSet || w == Workload::kList; }

inline std::string mix_name(Mix m) {
  return std::to_string(m.lookup) + "/" + std::to_string(m.insert) + "/" +
         std::to_string(m.erase);
}

// "90/5/5" -> {90, 5, 5}; the three must add up to 100.
inline std::optional<Mix> parse_mix(std::string_view s) {
  int parts[3];
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, parts[i]);
    if (ec != std::errc{} || parts[i] < 0) return std::nullopt;
    p = next;
    if (i < 2) {
      if (p == end || *p != '/') return std::nullopt;
      ++p;
    }
  }
  if (p != end || parts[0] + parts[1] + parts[2] != 100) return std::nullopt;
  return Mix{parts[0], parts[1], parts[2]};
}

// The key range a run actually uses.
inline std::uint64_t effective_keys(const RunConfig& c) {
  return c.workload == Workload::kList ? kListKeys : c.keys;
}

}  // namespace cmr::bench
