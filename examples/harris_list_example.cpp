// examples/harris_list_example.cpp: a small lock-free ordered set with cmr::ds::HarrisList.
// Worker threads hold leases on a few dozen resource ids: each takes an id (insert succeeds
// for exactly one thread), keeps it a while, and gives it back (erase). Leases on
// neighbouring ids are given back at the same time, so Harris's search often cuts several
// erased nodes out at once. A monitor asks contains() without locks meanwhile. Nobody frees
// a node: the collector reclaims each erased one once no thread can still be reading it.
#include <cmr/cmr.hpp>
#include <cmr/ds/harris_list.hpp>

#include <atomic>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

int main() {
  constexpr int kWorkers = 4;
  constexpr int kIds = 64;
  constexpr int kRequests = 50000;

  cmr::ds::HarrisList<int> leased;
  std::atomic<long> granted{0};
  std::atomic<long> refused{0};
  std::atomic<bool> done{false};

  std::thread monitor([&] {
    long seen = 0;
    while (!done.load()) seen += leased.contains(kIds / 2) ? 1 : 0;
    std::printf("monitor: id %d was leased in %ld of its lookups\n", kIds / 2, seen);
  });

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(w);
      std::uniform_int_distribution<int> id(0, kIds - 1);
      std::vector<int> mine;
      for (int i = 0; i < kRequests; ++i) {
        const int want = id(rng);
        if (leased.insert(want)) {  // true for exactly one thread while the id is leased
          mine.push_back(want);
          granted.fetch_add(1, std::memory_order_relaxed);
        } else {
          refused.fetch_add(1, std::memory_order_relaxed);
        }
        if (mine.size() == 4) {  // give the leases back
          for (int held : mine) leased.erase(held);
          mine.clear();
        }
      }
      for (int held : mine) leased.erase(held);
    });
  }
  for (auto& t : workers) t.join();
  done.store(true);
  monitor.join();

  int still = 0;
  for (int i = 0; i < kIds; ++i) still += leased.contains(i) ? 1 : 0;
  cmr::collect();  // a quiet point: every erased node is garbage now
  const cmr::Stats s = cmr::stats();
  std::printf("leases granted: %ld, refused: %ld, still leased: %d\n", granted.load(),
              refused.load(), still);
  std::printf("cycles: %llu, nodes freed: %llu, live tracked objects: %llu\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed),
              static_cast<unsigned long long>(s.live_objects));
  return still == 0 ? 0 : 1;
}
