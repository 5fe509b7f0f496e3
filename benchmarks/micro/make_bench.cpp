// benchmarks/micro/make_bench.cpp: the allocation cost of cmr::make when every object
// becomes garbage at once, against malloc-backed new/delete and against new alone.
//
//   make/base_new_delete/<bytes>  new + delete at once: the allocator's hot LIFO path
//   make/leak_new/<bytes>         new only (freed in large untimed batches): what allocation
//                                 costs when freeing is someone else's problem
//   make/cmr_make/<bytes>         cmr::make into one guard, so the previous object is garbage
//
// Garbage triggers collection cycles in the background (Options::trigger_bytes); the handshake
// interrupts the benchmark thread, and the collector thread runs destructors and frees. CPU
// time is the process's (MeasureProcessCPUTime), so it includes the collector thread's
// freeing; it does not include the scanner child, a separate process. The counters come from
// cmr::stats() deltas over the timed loop:
//   cycles             completed cycles during the run
//   freed_per_op       objects freed per make (< 1: collection lags allocation)
//   pause_ns_per_op    the cycles' total pause spread over the makes
//   live_end           tracked objects still live (garbage not yet freed) when the loop ended
//   drained_ns_per_op  wall time of the loop plus one collect() that frees the backlog, per
//                      make: the make-and-reclaim cost (wall: a loaded machine inflates it)
//   failed             cycles aborted or failed during the run (should be 0)
#include <benchmark/benchmark.h>

#include <cmr/cmr.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

template <std::size_t Bytes>
struct Blob {
  static_assert(Bytes >= sizeof(void*) * 2);
  cmr::Atomic<Blob> next;
  unsigned char pad[Bytes - sizeof(void*)];
};
static_assert(sizeof(Blob<16>) == 16 && sizeof(Blob<64>) == 64 && sizeof(Blob<256>) == 256);

template <std::size_t Bytes>
void BM_new_delete(benchmark::State& state) {
  for (auto _ : state) {
    // Value-initialised like make()'s T(): both zero the payload.
    auto* p = new Blob<Bytes>();
    // Escaping the pointer keeps the compiler from eliding the new/delete pair.
    benchmark::DoNotOptimize(p);
    delete p;
  }
}

template <std::size_t Bytes>
void BM_leak_new(benchmark::State& state) {
  // A real leak would grow by gigabytes over a run; batches freed with the timer paused
  // bound memory, and a pause amortised over 64 Ki allocations costs well under 1 ns each.
  constexpr std::size_t kBatch = std::size_t{1} << 16;
  std::vector<Blob<Bytes>*> batch;
  batch.reserve(kBatch);
  for (auto _ : state) {
    auto* p = new Blob<Bytes>();
    benchmark::DoNotOptimize(p);
    batch.push_back(p);
    if (batch.size() == kBatch) [[unlikely]] {
      state.PauseTiming();
      for (auto* q : batch) delete q;
      batch.clear();
      state.ResumeTiming();
    }
  }
  for (auto* q : batch) delete q;
}

template <std::size_t Bytes>
void BM_cmr_make(benchmark::State& state) {
  // Start from a drained heap so that one run's garbage is not charged to the next.
  cmr::collect();
  const cmr::Stats before = cmr::stats();
  const auto t0 = std::chrono::steady_clock::now();
  {
    cmr::Guard<Blob<Bytes>> g;
    for (auto _ : state) {
      auto* p = cmr::make<Blob<Bytes>>(g);
      benchmark::DoNotOptimize(p);
    }
  }
  const cmr::Stats after = cmr::stats();
  // A single allocating thread can outrun the collector, leaving a backlog the timed loop
  // never paid for; freeing it in one more cycle and charging that to the makes gives the
  // make-and-reclaim cost per object.
  cmr::collect();
  const auto t2 = std::chrono::steady_clock::now();
  const double n = static_cast<double>(state.iterations());
  if (n == 0) return;
  state.counters["cycles"] = static_cast<double>(after.cycles - before.cycles);
  state.counters["freed_per_op"] =
      static_cast<double>(after.objects_freed - before.objects_freed) / n;
  state.counters["pause_ns_per_op"] =
      static_cast<double>((after.total_pause - before.total_pause).count()) / n;
  state.counters["live_end"] = static_cast<double>(after.live_objects);
  state.counters["drained_ns_per_op"] =
      std::chrono::duration<double, std::nano>(t2 - t0).count() / n;
  state.counters["failed"] =
      static_cast<double>((after.cycles_aborted - before.cycles_aborted) +
                          (after.cycles_failed - before.cycles_failed));
}

template <std::size_t Bytes>
void register_size(const char* suffix) {
  const std::string s = suffix;
  benchmark::RegisterBenchmark(("make/base_new_delete/" + s).c_str(), BM_new_delete<Bytes>)
      ->MeasureProcessCPUTime();
  benchmark::RegisterBenchmark(("make/leak_new/" + s).c_str(), BM_leak_new<Bytes>)
      ->MeasureProcessCPUTime();
  benchmark::RegisterBenchmark(("make/cmr_make/" + s).c_str(), BM_cmr_make<Bytes>)
      ->MeasureProcessCPUTime();
}

}  // namespace

int main(int argc, char** argv) {
  cmr::init();  // defaults: cycles start after 8 MiB of tracked allocation
  register_size<16>("16");
  register_size<64>("64");
  register_size<256>("256");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
