// harness/push_pop_workload.hpp: the `queue` and `stack` workloads.
//
// N threads each loop push(x); pop() on one shared structure prefilled with kQueuePrefill
// elements. Every value encodes its producer and a per-producer sequence number, so the end
// check can verify, for any implementation:
//   - conservation: prefilled + pushed == popped + drained, as counts and as checksums;
//   - queue only: per-producer FIFO as seen by each consumer (a consumer never sees a
//     producer's sequence numbers go backwards), including the final single-threaded drain.
// The structure is drained single-threaded after the timed phase.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/config.hpp"
#include "harness/run_report.hpp"
#include "harness/timed_run.hpp"

namespace cmr::bench {

inline constexpr int kSeqBits = 40;
inline constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << kSeqBits) - 1;

inline std::uint64_t encode_value(std::uint64_t producer, std::uint64_t seq) {
  return (producer << kSeqBits) | seq;
}

// Per-consumer view of per-producer order.
class FifoChecker {
 public:
  explicit FifoChecker(std::size_t producers) : last_(producers, 0) {}
  void see(std::uint64_t value) {
    std::uint64_t producer = value >> kSeqBits;
    std::uint64_t seq = value & kSeqMask;
    if (producer >= last_.size() || seq <= last_[producer]) {
      ++violations_;
      return;
    }
    last_[producer] = seq;
  }
  std::uint64_t violations() const { return violations_; }

 private:
  std::vector<std::uint64_t> last_;
  std::uint64_t violations_ = 0;
};

struct PushPopTally {
  std::uint64_t pushes = 0, pops = 0, empty_pops = 0;
  std::uint64_t push_sum = 0, pop_sum = 0;  // wrapping sums of values
  std::uint64_t order_violations = 0;
};

// Structure: push(std::uint64_t), std::optional<std::uint64_t> try_pop(), default-constructible.
template <class Impl, class Structure>
RunReport run_push_pop(const RunConfig& cfg, bool check_fifo) {
  RunReport report;
  typename Impl::Runtime runtime(cfg);
  {
    [[maybe_unused]] typename Impl::ThreadScope main_scope;  // prefill, drain and destruction run here
    auto s = std::make_unique<Structure>();

    const std::uint64_t prefill_producer = static_cast<std::uint64_t>(cfg.threads);
    std::uint64_t prefill_sum = 0;
    for (std::uint64_t seq = 1; seq <= kQueuePrefill; ++seq) {
      std::uint64_t v = encode_value(prefill_producer, seq);
      s->push(v);
      prefill_sum += v;
    }

    std::vector<Padded<PushPopTally>> tallies(cfg.threads);
    auto body = [&](int t, const std::atomic<bool>& stop) {
      PushPopTally k;
      FifoChecker order(static_cast<std::size_t>(cfg.threads) + 1);
      std::uint64_t seq = 0;
      // relaxed: the flag carries no data; tallies are published by thread join.
      while (!stop.load(std::memory_order_relaxed)) {
        std::uint64_t v = encode_value(static_cast<std::uint64_t>(t), ++seq);
        s->push(v);
        ++k.pushes;
        k.push_sum += v;
        if (auto got = s->try_pop()) {
          ++k.pops;
          k.pop_sum += *got;
          if (check_fifo) order.see(*got);
        } else {
          ++k.empty_pops;
        }
      }
      k.order_violations = order.violations();
      tallies[t].value = k;
    };
    TimedResult timed = run_timed<Impl>(cfg, runtime, body);

    PushPopTally total;
    for (const auto& p : tallies) {
      total.pushes += p.value.pushes;
      total.pops += p.value.pops;
      total.empty_pops += p.value.empty_pops;
      total.push_sum += p.value.push_sum;
      total.pop_sum += p.value.pop_sum;
      total.order_violations += p.value.order_violations;
    }
    std::uint64_t drained = 0, drained_sum = 0;
    FifoChecker drain_order(static_cast<std::size_t>(cfg.threads) + 1);
    while (auto got = s->try_pop()) {
      ++drained;
      drained_sum += *got;
      if (check_fifo) drain_order.see(*got);
    }
    s.reset();

    record_timed(report, cfg, timed, total.pushes + total.pops + total.empty_pops);
    std::string why;
    if (kQueuePrefill + total.pushes != total.pops + drained)
      why += "count " + std::to_string(kQueuePrefill + total.pushes) + "!=" +
             std::to_string(total.pops + drained) + " ";
    if (prefill_sum + total.push_sum != total.pop_sum + drained_sum) why += "checksum ";
    std::uint64_t violations = total.order_violations + drain_order.violations();
    if (violations != 0) why += "fifo_violations=" + std::to_string(violations) + " ";
    record_check(report, why.empty(), why);
  }
  runtime.extra_columns(report.columns);
  return report;
}

}  // namespace cmr::bench
