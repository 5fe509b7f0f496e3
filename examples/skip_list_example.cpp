// examples/skip_list_example.cpp: a timer queue on cmr::ds::SkipListSet. Producer threads
// schedule timers, keyed by (deadline, id) so that keys are unique and ordered by deadline;
// a reaper thread repeatedly scans the timers that are due, [0, now), and claims each with
// erase(), whose result says which thread fired it; a producer also cancels some of its own
// timers. Nothing is locked, and erased timers are destroyed by the collector.
#include <cmr/cmr.hpp>
#include <cmr/ds/skip_list_set.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <thread>
#include <vector>

struct Timer {
  std::uint64_t deadline;  // in ticks of the example's own clock
  std::uint64_t id;
  bool operator<(const Timer& o) const {
    return deadline != o.deadline ? deadline < o.deadline : id < o.id;
  }
};

int main() {
  constexpr int kProducers = 3;
  constexpr std::uint64_t kTimersEach = 50000;

  cmr::ds::SkipListSet<Timer> timers;
  std::atomic<std::uint64_t> clock{0};  // advanced by the reaper
  std::atomic<int> producers_left{kProducers};
  std::atomic<std::uint64_t> cancelled{0};

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937_64 rng(p);
      std::uint64_t mine = 0;
      for (std::uint64_t i = 0; i < kTimersEach; ++i) {
        const Timer t{clock.load() + 1 + rng() % 1000, i * kProducers + p};
        timers.insert(t);
        // Cancel every tenth timer again; it may have fired already, then erase says so.
        if (i % 10 == 0 && timers.erase(t)) ++mine;
      }
      cancelled.fetch_add(mine);
      producers_left.fetch_sub(1);
    });
  }

  std::uint64_t fired = 0, scans = 0;
  std::thread reaper([&] {
    for (;;) {
      const bool last = producers_left.load() == 0;
      const std::uint64_t now =
          last ? std::numeric_limits<std::uint64_t>::max() : clock.fetch_add(1);
      // Due timers, in deadline order. A timer scheduled during the scan may be seen or
      // left for the next one; erase() makes each fire exactly once.
      timers.for_each_in(Timer{0, 0}, Timer{now, 0}, [&](const Timer& t) {
        if (timers.erase(t)) ++fired;
      });
      ++scans;
      if (last) break;
    }
  });
  for (auto& t : producers) t.join();
  reaper.join();

  cmr::collect();
  const cmr::Stats s = cmr::stats();
  std::printf("timers: %llu scheduled, %llu fired in %llu scans, %llu cancelled, %s left\n",
              static_cast<unsigned long long>(kProducers * kTimersEach),
              static_cast<unsigned long long>(fired), static_cast<unsigned long long>(scans),
              static_cast<unsigned long long>(cancelled.load()),
              fired + cancelled.load() == kProducers * kTimersEach ? "none" : "some");
  std::printf("levels in use: %zu\n", timers.levels_in_use());
  std::printf("cycles: %llu, objects freed: %llu, live tracked objects: %llu\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed),
              static_cast<unsigned long long>(s.live_objects));
  return fired + cancelled.load() == kProducers * kTimersEach ? 0 : 1;
}
