// tests/ds/hash_set_stress_test.cpp: cmr::ds::HashSet under contention while another thread
// runs collections back to back. Threads that own disjoint keys sharing the same lists must
// each see exactly their own sequential history; threads fighting over the same keys must
// leave every key present iff its successful inserts outnumber its successful erases; and
// erased nodes must be reclaimed as the run goes.
#include <cmr/ds/hash_set.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::HashSet;
using cmr_ds_test::CollectorLoop;

// 2048 keys in 32 buckets: ~64 keys per list, every thread in every list.
TEST(HashSet, KeepsEachThreadsOwnKeysExactWhileOthersShareItsLists) {
  HashSet<int> s(32);
  const auto r = cmr_ds_test::run_own_keys(s, 4, 2048, 100000);
  EXPECT_EQ(r.mismatches, 0);
  EXPECT_EQ(r.wrong_at_end, 0);
  EXPECT_GE(r.cycles, 5u);
}

TEST(HashSet, AgreesWithTheNetCountOfSuccessfulInsertsAndErases) {
  HashSet<int> s(8);
  const auto r = cmr_ds_test::run_net_count(s, 4, 256, 100000);
  EXPECT_EQ(r.wrong_at_end, 0);
  EXPECT_GE(r.cycles, 1u);
}

// Threads insert and erase random keys of a small range, so the set never holds more than
// kKeys nodes while every successful insert makes one. Between rounds a full cycle must
// bring the heap back to the set's own nodes; while the rounds run it must never hold much
// more than one round of garbage.
TEST(HashSet, KeepsLiveObjectsBoundedDuringALongRun) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 12;
  constexpr int kKeys = 512;
  constexpr std::size_t kBuckets = 64;
  constexpr int kOperationsPerRound = 25000;  // per thread, half of them inserts
  // Each insert attempt makes at most one node.
  constexpr std::uint64_t kRoundGarbage = kThreads * kOperationsPerRound / 2;
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  std::atomic<std::uint64_t> inserted{0};
  {
    HashSet<int> s(kBuckets);
    CollectorLoop collector;
    const std::vector<std::uint64_t> live_after_round =
        cmr_ds_test::run_rounds(kThreads, kRounds, [&](int t, int round) {
          std::mt19937 rng(static_cast<unsigned>(7 + t + kThreads * round));
          std::uniform_int_distribution<int> key(0, kKeys - 1);
          std::uint64_t mine = 0;
          for (int i = 0; i < kOperationsPerRound; ++i) {
            const int k = key(rng);
            if (i % 2 == 0) {
              mine += s.insert(k) ? 1 : 0;
            } else {
              (void)s.erase(k);
            }
          }
          inserted.fetch_add(mine);
        });
    collector.stop();

    ASSERT_GT(inserted.load(), kRounds * kRoundGarbage / 4) << "too few inserts to show anything";
    for (int r = 0; r < kRounds; ++r) {
      // The bucket array and at most kKeys nodes.
      EXPECT_LE(live_after_round[r], baseline + 1 + kKeys + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(), baseline + 1 + kKeys + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before, inserted.load() - kKeys - allowance);
    int present = 0;
    for (int k = 0; k < kKeys; ++k) present += s.contains(k);
    const std::uint64_t live = cmr_ds_test::collect_and_count_live();
    EXPECT_GE(live, baseline + 1 + present);
    EXPECT_LE(live, baseline + 1 + present + allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

}  // namespace
