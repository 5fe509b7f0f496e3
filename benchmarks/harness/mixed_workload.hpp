// harness/mixed_workload.hpp: the `set` and `list` workloads.
//
// Keys are drawn uniformly from [0, keys); each operation is a lookup, insert or erase with
// the configured percentages. Half of the key range (a seeded random half) is inserted
// before the timed phase. The set has kSetBuckets buckets; the list is one ordered list of
// kListKeys keys. End check, for any implementation: the number of keys k in [0, keys) for
// which contains(k) holds equals prefill + successful inserts - successful erases.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
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
};

// Structure: bool insert(std::uint64_t), bool erase(const std::uint64_t&),
// bool contains(const std::uint64_t&); constructed from the bucket count when kBucketed.
template <class Impl, class Structure, bool kBucketed>
RunReport run_mixed(const RunConfig& cfg) {
  RunReport report;
  const std::uint64_t keys = effective_keys(cfg);
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
    std::uint64_t prefill_failures = 0;
    for (std::uint64_t i = 0; i < prefill; ++i)
      if (!s->insert(order[i])) ++prefill_failures;

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
    }
    std::uint64_t present = 0;
    for (std::uint64_t key = 0; key < keys; ++key)
      if (s->contains(key)) ++present;
    s.reset();

    record_timed(report, cfg, timed, total.ops);
    const std::uint64_t expected = prefill - prefill_failures + total.inserted - total.erased;
    std::string why;
    if (prefill_failures != 0) why += "prefill_failures=" + std::to_string(prefill_failures) + " ";
    if (present != expected)
      why += "size " + std::to_string(present) + "!=" + std::to_string(expected) + " ";
    record_check(report, why.empty(), why);
  }
  runtime.extra_columns(report.columns);
  return report;
}

}  // namespace cmr::bench
