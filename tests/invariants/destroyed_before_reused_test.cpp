// tests/invariants/destroyed_before_reused_test.cpp: invariant 8, destroyed before reused.
//
// A garbage object's destructor runs before any allocation can hand its slot out again.
// The test holds the collector inside the first destructor of a block of garbage (the
// destructor waits for the test), and meanwhile the thread that owns the block allocates
// many objects of the same size: none may land on a garbage slot, destroyed or not, since
// the block's slots are released only after every destructor of the block ran. Once the
// destructors are let go, the same allocations do reuse the slots (the test can see reuse).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "invariants/invariants.hpp"

namespace {

std::atomic<bool> g_hold_first{false};   // the first destructor waits while this is true
std::atomic<bool> g_in_destructor{false};
std::atomic<int> g_victims_destroyed{0};

struct Victim {
  explicit Victim(int v) : value(v) {}
  ~Victim() {
    if (g_victims_destroyed.fetch_add(1) == 0) {
      g_in_destructor.store(true);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (g_hold_first.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  int value;
  std::uint64_t pad[5] = {};
};

TEST(DestroyedBeforeReused, NoAllocationGetsAGarbageSlotWhileItsBlockIsBeingDestroyed) {
  constexpr int kGarbage = 512;
  ASSERT_TRUE(cmr::collect());  // earlier tests' garbage gone: this block is ours
  g_victims_destroyed = 0;
  g_in_destructor = false;
  g_hold_first = true;
  std::set<std::uintptr_t> garbage;
  {
    cmr::Guard<Victim> g;
    for (int i = 0; i < kGarbage; ++i)
      garbage.insert(reinterpret_cast<std::uintptr_t>(cmr::make<Victim>(g, i)));
  }
  std::thread collector([] { EXPECT_TRUE(cmr::collect()); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!g_in_destructor.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  ASSERT_TRUE(g_in_destructor.load()) << "no cycle reached the garbage";

  // The collector is inside the first destructor: the garbage is not released yet.
  cmr::Root<Victim> keep[4 * kGarbage];
  int reused_early = 0;
  {
    cmr::Guard<Victim> g;
    for (auto& k : keep) {
      Victim* v = cmr::make<Victim>(g, -1);
      k.store(v);
      reused_early += garbage.count(reinterpret_cast<std::uintptr_t>(v)) != 0;
    }
  }
  EXPECT_EQ(reused_early, 0) << "a slot was handed out before its object was destroyed";
  EXPECT_LT(g_victims_destroyed.load(), kGarbage) << "the destructor did not hold the cycle";
  g_hold_first = false;
  collector.join();
  EXPECT_EQ(g_victims_destroyed.load(), kGarbage);

  // Released now: the owner's next allocations take the slots back.
  for (auto& k : keep) k.store(nullptr);
  ASSERT_TRUE(cmr::collect());
  int reused_after = 0;
  {
    cmr::Guard<Victim> g;
    for (auto& k : keep) {
      Victim* v = cmr::make<Victim>(g, -2);
      k.store(v);
      reused_after += garbage.count(reinterpret_cast<std::uintptr_t>(v)) != 0;
    }
  }
  EXPECT_GT(reused_after, 0) << "the test cannot observe reuse";
  for (auto& k : keep) k.store(nullptr);
}

}  // namespace
