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

TEST(HashSet, KeepsEachThreadsOwnKeysExactWhileOthersShareItsLists) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 2048;         // key k belongs to thread k % kThreads
  constexpr std::size_t kBuckets = 32;  // ~64 keys per list, all threads in every list
  constexpr int kOperations = 100000;

  HashSet<int> s(kBuckets);
  std::atomic<int> mismatches{0};
  CollectorLoop collector;
  std::vector<std::set<int>> models(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_int_distribution<int> slot(0, kKeys / kThreads - 1);
      std::uniform_int_distribution<int> op(0, 2);
      std::set<int>& model = models[t];
      for (int i = 0; i < kOperations; ++i) {
        if (i % 20000 == 0) collector.await_next_cycle();  // cycles overlap the operations
        const int k = slot(rng) * kThreads + t;
        bool ok;
        switch (op(rng)) {
          case 0: ok = s.insert(k) == model.insert(k).second; break;
          case 1: ok = s.erase(k) == (model.erase(k) == 1); break;
          default: ok = s.contains(k) == (model.count(k) == 1);
        }
        if (!ok) mismatches.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  collector.stop();

  EXPECT_EQ(mismatches.load(), 0);
  int wrong = 0;
  for (int k = 0; k < kKeys; ++k) wrong += s.contains(k) != (models[k % kThreads].count(k) == 1);
  EXPECT_EQ(wrong, 0);
  EXPECT_GE(collector.cycles(), 5u);
}

TEST(HashSet, AgreesWithTheNetCountOfSuccessfulInsertsAndErases) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 256;
  constexpr std::size_t kBuckets = 8;
  constexpr int kOperations = 100000;

  HashSet<int> s(kBuckets);
  // Per thread, per key: successful inserts minus successful erases.
  std::vector<std::vector<int>> net(kThreads, std::vector<int>(kKeys, 0));
  CollectorLoop collector;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(99 + t);
      std::uniform_int_distribution<int> key(0, kKeys - 1);
      std::uniform_int_distribution<int> op(0, 2);
      for (int i = 0; i < kOperations; ++i) {
        const int k = key(rng);
        switch (op(rng)) {
          case 0: net[t][k] += s.insert(k) ? 1 : 0; break;
          case 1: net[t][k] -= s.erase(k) ? 1 : 0; break;
          default: (void)s.contains(k);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  collector.stop();

  int wrong = 0;
  for (int k = 0; k < kKeys; ++k) {
    int total = 0;
    for (int t = 0; t < kThreads; ++t) total += net[t][k];
    // Inserts and erases of one key alternate in any linearisation, starting with an insert.
    if (total != (s.contains(k) ? 1 : 0)) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
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
