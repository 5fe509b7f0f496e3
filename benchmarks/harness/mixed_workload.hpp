// harness/mixed_workload.hpp: the keyed workloads: `set`, `list`, `skiplist`, `tree`, `harris`.
//
// Keys are drawn uniformly from [0, keys); each operation is a lookup, insert or erase with
// the configured percentages. Half of the key range (a seeded random half, inserted in a
// random order, so that unbalanced search trees get their expected logarithmic depth) is
// inserted before the timed phase; from kParallelPrefillKeys keys on, by several threads at
// once. Then the implementation may settle (Runtime::settle, optional: finish what the
// prefill left in flight) before the clock starts. The set has kSetBuckets buckets; the list is one ordered list of kListKeys keys; the
// other structures are single ordered sets over --keys.
//
// A scan mix (Mix::scan_width > 0, skiplist only) replaces the lookups by range scans: each
// visits, through for_each_in(lo, lo + width, f), the keys present in that interval. During
// the run every scan is checked to report keys inside its interval in strictly increasing
// order.
//
// End check, for any implementation: the number of keys k in [0, keys) for which
// contains(k) holds equals prefill + successful inserts - successful erases. A structure
// with for_each_in is also scanned once over [0, keys) after the run (whatever the mix): it
// must report exactly the keys contains() found, in increasing order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/config.hpp"
#include "harness/run_report.hpp"
#include "harness/timed_run.hpp"

namespace cmr::bench {

// xorshift64*: a few cycles per number, no shared state; identical for every implementation.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    // splitmix64 of the seed, so neighbouring seeds give unrelated streams.
    std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    state_ = (z ^ (z >> 31)) | 1;
  }
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dULL;
  }

 private:
  std::uint64_t state_;
};

struct MixTally {
  std::uint64_t ops = 0;
  std::uint64_t inserted = 0;  // successful inserts
  std::uint64_t erased = 0;    // successful erases
  std::uint64_t hits = 0;      // successful lookups (kept so no lookup is optimised away)
  std::uint64_t scans = 0;
  std::uint64_t scanned = 0;          // keys reported by the scans
  std::uint64_t scan_violations = 0;  // keys outside the interval or out of order
};

// From this key range on the prefill runs on several threads: sequential inserts of 5 x 10^5
// keys would cost seconds per run for the slower implementations. Below it (every set and
// list configuration of bench.sh) the prefill stays on the main thread.
inline constexpr std::uint64_t kParallelPrefillKeys = std::uint64_t{1} << 17;
inline constexpr unsigned kMaxPrefillThreads = 8;

namespace detail {
struct ScanProbe {
  void operator()(const std::uint64_t&) const {}
};
}  // namespace detail

// Whether a structure offers range scans: for_each_in(lo, hi, f) on a const structure.
template <class S>
concept RangeScannable = requires(const S& s, const std::uint64_t& k, detail::ScanProbe f) {
  s.for_each_in(k, k, f);
};
template <class S>
inline constexpr bool kScans = RangeScannable<S>;

// Inserts order[0, count) into s; returns how many inserts failed (a key already present).
// With several threads each inserts a contiguous share of the (shuffled) order inside the
// implementation's ThreadScope.
template <class Impl, class Structure>
std::uint64_t prefill_keys(Structure& s, const std::vector<std::uint64_t>& order,
                           std::uint64_t count, std::uint64_t keys) {
  unsigned threads = 1;
  if (keys >= kParallelPrefillKeys)
    threads = std::clamp(std::thread::hardware_concurrency(), 1u, kMaxPrefillThreads);
  if (threads == 1) {
    std::uint64_t failures = 0;
    for (std::uint64_t i = 0; i < count; ++i)
      if (!s.insert(order[i])) ++failures;
    return failures;
  }
  std::vector<std::uint64_t> failures(threads, 0);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      [[maybe_unused]] typename Impl::ThreadScope scope;
      const std::uint64_t from = count * t / threads, to = count * (t + 1) / threads;
      std::uint64_t failed = 0;
      for (std::uint64_t i = from; i < to; ++i)
        if (!s.insert(order[i])) ++failed;
      failures[t] = failed;  // published by join()
    });
  }
  for (auto& th : pool) th.join();
  std::uint64_t total = 0;
  for (std::uint64_t f : failures) total += f;
  return total;
}

// Structure: bool insert(std::uint64_t), bool erase(const std::uint64_t&),
// bool contains(const std::uint64_t&); constructed from the bucket count when kBucketed;
// optionally for_each_in (see kScans).
template <class Impl, class Structure, bool kBucketed>
RunReport run_mixed(const RunConfig& cfg) {
  RunReport report;
  const std::uint64_t keys = effective_keys(cfg);
  const std::uint64_t scan_width = static_cast<std::uint64_t>(cfg.mix.scan_width);
  if constexpr (!kScans<Structure>) {
    if (scan_width != 0) {  // the driver never asks for it (ImplInfo::provides)
      record_check(report, false, "scan mix on a structure without for_each_in");
      return report;
    }
  }
  typename Impl::Runtime runtime(cfg);
  {
    [[maybe_unused]] typename Impl::ThreadScope main_scope;  // prefill, check and destruction run here
    std::unique_ptr<Structure> s;
    if constexpr (kBucketed)
      s = std::make_unique<Structure>(kSetBuckets);
    else
      s = std::make_unique<Structure>();

    std::vector<std::uint64_t> order(keys);
    std::iota(order.begin(), order.end(), std::uint64_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937_64(cfg.seed));
    const std::uint64_t prefill = keys / 2;
    const std::uint64_t prefill_failures = prefill_keys<Impl>(*s, order, prefill, keys);
    // Work the prefill left in flight (a collection it triggered, pending callbacks) is
    // prefill work: let it finish before the clock starts.
    if constexpr (requires { runtime.settle(); }) runtime.settle();

    // Scan intervals start in [0, keys - width] so that every one lies in the key range.
    const std::uint64_t scan_starts = keys > scan_width ? keys - scan_width + 1 : 1;
    const std::uint64_t lookup_below = static_cast<std::uint64_t>(cfg.mix.lookup);
    const std::uint64_t insert_below = lookup_below + static_cast<std::uint64_t>(cfg.mix.insert);
    std::vector<Padded<MixTally>> tallies(cfg.threads);
    auto body = [&](int t, const std::atomic<bool>& stop) {
      MixTally k;
      Rng rng(cfg.seed + 1 + static_cast<std::uint64_t>(t));
      // relaxed: the flag carries no data; tallies are published by thread join.
      while (!stop.load(std::memory_order_relaxed)) {
        std::uint64_t r = rng.next();
        // Multiply-shift range reduction: no division on the hot path.
        std::uint64_t key = ((r >> 32) * keys) >> 32;
        std::uint64_t pct = ((r & 0xffffffffULL) * 100) >> 32;
        if (pct < lookup_below) {
          if constexpr (kScans<Structure>) {
            if (scan_width != 0) {
              const std::uint64_t lo = ((r >> 32) * scan_starts) >> 32;
              const std::uint64_t hi = lo + scan_width;
              std::uint64_t next_min = lo, seen = 0, bad = 0;
              // Every key reported must lie in [next_min, hi): inside the interval and
              // above the one before it.
              std::as_const(*s).for_each_in(lo, hi, [&](const std::uint64_t& got) {
                if (got < next_min || got >= hi) ++bad;
                next_min = got + 1;
                ++seen;
              });
              ++k.scans;
              k.scanned += seen;
              k.scan_violations += bad;
              ++k.ops;
              continue;
            }
          }
          if (s->contains(key)) ++k.hits;
        } else if (pct < insert_below) {
          if (s->insert(key)) ++k.inserted;
        } else {
          if (s->erase(key)) ++k.erased;
        }
        ++k.ops;
      }
      tallies[t].value = k;
    };
    TimedResult timed = run_timed<Impl>(cfg, runtime, body);

    MixTally total;
    for (const auto& p : tallies) {
      total.ops += p.value.ops;
      total.inserted += p.value.inserted;
      total.erased += p.value.erased;
      total.scans += p.value.scans;
      total.scanned += p.value.scanned;
      total.scan_violations += p.value.scan_violations;
    }
    std::vector<bool> found(keys, false);
    std::uint64_t present = 0;
    for (std::uint64_t key = 0; key < keys; ++key)
      if (s->contains(key)) {
        found[key] = true;
        ++present;
      }
    // The quiescent full scan must agree with contains(), key for key.
    std::uint64_t scan_mismatches = 0;
    if constexpr (kScans<Structure>) {
      std::uint64_t next_min = 0, reported = 0;
      std::as_const(*s).for_each_in(std::uint64_t{0}, keys, [&](const std::uint64_t& got) {
        if (got < next_min || got >= keys || !found[got]) ++scan_mismatches;
        next_min = got + 1;
        ++reported;
      });
      if (reported != present) ++scan_mismatches;
    }
    s.reset();

    record_timed(report, cfg, timed, total.ops);
    if (scan_width != 0) {
      report.columns.set_number("scans", total.scans);
      report.columns.set_number("scan_keys", total.scanned);
    }
    const std::uint64_t expected = prefill - prefill_failures + total.inserted - total.erased;
    std::string why;
    if (prefill_failures != 0) why += "prefill_failures=" + std::to_string(prefill_failures) + " ";
    if (present != expected)
      why += "size " + std::to_string(present) + "!=" + std::to_string(expected) + " ";
    if (total.scan_violations != 0)
      why += "scan_violations=" + std::to_string(total.scan_violations) + " ";
    if (scan_mismatches != 0)
      why += "final_scan_mismatches=" + std::to_string(scan_mismatches) + " ";
    record_check(report, why.empty(), why);
  }
  runtime.extra_columns(report.columns);
  return report;
}

}  // namespace cmr::bench
