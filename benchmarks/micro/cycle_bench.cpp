// benchmarks/micro/cycle_bench.cpp: what one full cmr::collect() costs as the tracked heap
// grows, for reachable objects and for garbage.
//
//   collect/empty                 nothing tracked: the fixed cost (handshake, clone, wait)
//   collect/live_list/<n>         n nodes in a linked list from a Root, already survivors of
//                                 an earlier cycle: the steady-state cost of a live heap
//                                 (the mark chases n dependent pointers)
//   collect/live_array/<n>        n nodes pointed to from one tracked array held by a Root
//   collect/garbage/<n>           n nodes allocated and dropped just before the cycle: all
//                                 are candidates, none is scanned, all are freed
//   collect/live1000_garbage/<n>  a 1000-node list from a Root plus n garbage nodes: what a
//                                 cycle costs as the garbage grows and the live set does
//                                 not; each timed collect() follows 10 ms of rest, and the
//                                 medians of 7 repetitions are reported
//
// Time is the wall time of collect() alone (UseManualTime; setup is untimed), which returns
// once the cycle's garbage is freed. Counters, averaged over iterations, from cmr::stats():
//   pause_us    threads held (handshake + clone); grows with the mappings clone copies
//   scan_us     the scanner child's time
//   candidates  objects the cycle examined;  words  words the child scanned
//   freed       objects freed per cycle;      ns_per_obj  collect time / n
// Automatic cycles are disabled (huge trigger_bytes, no trigger_interval) so that building a
// heap of 10^6 never starts a cycle of its own and every cycle measured is one of ours.
#include <benchmark/benchmark.h>

#include <cmr/cmr.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>

namespace {

struct Node {
  explicit Node(std::uint64_t v) : value(v) {}
  cmr::Atomic<Node> next;
  std::uint64_t value;
};

struct Sample {
  double seconds = 0, pause_us = 0, scan_us = 0, candidates = 0, words = 0, freed = 0;
};

// One timed collect(); false (and the benchmark marked failed) if the cycle did not complete.
bool timed_collect(benchmark::State& state, Sample& sum) {
  const cmr::Stats before = cmr::stats();
  const auto t0 = std::chrono::steady_clock::now();
  const bool ok = cmr::collect();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.SetIterationTime(seconds);
  if (!ok) {
    state.SkipWithError("cmr::collect() returned false (cycle aborted or failed)");
    return false;
  }
  const cmr::Stats after = cmr::stats();
  sum.seconds += seconds;
  sum.pause_us += std::chrono::duration<double, std::micro>(after.last_pause).count();
  sum.scan_us += std::chrono::duration<double, std::micro>(after.last_scan).count();
  sum.candidates += static_cast<double>(after.last_candidates);
  sum.words += static_cast<double>(after.last_words_scanned);
  sum.freed += static_cast<double>(after.objects_freed - before.objects_freed);
  return true;
}

// Sums over the iterations; kAvgIterations turns each into a per-cycle value.
void report(benchmark::State& state, const Sample& sum, std::size_t n) {
  using C = benchmark::Counter;
  state.counters["pause_us"] = C(sum.pause_us, C::kAvgIterations);
  state.counters["scan_us"] = C(sum.scan_us, C::kAvgIterations);
  state.counters["candidates"] = C(sum.candidates, C::kAvgIterations);
  state.counters["words"] = C(sum.words, C::kAvgIterations);
  state.counters["freed"] = C(sum.freed, C::kAvgIterations);
  if (n != 0)
    state.counters["ns_per_obj"] =
        C(sum.seconds * 1e9 / static_cast<double>(n), C::kAvgIterations);
}

void BM_empty(benchmark::State& state) {
  cmr::collect();  // drain whatever an earlier benchmark left
  Sample sum;
  for (auto _ : state)
    if (!timed_collect(state, sum)) break;
  report(state, sum, 0);
}

void BM_live_list(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cmr::Root<Node> head;
  {
    cmr::Guard<Node> g;
    for (std::size_t i = 0; i < n; ++i) {
      Node* node = cmr::make<Node>(g, i);
      node->next.store(head.load());
      head.store(node);
    }
  }
  cmr::collect();  // the nodes leave the logs and become survivors
  Sample sum;
  for (auto _ : state)
    if (!timed_collect(state, sum)) break;
  report(state, sum, n);
  head.store(nullptr);
  cmr::collect();  // free the list before the next benchmark builds its own
}

void BM_live_array(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cmr::Root<cmr::Atomic<Node>> table;
  {
    cmr::Guard<cmr::Atomic<Node>> ga;
    cmr::Atomic<Node>* slots = cmr::make_array<cmr::Atomic<Node>>(ga, n);
    table.store(slots);
    cmr::Guard<Node> g;
    for (std::size_t i = 0; i < n; ++i) slots[i].store(cmr::make<Node>(g, i));
  }
  cmr::collect();
  Sample sum;
  for (auto _ : state)
    if (!timed_collect(state, sum)) break;
  report(state, sum, n);
  table.store(nullptr);
  cmr::collect();
}

void BM_garbage(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cmr::collect();
  Sample sum;
  for (auto _ : state) {
    {
      // Each make replaces the guard's previous object: n unreachable nodes. Untimed (manual
      // time covers only collect()).
      cmr::Guard<Node> g;
      for (std::size_t i = 0; i < n; ++i) benchmark::DoNotOptimize(cmr::make<Node>(g, i));
    }
    if (!timed_collect(state, sum)) break;
  }
  report(state, sum, n);
}

void BM_live1000_garbage(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  cmr::Root<Node> head;
  {
    cmr::Guard<Node> g;
    for (std::size_t i = 0; i < 1000; ++i) {
      Node* node = cmr::make<Node>(g, i);
      node->next.store(head.load());
      head.store(node);
    }
  }
  cmr::collect();
  Sample sum;
  for (auto _ : state) {
    {
      cmr::Guard<Node> g;  // untimed: n nodes, unreachable once the guard moves on
      for (std::size_t i = 0; i < n; ++i) benchmark::DoNotOptimize(cmr::make<Node>(g, i));
    }
    // Untimed, the same for every n: past the spacing between cycles (4x the last pause),
    // which a short build would otherwise still be inside of, and past the aftermath of a
    // large one (measured: for 1 ms after 16 MiB of fresh allocations the handshake took
    // 3-6x longer).
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!timed_collect(state, sum)) break;
  }
  report(state, sum, n);
  head.store(nullptr);
  cmr::collect();
}

// Few iterations for the big heaps: a 10^6 cycle takes tens of milliseconds and building the
// garbage for it (every iteration) longer still; the whole binary should run in seconds.
int iterations_for(std::size_t n) {
  if (n <= 1000) return 50;
  if (n <= 10000) return 20;
  if (n <= 100000) return 8;
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  cmr::Options options;
  options.trigger_bytes = std::size_t{1} << 40;
  options.trigger_interval = std::chrono::milliseconds(0);
  cmr::init(options);

  benchmark::RegisterBenchmark("collect/empty", BM_empty)
      ->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
  for (std::size_t n : {std::size_t{1000}, std::size_t{10000}, std::size_t{100000},
                        std::size_t{1000000}}) {
    for (auto [name, fn] : {std::pair{"collect/live_list", &BM_live_list},
                            std::pair{"collect/live_array", &BM_live_array},
                            std::pair{"collect/garbage", &BM_garbage}}) {
      benchmark::RegisterBenchmark(name, fn)
          ->Arg(static_cast<std::int64_t>(n))
          ->UseManualTime()
          ->Iterations(iterations_for(n))
          ->Unit(benchmark::kMicrosecond);
    }
  }
  // The cost as the garbage grows beside a fixed live set: the medians of 7 repetitions
  // are what to compare (a cycle this short is at the mercy of one late wake-up).
  for (std::size_t n : {std::size_t{1000}, std::size_t{10000}, std::size_t{100000},
                        std::size_t{1000000}})
    benchmark::RegisterBenchmark("collect/live1000_garbage", &BM_live1000_garbage)
        ->Arg(static_cast<std::int64_t>(n))
        ->UseManualTime()
        ->Iterations(10)
        ->Repetitions(7)
        ->ReportAggregatesOnly(true)
        ->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
