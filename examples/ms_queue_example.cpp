// examples/ms_queue_example.cpp: a pipeline of producers and consumers passing move-only
// jobs through cmr::ds::MsQueue. Nobody frees a node: cmr's collector does, in the
// background, and the numbers it prints at the end show how many it reclaimed.
#include <cmr/cmr.hpp>
#include <cmr/ds/ms_queue.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Job {
  int producer;
  std::uint64_t sequence;
  std::string payload;
};

}  // namespace

int main() {
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr std::uint64_t kJobsPerProducer = 200000;

  cmr::ds::MsQueue<std::unique_ptr<Job>> jobs;
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> payload_bytes{0};

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&jobs, p] {
      for (std::uint64_t i = 0; i < kJobsPerProducer; ++i) {
        jobs.push(std::make_unique<Job>(Job{p, i, "job " + std::to_string(i)}));
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      const std::uint64_t total = kProducers * kJobsPerProducer;
      while (done.load(std::memory_order_relaxed) < total) {
        if (std::optional<std::unique_ptr<Job>> job = jobs.try_pop()) {
          payload_bytes.fetch_add((*job)->payload.size(), std::memory_order_relaxed);
          done.fetch_add(1, std::memory_order_relaxed);
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  // A quiet point: run one cycle so the numbers below include every dequeued node.
  cmr::collect();
  const cmr::Stats s = cmr::stats();
  std::printf("jobs done: %llu (%llu payload bytes)\n",
              static_cast<unsigned long long>(done.load()),
              static_cast<unsigned long long>(payload_bytes.load()));
  // Still live: the queue's dummy node (and, rarely, a node a stale word kept alive: cmr's
  // scan is conservative).
  std::printf("cycles: %llu, nodes freed: %llu, still live: %llu\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed),
              static_cast<unsigned long long>(s.live_objects));
  std::printf("longest pause: %.3f ms\n", static_cast<double>(s.max_pause.count()) / 1e6);
  return 0;
}
