// benchmarks/pause/pause_vs_rss.cpp: the pause against the program's resident memory.
//
// Allocates and touches N MiB of unrelated program memory (4 KiB pages, THP off for it),
// starts T registered threads that churn a small tracked structure, then runs C cycles
// and reports the pause that stats() measured for each (handshake + child creation, what
// the threads see): median, p99, max. Run once per (memory, isolate) pair, each in its own
// process. Output: one CSV line
//   allocator,isolate,isolated,app_mib,threads,cycles,pause_p50_us,pause_p99_us,pause_max_us,
//   handshake_p50_us,rss_mib
// Usage: pause_vs_rss <app_mib> <isolate 0|1> [threads=8] [cycles=200]
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <app_mib> <isolate 0|1> [threads] [cycles]\n", argv[0]);
    return 2;
  }
  const std::size_t app_mib = std::strtoull(argv[1], nullptr, 10);
  const bool isolate = std::atoi(argv[2]) != 0;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 8;
  const int cycles = argc > 4 ? std::atoi(argv[4]) : 200;

  // Automatic cycles off: every cycle measured is one of ours.
  cmr::init({.trigger_bytes = std::size_t{1} << 40, .isolate_snapshot = isolate});

  char* app = nullptr;
  if (app_mib != 0) {
    const std::size_t bytes = app_mib << 20;
    app = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (app == MAP_FAILED) return 3;
    ::madvise(app, bytes, MADV_NOHUGEPAGE);  // ordinary pages, as the issue measures
    for (std::size_t i = 0; i < bytes; i += 4096) app[i] = static_cast<char>(i);
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
  cmr::collect();  // learn the mappings' flags once
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  cmr::collect();
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
  std::printf("%s,%d,%d,%zu,%d,%zu,%.1f,%.1f,%.1f,%.1f,%ld\n", s.allocator, isolate ? 1 : 0,
              s.snapshot_isolated ? 1 : 0, app_mib, threads, pauses.size(), pct(0.5), pct(0.99),
              pauses.empty() ? 0.0 : pauses.back(), hs50, rss_mib());
  if (app != nullptr) ::munmap(app, app_mib << 20);
  return 0;
}
