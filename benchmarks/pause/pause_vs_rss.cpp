// benchmarks/pause/pause_vs_rss.cpp: the pause against the program's resident memory.
//
// Allocates and touches N MiB of unrelated program memory (by default 4 KiB pages, THP off
// for it; --kind K makes it of kind K instead, harness/program_memory.hpp, --before makes
// it before cmr starts),
// optionally L MiB of live tracked objects (a list from a Root), starts T registered
// threads that churn a small tracked structure, then runs C cycles and reports the pause
// that stats() measured for each (handshake + child creation, what the threads see):
// median, p99, max. Run once per configuration, each in its own process.
// The child needs the tracked heap, so its resident pages are copied into it whatever the
// isolation: heap_rss_mib reports them, and L lets the series show that cost apart from
// the program's memory. During the warm-up a cycle runs every 10 ms, as automatic cycles
// would keep up with this churn; without them the churn's garbage of the warm-up would
// stay resident in the allocator and be part of every later clone.
// Output: one CSV line
//   allocator,isolate,isolated,app_mib,threads,cycles,pause_p50_us,pause_p99_us,pause_max_us,
//   handshake_p50_us,rss_mib,live_mib,heap_rss_mib,in_pause (cycles of those marked in the
//   pause, without a child),kind,made (before|after init)
// Usage: pause_vs_rss [--kind K] [--before] <app_mib> <isolate 0|1> [threads=8] [cycles=200]
//        [live_mib=0]; K is one of plain nohugepage hugepage mlock noreserve populate file
//        split mremap small stacks (default: nohugepage).
// Environment: CMR_BENCH_PAUSE_MARK_US, Options::pause_mark_budget (0: a child every cycle).
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

#include "harness/program_memory.hpp"

namespace {

struct Node {
  cmr::Atomic<Node> next;
  long value = 0;
};

long rss_mib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4096 / (1 << 20);
}

// Resident MiB of the mapping that holds `p` (the tracked heap's region), from smaps.
long mapping_rss_mib(const void* p) {
  const auto a = reinterpret_cast<unsigned long>(p);
  long rss_kib = 0;
  bool inside = false;
  char line[512];
  if (FILE* f = std::fopen("/proc/self/smaps", "r")) {
    while (std::fgets(line, sizeof line, f) != nullptr) {
      unsigned long lo = 0, hi = 0;
      if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping header line
        inside = lo <= a && a < hi;
        continue;
      }
      if (inside && std::strncmp(line, "Rss:", 4) == 0) rss_kib = std::atol(line + 4);
    }
    std::fclose(f);
  }
  return rss_kib / 1024;
}

struct Payload {
  cmr::Atomic<Payload> next;
  char bytes[1024 - sizeof(cmr::Atomic<Payload>)] = {};
};

}  // namespace

int main(int argc, char** argv) {
  cmr::bench::MemoryKind kind = cmr::bench::MemoryKind::nohugepage;
  bool before = false;
  std::vector<char*> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--before") == 0) {
      before = true;
    } else if (std::strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
      if (!cmr::bench::parse_memory_kind(argv[++i], kind)) {
        std::fprintf(stderr, "pause_vs_rss: unknown --kind '%s'\n", argv[i]);
        return 2;
      }
    } else {
      args.push_back(argv[i]);
    }
  }
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: %s [--kind K] [--before] <app_mib> <isolate 0|1> [threads] [cycles] [live_mib]\n",
                 argv[0]);
    return 2;
  }
  const std::size_t app_mib = std::strtoull(args[0], nullptr, 10);
  const bool isolate = std::atoi(args[1]) != 0;
  const int threads = args.size() > 2 ? std::atoi(args[2]) : 8;
  const int cycles = args.size() > 3 ? std::atoi(args[3]) : 200;
  const std::size_t live_mib = args.size() > 4 ? std::strtoull(args[4], nullptr, 10) : 0;

  // Automatic cycles off: every cycle measured is one of ours. CMR_BENCH_PAUSE_MARK_US sets
  // Options::pause_mark_budget (0: every cycle creates a scanner child).
  cmr::Options options{.trigger_bytes = std::size_t{1} << 40,
                       .trigger_interval = std::chrono::milliseconds(0),
                       .isolate_snapshot = isolate};
  if (const char* us = std::getenv("CMR_BENCH_PAUSE_MARK_US"))
    options.pause_mark_budget = std::chrono::microseconds(std::strtoll(us, nullptr, 10));

  std::unique_ptr<cmr::bench::ProgramMemory> app;
  auto make_app = [&] {
    if (app_mib == 0) return true;
    app = std::make_unique<cmr::bench::ProgramMemory>(kind, app_mib << 20, app_mib << 20);
    if (!app->ok()) {
      std::fprintf(stderr, "pause_vs_rss: %s memory: %s%s\n", cmr::bench::memory_kind_name(kind),
                   app->error().c_str(), app->skipped().c_str());
      return false;
    }
    return true;
  };
  if (before && !make_app()) return 3;
  cmr::init(options);
  if (!before && !make_app()) return 3;

  cmr::Root<Payload> live;
  {
    cmr::Guard<Payload> g;
    for (std::size_t i = 0; i < live_mib * 1024; ++i) {
      Payload* p = cmr::make<Payload>(g);
      p->next.store(live.load());
      live.store(p);
    }
  }
  cmr::Root<Node> head;
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      cmr::Guard<Node> g, h;
      while (!stop.load(std::memory_order_relaxed)) {
        Node* n = cmr::make<Node>(g);
        Node* old = h.protect(head);
        n->next.store(old);
        head.compare_exchange_strong(old, n);  // a short list churns; the rest is garbage
        if (n->value++ % 64 == 0) head.store(nullptr);
        std::this_thread::yield();
      }
    });

  std::vector<double> pauses, handshakes;
  // Warm-up, 0.5 s: the churn's allocator state settles, and the isolation learns the
  // mappings' fork flags.
  for (int i = 0; i < 50; ++i) {
    cmr::collect();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::uint64_t in_pause_before = cmr::stats().marked_in_pause;
  for (int c = 0; c < cycles; ++c) {
    if (cmr::collect()) {
      const cmr::Stats s = cmr::stats();
      pauses.push_back(s.last_pause.count() / 1e3);
      handshakes.push_back(s.last_handshake.count() / 1e3);
    }
  }
  stop = true;
  for (auto& w : workers) w.join();
  std::sort(pauses.begin(), pauses.end());
  std::sort(handshakes.begin(), handshakes.end());
  auto pct = [&](double p) {
    return pauses.empty() ? 0.0 : pauses[std::min(pauses.size() - 1, static_cast<std::size_t>(p * pauses.size()))];
  };
  const cmr::Stats s = cmr::stats();
  const double hs50 = handshakes.empty() ? 0.0 : handshakes[handshakes.size() / 2];
  long heap_rss = 0;
  {
    cmr::Guard<Node> g;
    heap_rss = mapping_rss_mib(cmr::make<Node>(g));
  }
  const cmr::Stats end = cmr::stats();
  std::printf("%s,%d,%d,%zu,%d,%zu,%.1f,%.1f,%.1f,%.1f,%ld,%zu,%ld,%llu,%s,%s\n", s.allocator,
              isolate ? 1 : 0, s.snapshot_isolated ? 1 : 0, app_mib, threads, pauses.size(),
              pct(0.5), pct(0.99), pauses.empty() ? 0.0 : pauses.back(), hs50, rss_mib(),
              live_mib, heap_rss,
              static_cast<unsigned long long>(end.marked_in_pause - in_pause_before),
              cmr::bench::memory_kind_name(kind), before ? "before" : "after");
  return 0;
}
