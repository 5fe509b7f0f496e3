// tests/ds/ds_test_support.hpp: shared helpers for the data-structure tests.
//
// Counted: a move-only element whose constructions and destructions are counted, so a test
// can tell that every element was destroyed exactly once (live() back to zero, never below).
// start_counting() resets the counts at a quiet point.
// CollectorLoop: a thread that runs cmr::collect() back to back while a test runs, and
// records the largest live tracked-object count it saw, so a test can check that memory is
// really reclaimed while the structure is in use.
// run_rounds(): a long run cut into rounds, with a full cycle at a quiet point between
// rounds, so that "live objects stay bounded" does not depend on how fast the collector
// is compared with threads that do nothing but allocate.
// run_own_keys(), run_net_count(): the two concurrent checks of every keyed structure.
#pragma once

#include <atomic>
#include <chrono>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

namespace cmr_ds_test {

class Counted {
 public:
  explicit Counted(std::uint64_t v) : value_(v) { constructed_.fetch_add(1); }
  Counted(Counted&& other) noexcept : value_(other.value_) {
    other.value_ = kMovedFrom;
    constructed_.fetch_add(1);
  }
  Counted& operator=(Counted&& other) noexcept {
    value_ = other.value_;
    other.value_ = kMovedFrom;
    return *this;
  }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  ~Counted() { destroyed_.fetch_add(1); }

  std::uint64_t value() const { return value_; }
  bool operator<(const Counted& o) const { return value_ < o.value_; }
  bool operator==(const Counted& o) const { return value_ == o.value_; }

  // Objects constructed (moves included) and not yet destroyed. Negative means a double
  // destruction.
  static long live() { return constructed_.load() - destroyed_.load(); }
  static void reset_counts() {
    constructed_.store(0);
    destroyed_.store(0);
  }

  static constexpr std::uint64_t kMovedFrom = ~std::uint64_t{0};

 private:
  std::uint64_t value_;
  static inline std::atomic<long> constructed_{0};
  static inline std::atomic<long> destroyed_{0};
};

struct CountedHash {
  std::size_t operator()(const Counted& c) const { return std::hash<std::uint64_t>()(c.value()); }
};

// Runs a full cycle and returns the live tracked-object count once its garbage is freed.
// Retries an aborted cycle (a slow thread under a sanitizer) a few times.
inline std::uint64_t collect_and_count_live() {
  for (int i = 0; i < 5 && !cmr::collect(); ++i) {
  }
  return cmr::stats().live_objects;
}

// Starts counting Counted objects afresh. Collects first: nodes a previous test left as
// garbage may still hold Counted values, and destroying them later would skew the counts.
inline void start_counting() {
  collect_and_count_live();
  Counted::reset_counts();
}

// cmr's scan is conservative (invariant 7 of docs/design.md): a stale word that looks like a pointer
// (seen in practice: padding bytes of recycled malloc memory inside a live node) may keep
// a garbage node alive. Tests that count live objects while a structure still exists allow
// that many of `garbage` nodes to survive a cycle; the structures make sure one false
// reference retains one node, not a chain.
constexpr std::uint64_t false_retention_allowance(std::uint64_t garbage) {
  return 8 + garbage / 50;
}

class CollectorLoop {
 public:
  CollectorLoop() : thread_([this] { run(); }) {}
  ~CollectorLoop() { stop(); }
  CollectorLoop(const CollectorLoop&) = delete;
  CollectorLoop& operator=(const CollectorLoop&) = delete;

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t max_live_objects() const { return max_live_.load(); }
  std::uint64_t cycles() const { return cycles_.load(); }
  // Waits until a cycle completes after this call (at most 30 s): a worker that calls it
  // every N operations has cycles overlap its work however the machine schedules threads.
  void await_next_cycle() const {
    const std::uint64_t seen = cycles_.load();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (cycles_.load() == seen && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

 private:
  void run() {
    while (!stop_.load()) {
      sample();  // just before a cycle: everything allocated since the last one
      if (cmr::collect()) cycles_.fetch_add(1);
    }
    sample();
  }
  void sample() {
    std::uint64_t live = cmr::stats().live_objects;
    if (live > max_live_.load()) max_live_.store(live);
  }

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> max_live_{0};
  std::atomic<std::uint64_t> cycles_{0};
  std::thread thread_;  // last: started once the fields above exist
};

// Runs body(thread, round) on `threads` threads for `rounds` rounds. After each round, while
// every worker waits at a barrier holding no guard, runs a full cycle and records the live
// tracked-object count it leaves: the structure's own nodes plus false retention, if the
// round's garbage was really reclaimable.
template <class Body>
std::vector<std::uint64_t> run_rounds(int threads, int rounds, Body body) {
  std::barrier sync(threads + 1);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&sync, &body, t, rounds] {
      for (int r = 0; r < rounds; ++r) {
        body(t, r);
        sync.arrive_and_wait();  // round done
        sync.arrive_and_wait();  // cycle done
      }
    });
  }
  std::vector<std::uint64_t> live_after_round;
  for (int r = 0; r < rounds; ++r) {
    sync.arrive_and_wait();
    live_after_round.push_back(collect_and_count_live());
    sync.arrive_and_wait();
  }
  for (auto& w : workers) w.join();
  return live_after_round;
}

// The two concurrent checks every keyed structure gets, while cycles run (each worker
// waits for a fresh cycle every kCycleEvery operations, so cycles overlap the work
// however the machine schedules threads).
inline constexpr int kCycleEvery = 20000;

struct KeysReport {
  int mismatches = 0;   // operations whose result disagreed with the model
  int wrong_at_end = 0; // keys whose final presence disagrees with the model
  std::uint64_t cycles = 0;
};

// Threads own disjoint keys (key k belongs to thread k % threads), interleaved in one
// structure so that every thread's keys neighbour the others': each thread must see
// exactly its own sequential history.
template <class Set>
KeysReport run_own_keys(Set& s, int threads, int keys, int operations) {
  std::atomic<int> mismatches{0};
  CollectorLoop collector;
  std::vector<std::set<int>> models(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_int_distribution<int> slot(0, keys / threads - 1);
      std::uniform_int_distribution<int> op(0, 2);
      std::set<int>& model = models[t];
      for (int i = 0; i < operations; ++i) {
        if (i % kCycleEvery == 0) collector.await_next_cycle();
        const int k = slot(rng) * threads + t;
        bool ok;
        switch (op(rng)) {
          case 0: ok = s.insert(k) == model.insert(k).second; break;
          case 1: ok = s.erase(k) == (model.erase(k) == 1); break;
          default: ok = s.contains(k) == (model.count(k) == 1);
        }
        if (!ok) mismatches.fetch_add(1);
      }
    });
  }
  for (auto& w : workers) w.join();
  collector.stop();
  KeysReport r;
  r.mismatches = mismatches.load();
  for (int k = 0; k < keys; ++k) r.wrong_at_end += s.contains(k) != (models[k % threads].count(k) == 1);
  r.cycles = collector.cycles();
  return r;
}

// Threads fight over the same keys: per key, the successful inserts minus the successful
// erases (over all threads) must be 1 if the key is present at the end and 0 otherwise,
// since inserts and erases of one key alternate in any linearisation.
template <class Set>
KeysReport run_net_count(Set& s, int threads, int keys, int operations) {
  std::vector<std::vector<int>> net(threads, std::vector<int>(keys, 0));
  CollectorLoop collector;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(99 + t);
      std::uniform_int_distribution<int> key(0, keys - 1);
      std::uniform_int_distribution<int> op(0, 2);
      for (int i = 0; i < operations; ++i) {
        if (i % kCycleEvery == 0) collector.await_next_cycle();
        const int k = key(rng);
        switch (op(rng)) {
          case 0: net[t][k] += s.insert(k) ? 1 : 0; break;
          case 1: net[t][k] -= s.erase(k) ? 1 : 0; break;
          default: (void)s.contains(k);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  collector.stop();
  KeysReport r;
  for (int k = 0; k < keys; ++k) {
    int total = 0;
    for (int t = 0; t < threads; ++t) total += net[t][k];
    if (total != (s.contains(k) ? 1 : 0)) ++r.wrong_at_end;
  }
  r.cycles = collector.cycles();
  return r;
}

}  // namespace cmr_ds_test
