// harness/timed_run.hpp: runs a workload body on N threads for a fixed time, identically for
// every implementation.
//
// Sequence: spawn the workers (each enters the implementation's ThreadScope, e.g. libcds
// attach or RCU registration, *before* the clock starts) and the optional stall thread
// (which takes its guard / read lock first); wait until all are ready; start the monitor
// and the clock; release everyone at once; sleep; raise the stop flag; join. Throughput is
// measured from the release to the stop flag. Per-thread tallies are padded to cache lines
// and written once, at the end, so counting costs no shared writes.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include "harness/config.hpp"
#include "harness/memory.hpp"
#include "harness/monitor.hpp"

namespace cmr::bench {

template <class T>
struct alignas(64) Padded {
  T value{};
};

struct TimedResult {
  double elapsed_s = 0;
  double cpu_s = 0;  // CPU time of the process (and reaped children) over the timed phase
  std::uint64_t peak_rss_kib = 0;
  std::optional<std::uint64_t> peak_unreclaimed;
  std::optional<std::uint64_t> end_unreclaimed;  // after the workers stopped, stall still held
  std::vector<TimelinePoint> timeline;
};

inline void pin_to_cpu(int index) {
  unsigned n = std::thread::hardware_concurrency();
  if (n == 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(index) % n, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
}

// `body(thread_index, stop)` runs on each worker until `stop` reads true and records its
// own tallies. Impl::stall(runtime, wait) must take its hold, call wait(), then release it.
template <class Impl, class Body>
TimedResult run_timed(const RunConfig& cfg, typename Impl::Runtime& runtime, Body& body) {
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::atomic<bool> release_stall{false};
  std::latch ready(cfg.threads + (cfg.stall ? 1 : 0));

  std::vector<std::thread> workers;
  workers.reserve(cfg.threads);
  for (int t = 0; t < cfg.threads; ++t) {
    workers.emplace_back([&, t] {
      if (cfg.pin) pin_to_cpu(t);
      [[maybe_unused]] typename Impl::ThreadScope scope;
      ready.count_down();
      // acquire: pairs with the release store of `go` below (setup happens-before work).
      go.wait(false, std::memory_order_acquire);
      body(t, stop);
    });
  }
  std::thread staller;
  if (cfg.stall) {
    staller = std::thread([&] {
      [[maybe_unused]] typename Impl::ThreadScope scope;
      Impl::stall(runtime, [&] {
        ready.count_down();
        // acquire: pairs with the release store of `release_stall` after the workers joined.
        release_stall.wait(false, std::memory_order_acquire);
      });
    });
  }
  ready.wait();

  Monitor monitor(cfg.sample_ms, cfg.timeline_ms, [&] { return runtime.unreclaimed(); });
  const double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);  // pairs with the workers' acquire wait
  go.notify_all();
  std::this_thread::sleep_for(std::chrono::duration<double>(cfg.seconds));
  // relaxed: only a request to stop; the tallies reach us through join().
  stop.store(true, std::memory_order_relaxed);
  auto t1 = std::chrono::steady_clock::now();
  for (auto& w : workers) w.join();
  monitor.stop();
  const double cpu1 = cpu_seconds();

  TimedResult r;
  r.elapsed_s = std::chrono::duration<double>(t1 - t0).count();
  r.cpu_s = cpu1 - cpu0;
  r.peak_rss_kib = peak_rss_kib();
  r.peak_unreclaimed = monitor.peak_unreclaimed();
  r.end_unreclaimed = monitor.end_unreclaimed();
  r.timeline = monitor.timeline();

  if (cfg.stall) {
    release_stall.store(true, std::memory_order_release);  // pairs with the staller's wait
    release_stall.notify_all();
    staller.join();
  }
  return r;
}

}  // namespace cmr::bench
