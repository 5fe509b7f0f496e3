// harness/monitor.hpp: a thread that watches memory while the workers run.
//
// Every sample period it asks the implementation for its unreclaimed-object count (cmr:
// stats().live_objects; the others: the allocation counter) and keeps the peak; every
// timeline period it also records the RSS. It sleeps between samples, so on a machine with
// fewer cores than threads it steals a little time from the workers — equally for every
// implementation.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "harness/memory.hpp"

namespace cmr::bench {

struct TimelinePoint {
  std::uint64_t t_ms;
  std::uint64_t rss_kib;
  std::optional<std::uint64_t> unreclaimed;
};

class Monitor {
 public:
  using SampleFn = std::function<std::optional<std::uint64_t>()>;

  Monitor(int sample_ms, int timeline_ms, SampleFn sample)
      : sample_(std::move(sample)),
        sample_period_(std::chrono::milliseconds(std::max(sample_ms, 1))),
        timeline_period_(std::chrono::milliseconds(timeline_ms)) {
    observe(true);
    thread_ = std::thread([this] { loop(); });
  }
  ~Monitor() { stop(); }
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Stops sampling and takes one final sample (the "end" figure).
  void stop() {
    if (!thread_.joinable()) return;
    // relaxed: the join below orders everything the monitor wrote before our reads.
    done_.store(true, std::memory_order_relaxed);
    thread_.join();
    end_ = observe(true);
  }

  std::optional<std::uint64_t> peak_unreclaimed() const { return peak_; }
  std::optional<std::uint64_t> end_unreclaimed() const { return end_; }
  const std::vector<TimelinePoint>& timeline() const { return timeline_; }

 private:
  void loop() {
    auto next = clock::now();
    while (!done_.load(std::memory_order_relaxed)) {
      next += sample_period_;
      std::this_thread::sleep_until(next);
      bool due = timeline_period_.count() > 0 && clock::now() >= next_timeline_;
      observe(due);
    }
  }

  std::optional<std::uint64_t> observe(bool timeline_point) {
    std::optional<std::uint64_t> u = sample_();
    if (u) peak_ = std::max(peak_.value_or(0), *u);
    if (timeline_point && timeline_period_.count() > 0) {
      auto now = clock::now();
      auto t = std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count();
      timeline_.push_back({static_cast<std::uint64_t>(t), current_rss_kib(), u});
      next_timeline_ = now + timeline_period_;
    }
    return u;
  }

  using clock = std::chrono::steady_clock;
  SampleFn sample_;
  std::chrono::milliseconds sample_period_;
  std::chrono::milliseconds timeline_period_;
  clock::time_point start_ = clock::now();
  clock::time_point next_timeline_ = start_;
  std::optional<std::uint64_t> peak_;
  std::optional<std::uint64_t> end_;
  std::vector<TimelinePoint> timeline_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace cmr::bench
