// tests/ds/skip_list_set_stress_test.cpp: cmr::ds::SkipListSet under contention while
// another thread runs collections back to back. Threads that own disjoint, interleaved keys
// must each see exactly their own sequential history, in lookups and in range scans; threads
// fighting over the same keys must leave every key present iff its successful inserts
// outnumber its successful erases; range scans racing with churn must report every stable
// key of their range, once, in increasing order; erased nodes must be reclaimed as the run
// goes, and every key destroyed exactly once.
#include <cmr/ds/skip_list_set.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::SkipListSet;
using cmr_ds_test::CollectorLoop;
using cmr_ds_test::Counted;

// Key k belongs to thread k % kThreads, so every thread's keys are spread over the whole
// list and its towers; each thread also scans ranges, where its own keys are exactly its
// model's (nobody else changes them) whatever the others do meanwhile.
TEST(SkipListSet, KeepsEachThreadsOwnKeysExactWhileOthersShareItsLevels) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 2048;
  constexpr int kOperations = 80000;

  SkipListSet<int> s;
  std::atomic<int> mismatches{0};
  CollectorLoop collector;
  std::vector<std::set<int>> models(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      std::uniform_int_distribution<int> slot(0, kKeys / kThreads - 1);
      std::uniform_int_distribution<int> op(0, 9);
      std::set<int>& model = models[t];
      for (int i = 0; i < kOperations; ++i) {
        if (i % 10000 == 0) collector.await_next_cycle();  // cycles overlap the operations
        const int k = slot(rng) * kThreads + t;
        const int o = op(rng);
        bool ok;
        if (o < 4) {
          ok = s.insert(k) == model.insert(k).second;
        } else if (o < 7) {
          ok = s.erase(k) == (model.erase(k) == 1);
        } else if (o < 9) {
          ok = s.contains(k) == (model.count(k) == 1);
        } else {
          const int hi = k + 64;
          std::vector<int> mine;
          s.for_each_in(k, hi, [&](const int& key) {
            if (key % kThreads == t) mine.push_back(key);
          });
          ok = mine == std::vector<int>(model.lower_bound(k), model.lower_bound(hi));
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
  EXPECT_GE(collector.cycles(), 4u);
}

// Few keys and many threads: inserts and erases of one key race all the time, so towers are
// erased while their upper levels are still being linked.
TEST(SkipListSet, AgreesWithTheNetCountOfSuccessfulInsertsAndErases) {
  constexpr int kThreads = 4;
  constexpr int kOperations = 60000;

  for (int keys : {16, 256}) {
    SCOPED_TRACE("keys=" + std::to_string(keys));
    SkipListSet<int> s;
    // Per thread, per key: successful inserts minus successful erases.
    std::vector<std::vector<int>> net(kThreads, std::vector<int>(keys, 0));
    CollectorLoop collector;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(99 + t);
        std::uniform_int_distribution<int> key(0, keys - 1);
        std::uniform_int_distribution<int> op(0, 2);
        for (int i = 0; i < kOperations; ++i) {
          if (i % 10000 == 0) collector.await_next_cycle();
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
    std::vector<int> present;
    for (int k = 0; k < keys; ++k) {
      int total = 0;
      for (int t = 0; t < kThreads; ++t) total += net[t][k];
      // Inserts and erases of one key alternate in any linearisation, starting with an
      // insert.
      if (total != (s.contains(k) ? 1 : 0)) ++wrong;
      if (total == 1) present.push_back(k);
    }
    EXPECT_EQ(wrong, 0);
    std::vector<int> scanned;
    s.for_each_in(0, keys, [&](const int& k) { scanned.push_back(k); });
    EXPECT_EQ(scanned, present);
  }
}

// Stable keys (multiples of 4) are inserted first and never erased; churn threads insert and
// erase the keys between them. Scanners check each scan: strictly increasing keys, all in
// [lo, hi), every stable key of the range present. To be sure the scans really race with
// erases and collections, a scan waits, inside its callback, for the churn to erase more keys
// (every other scan) and for a cycle to complete (every 16th scan); the test counts both.
TEST(SkipListSet, ReportsEveryStableKeyOnceAndInOrderWhileOtherKeysChurn) {
  constexpr int kKeys = 4096;
  constexpr int kStableStep = 4;
  constexpr int kChurners = 2;
  constexpr int kScanners = 2;
  constexpr int kScansPerScanner = 300;
  constexpr std::uint64_t kErasesAwaited = 4;  // per waiting scan

  SkipListSet<int> s;
  for (int k = 0; k < kKeys; k += kStableStep) ASSERT_TRUE(s.insert(k));
  std::atomic<std::uint64_t> erases{0};
  std::atomic<bool> scans_done{false};
  std::atomic<int> bad_scans{0};
  std::atomic<int> stable_misses{0};
  std::atomic<std::uint64_t> erases_during_scans{0};
  std::atomic<std::uint64_t> cycles_during_scans{0};
  std::atomic<std::uint64_t> scans{0};
  CollectorLoop collector;

  std::vector<std::thread> threads;
  for (int c = 0; c < kChurners; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(500 + c);
      std::uniform_int_distribution<int> key(0, kKeys - 1);
      while (!scans_done.load()) {
        int k = key(rng);
        if (k % kStableStep == 0) {
          if (!s.contains(k)) stable_misses.fetch_add(1);
          continue;
        }
        if (!s.insert(k) && s.erase(k)) erases.fetch_add(1);
      }
    });
  }
  for (int r = 0; r < kScanners; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(900 + r);
      std::uniform_int_distribution<int> bound(-8, kKeys + 8);
      for (int i = 0; i < kScansPerScanner; ++i) {
        int lo = bound(rng), hi = bound(rng);
        if (hi < lo) std::swap(lo, hi);
        const bool await_erases = i % 2 == 0;
        const bool await_cycle = i % 16 == 0;
        const std::uint64_t erases_before = erases.load();
        const std::uint64_t cycles_before = collector.cycles();
        std::vector<int> seen;
        s.for_each_in(lo, hi, [&](const int& k) {
          if (seen.size() == 1) {  // standing on the second key: the rest is ahead
            if (await_erases) {
              const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
              while (erases.load() < erases_before + kErasesAwaited &&
                     std::chrono::steady_clock::now() < deadline) {
                std::this_thread::yield();
              }
            }
            if (await_cycle) collector.await_next_cycle();
          }
          seen.push_back(k);
        });
        erases_during_scans.fetch_add(erases.load() - erases_before);
        cycles_during_scans.fetch_add(collector.cycles() - cycles_before);
        scans.fetch_add(1);
        bool ok = true;
        int stable_seen = 0;
        for (std::size_t j = 0; j < seen.size(); ++j) {
          if (seen[j] < lo || seen[j] >= hi) ok = false;
          if (j > 0 && seen[j - 1] >= seen[j]) ok = false;  // increasing, so no duplicate
          if (seen[j] % kStableStep == 0) ++stable_seen;
        }
        int stable_expected = 0;
        for (int k = std::max(lo, 0); k < std::min(hi, kKeys); ++k) {
          stable_expected += k % kStableStep == 0;
        }
        if (stable_seen != stable_expected) ok = false;
        if (!ok) bad_scans.fetch_add(1);
      }
    });
  }
  for (int r = 0; r < kScanners; ++r) threads[kChurners + r].join();
  scans_done.store(true);
  for (int c = 0; c < kChurners; ++c) threads[c].join();
  collector.stop();

  EXPECT_EQ(bad_scans.load(), 0);
  EXPECT_EQ(stable_misses.load(), 0);
  EXPECT_EQ(scans.load(), std::uint64_t{kScanners * kScansPerScanner});
  // Scans whose range holds at least two keys waited; nearly all ranges do.
  EXPECT_GE(erases_during_scans.load(), kScanners * kScansPerScanner / 4 * kErasesAwaited);
  EXPECT_GE(cycles_during_scans.load(), std::uint64_t{kScanners * kScansPerScanner / 16 / 2});
  std::vector<int> stable;
  s.for_each_in(0, kKeys, [&](const int& k) {
    if (k % kStableStep == 0) stable.push_back(k);
  });
  EXPECT_EQ(stable.size(), std::size_t{kKeys / kStableStep});
}

// Threads insert and erase random keys of a small range, so the set never holds more than
// kKeys nodes (and as many upper arrays) while every successful insert makes up to two
// objects. Between rounds a full cycle must bring the heap back to the set's own objects;
// while the rounds run it must never hold much more than one round of garbage.
TEST(SkipListSet, KeepsLiveObjectsBoundedDuringALongRun) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  constexpr int kKeys = 512;
  constexpr int kOperationsPerRound = 10000;  // per thread, half of them inserts
  // Each insert attempt makes at most a node and its upper array.
  constexpr std::uint64_t kRoundGarbage = 2 * kThreads * kOperationsPerRound / 2;
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  std::atomic<std::uint64_t> inserted{0};
  {
    SkipListSet<int> s;
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

    ASSERT_GT(inserted.load(), kRounds * kThreads * kOperationsPerRound / 8)
        << "too few inserts to show anything";
    for (int r = 0; r < kRounds; ++r) {
      // The head array and at most kKeys nodes with their arrays.
      EXPECT_LE(live_after_round[r], baseline + 1 + 2 * kKeys + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(),
              baseline + 1 + 2 * kKeys + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before, inserted.load() - kKeys - allowance);
    int present = 0;
    for (int k = 0; k < kKeys; ++k) present += s.contains(k);
    const std::uint64_t live = cmr_ds_test::collect_and_count_live();
    EXPECT_GE(live, baseline + 1 + present);
    EXPECT_LE(live, baseline + 1 + 2 * present + allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

// Every key made during a concurrent run, inserted, rejected, erased or left in the set, is
// destroyed exactly once: rejected ones by insert, the others by the collector, the last of
// them once the set is gone.
TEST(SkipListSet, DestroysEveryKeyExactlyOnceAfterConcurrentUse) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 300;
  constexpr int kOperations = 20000;

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    SkipListSet<Counted> s;
    CollectorLoop collector;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(31 + t);
        std::uniform_int_distribution<std::uint64_t> key(0, kKeys - 1);
        std::uniform_int_distribution<int> op(0, 3);
        for (int i = 0; i < kOperations; ++i) {
          if (i % 5000 == 0) collector.await_next_cycle();
          const std::uint64_t k = key(rng);
          switch (op(rng)) {
            case 0: (void)s.insert(Counted(k)); break;
            case 1: (void)s.erase(Counted(k)); break;
            case 2: (void)s.contains(Counted(k)); break;
            default:
              s.for_each_in(Counted(k), Counted(k + 20), [](const Counted& c) {
                EXPECT_NE(c.value(), Counted::kMovedFrom);  // never a moved-from shell
              });
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    collector.stop();
    EXPECT_GE(Counted::live(), 0);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

}  // namespace
