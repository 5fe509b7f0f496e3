// harness/config.hpp: what one benchmark run is — implementation, workload, operation mix,
// key range, threads, duration — and how each is spelled on the command line and in the CSV.
//
// Every implementation is measured with exactly these parameters; the constants below are
// the workload definitions of project issue 7 and are not per-implementation knobs.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace cmr::bench {

// The order is the order of `--workload all` and the index into ImplInfo::supports.
enum class Workload { kQueue, kStack, kSet, kList, kSkipList, kTree, kHarris };
inline constexpr Workload kAllWorkloads[] = {Workload::kQueue,    Workload::kStack,
                                             Workload::kSet,      Workload::kList,
                                             Workload::kSkipList, Workload::kTree,
                                             Workload::kHarris};
inline constexpr std::size_t kWorkloadCount = std::size(kAllWorkloads);

// Elements in the queue/stack before the timed phase: the structure never runs empty, so
// every pop unlinks (and, for reclaiming schemes, retires) a node.
inline constexpr std::uint64_t kQueuePrefill = 1000;
// Buckets of the hash-set workload (fixed: no implementation resizes during a run).
inline constexpr std::size_t kSetBuckets = 1024;
// Key range of the single ordered list.
inline constexpr std::uint64_t kListKeys = 1000;

// The widest range scan a mix may ask for (keys in [lo, lo + width)).
inline constexpr int kMaxScanWidth = 1 << 20;

// Percentages of lookups, inserts and erases in the keyed workloads. With scan_width > 0
// (spelled "80/10/10/s100") the first share is range scans instead of lookups: each visits
// the keys present in [lo, lo + scan_width) in increasing order, lo uniform in
// [0, keys - scan_width]. Only the skiplist workload runs scan mixes.
struct Mix {
  int lookup = 90;  // lookups, or range scans when scan_width > 0
  int insert = 5;
  int erase = 5;
  int scan_width = 0;
  friend bool operator==(const Mix&, const Mix&) = default;
};

struct RunConfig {
  std::string impl;
  Workload workload = Workload::kQueue;
  Mix mix;
  std::uint64_t keys = 1000;  // key range of the keyed workloads (the list uses kListKeys)
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
    case Workload::kSkipList: return "skiplist";
    case Workload::kTree: return "tree";
    case Workload::kHarris: return "harris";
  }
  return "?";
}

inline std::optional<Workload> parse_workload(std::string_view s) {
  for (Workload w : kAllWorkloads)
    if (workload_name(w) == s) return w;
  return std::nullopt;
}

// The workloads of keyed operations (lookup/insert/erase in --mix proportions).
inline bool uses_mix(Workload w) {
  return w != Workload::kQueue && w != Workload::kStack;
}
// The keyed workloads whose key range is --keys (the list's is fixed).
inline bool uses_keys(Workload w) { return uses_mix(w) && w != Workload::kList; }
// The workloads that may run a scan mix.
inline bool allows_scans(Workload w) { return w == Workload::kSkipList; }

inline std::string mix_name(Mix m) {
  std::string s = std::to_string(m.lookup) + "/" + std::to_string(m.insert) + "/" +
                  std::to_string(m.erase);
  if (m.scan_width > 0) s += "/s" + std::to_string(m.scan_width);
  return s;
}

// "90/5/5" -> {90, 5, 5}; "80/10/10/s100" -> 80% scans of width 100. The three shares must
// add up to 100.
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
  int width = 0;
  if (p != end) {
    if (end - p < 3 || p[0] != '/' || p[1] != 's') return std::nullopt;
    auto [next, ec] = std::from_chars(p + 2, end, width);
    if (ec != std::errc{} || width < 1 || width > kMaxScanWidth) return std::nullopt;
    p = next;
  }
  if (p != end || parts[0] + parts[1] + parts[2] != 100) return std::nullopt;
  return Mix{parts[0], parts[1], parts[2], width};
}

// The key range a run actually uses.
inline std::uint64_t effective_keys(const RunConfig& c) {
  return c.workload == Workload::kList ? kListKeys : c.keys;
}

}  // namespace cmr::bench
