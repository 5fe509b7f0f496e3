// examples/hash_set_example.cpp: concurrent de-duplication with cmr::ds::HashSet. Several
// crawler threads "discover" URLs, many of them repeated; the set lets exactly one thread
// claim each URL. Readers look URLs up without locks while others insert and erase.
#include <cmr/cmr.hpp>
#include <cmr/ds/hash_set.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

int main() {
  constexpr int kCrawlers = 4;
  constexpr int kDiscoveries = 100000;
  constexpr int kDistinctUrls = 20000;

  cmr::ds::HashSet<std::string> visited(8192);
  std::atomic<int> claimed{0};

  std::vector<std::thread> crawlers;
  for (int c = 0; c < kCrawlers; ++c) {
    crawlers.emplace_back([&, c] {
      std::mt19937 rng(c);
      std::uniform_int_distribution<int> page(0, kDistinctUrls - 1);
      int mine = 0;
      for (int i = 0; i < kDiscoveries; ++i) {
        std::string url = "https://example.org/page/" + std::to_string(page(rng));
        // insert() returns true for exactly one thread per URL.
        if (visited.insert(std::move(url))) ++mine;
      }
      claimed.fetch_add(mine);
    });
  }
  for (auto& t : crawlers) t.join();

  // Forget a slice of the pages, e.g. because they expired; erased keys are destroyed by
  // the collector once no reader can be looking at them.
  int forgotten = 0;
  for (int p = 0; p < kDistinctUrls; p += 10) {
    forgotten += visited.erase("https://example.org/page/" + std::to_string(p));
  }

  cmr::collect();
  const cmr::Stats s = cmr::stats();
  std::printf("distinct URLs claimed: %d of %d discoveries; %d forgotten\n", claimed.load(),
              kCrawlers * kDiscoveries, forgotten);
  std::printf("still visited: page/1 %s, page/10 %s\n",
              visited.contains("https://example.org/page/1") ? "yes" : "no",
              visited.contains("https://example.org/page/10") ? "yes" : "no");
  std::printf("cycles: %llu, nodes freed: %llu, live tracked objects: %llu\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed),
              static_cast<unsigned long long>(s.live_objects));
  return 0;
}
