// examples/natarajan_mittal_tree_example.cpp: a concurrent set of reserved seat numbers with
// cmr::ds::NatarajanMittalTree. Booking threads claim random seats (insert succeeds for
// exactly one thread per seat) and cancel some of their own bookings, while an usher
// thread looks seats up without locks. Cancelled seats' nodes are freed by cmr, although
// the usher may be walking through them when they are unlinked.
#include <cmr/cmr.hpp>
#include <cmr/ds/natarajan_mittal_tree.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

int main() {
  constexpr int kBookers = 4;
  constexpr int kAttempts = 50000;
  constexpr std::uint32_t kSeats = 20000;

  cmr::ds::NatarajanMittalTree<std::uint32_t> reserved;
  std::atomic<int> booked{0};
  std::atomic<int> cancelled{0};
  std::atomic<bool> done{false};

  std::thread usher([&] {
    std::uint64_t lookups = 0;
    std::uint64_t taken = 0;
    std::mt19937 rng(99);
    while (!done.load()) {
      taken += reserved.contains(rng() % kSeats) ? 1 : 0;
      ++lookups;
    }
    std::printf("usher: %llu lookups, %llu found a seat taken\n",
                static_cast<unsigned long long>(lookups), static_cast<unsigned long long>(taken));
  });

  std::vector<std::thread> bookers;
  for (int b = 0; b < kBookers; ++b) {
    bookers.emplace_back([&, b] {
      std::mt19937 rng(b);
      std::vector<std::uint32_t> mine;
      for (int i = 0; i < kAttempts; ++i) {
        const std::uint32_t seat = rng() % kSeats;
        if (reserved.insert(seat)) mine.push_back(seat);  // true for one thread per seat
        if (i % 3 == 0 && !mine.empty()) {                // change of plans
          if (reserved.erase(mine.back())) cancelled.fetch_add(1);
          mine.pop_back();
        }
      }
      booked.fetch_add(static_cast<int>(mine.size()));
    });
  }
  for (auto& t : bookers) t.join();
  done.store(true);
  usher.join();

  std::uint32_t present = 0;
  for (std::uint32_t s = 0; s < kSeats; ++s) present += reserved.contains(s) ? 1 : 0;

  cmr::collect();  // a quiet point: every node unlinked so far is garbage now
  const cmr::Stats st = cmr::stats();
  std::printf("seats held: %d (tree says %u), cancellations: %d\n", booked.load(), present,
              cancelled.load());
  // Two nodes per seat held, five sentinels: what is left after the cycle.
  std::printf("cycles: %llu, nodes freed: %llu, live tracked objects: %llu (2 x %u + 5)\n",
              static_cast<unsigned long long>(st.cycles),
              static_cast<unsigned long long>(st.objects_freed),
              static_cast<unsigned long long>(st.live_objects), present);
  return static_cast<std::uint32_t>(booked.load()) == present ? 0 : 1;
}
