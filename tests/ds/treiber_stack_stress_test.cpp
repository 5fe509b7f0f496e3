// tests/ds/treiber_stack_stress_test.cpp: cmr::ds::TreiberStack under contention while
// another thread runs collections back to back: no element lost or duplicated, move-only
// values handed out exactly once, and tracked memory reclaimed as it goes.
#include <cmr/ds/treiber_stack.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::TreiberStack;
using cmr_ds_test::CollectorLoop;

TEST(TreiberStack, LosesAndDuplicatesNoElementUnderContention) {
  constexpr std::uint64_t kProducers = 3;
  constexpr std::uint64_t kConsumers = 3;
  constexpr std::uint64_t kPerProducer = 100000;
  constexpr std::uint64_t kTotal = kProducers * kPerProducer;

  TreiberStack<std::uint64_t> s;
  std::vector<std::atomic<std::uint32_t>> seen(kTotal);
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> checksum{0};
  std::atomic<std::uint64_t> out_of_range{0};
  CollectorLoop collector;

  std::vector<std::thread> threads;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&s, &collector, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        if (i % 20000 == 0) collector.await_next_cycle();  // cycles overlap the pushes
        s.push(p * kPerProducer + i);
      }
    });
  }
  for (std::uint64_t c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      std::uint64_t sum = 0;
      while (consumed.load(std::memory_order_relaxed) < kTotal) {
        std::optional<std::uint64_t> v = s.try_pop();
        if (!v) {
          std::this_thread::yield();
          continue;
        }
        if (*v < kTotal) {
          seen[*v].fetch_add(1, std::memory_order_relaxed);
        } else {
          out_of_range.fetch_add(1);
        }
        sum += *v;
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
      checksum.fetch_add(sum);
    });
  }
  for (auto& t : threads) t.join();
  collector.stop();

  EXPECT_EQ(out_of_range.load(), 0u);
  EXPECT_EQ(checksum.load(), kTotal * (kTotal - 1) / 2);
  std::uint64_t wrong = 0;
  for (auto& x : seen) wrong += x.load() != 1;
  EXPECT_EQ(wrong, 0u) << "values lost or duplicated";
  EXPECT_TRUE(s.empty());
  EXPECT_GE(collector.cycles(), 5u);
}

TEST(TreiberStack, HandsEveryMoveOnlyValueToExactlyOneConsumer) {
  constexpr std::uint64_t kThreads = 4;
  constexpr std::uint64_t kPerThread = 50000;
  constexpr std::uint64_t kTotal = kThreads * kPerThread;

  TreiberStack<std::unique_ptr<std::uint64_t>> s;
  std::vector<std::atomic<std::uint32_t>> seen(kTotal);
  std::atomic<std::uint64_t> empty_values{0};
  CollectorLoop collector;

  // Every thread pushes and pops, so pops race with pushes and with each other on the top.
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        s.push(std::make_unique<std::uint64_t>(t * kPerThread + i));
        if (i % 2 == 1) {
          for (int k = 0; k < 2; ++k) {
            auto v = s.try_pop();
            if (!v) continue;
            if (*v == nullptr || **v >= kTotal) {
              empty_values.fetch_add(1);
            } else {
              seen[**v].fetch_add(1, std::memory_order_relaxed);
            }
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  collector.stop();
  while (auto v = s.try_pop()) {
    if (*v == nullptr || **v >= kTotal) {
      empty_values.fetch_add(1);
    } else {
      seen[**v].fetch_add(1);
    }
  }

  EXPECT_EQ(empty_values.load(), 0u);
  std::uint64_t wrong = 0;
  for (auto& x : seen) wrong += x.load() != 1;
  EXPECT_EQ(wrong, 0u) << "values lost or duplicated";
}

// Every thread pushes then pops, so the stack never holds more than one value per thread:
// whatever the tracked heap holds beyond that is garbage not freed yet. Between rounds a
// full cycle must bring the heap back to (at most) the stack's own nodes, and while the
// rounds run the heap must never hold much more than one round of garbage.
TEST(TreiberStack, KeepsLiveObjectsBoundedDuringALongRun) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 12;
  constexpr std::uint64_t kPairsPerRound = 25000;  // per thread
  constexpr std::uint64_t kRoundGarbage = kThreads * kPairsPerRound;
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  std::atomic<std::uint64_t> failed_pops{0};
  {
    TreiberStack<std::uint64_t> s;
    CollectorLoop collector;
    const std::vector<std::uint64_t> live_after_round =
        cmr_ds_test::run_rounds(kThreads, kRounds, [&](int t, int round) {
          for (std::uint64_t i = 0; i < kPairsPerRound; ++i) {
            s.push(static_cast<std::uint64_t>(t) << 32 | (round * kPairsPerRound + i));
            if (!s.try_pop()) failed_pops.fetch_add(1);
          }
        });
    collector.stop();

    EXPECT_EQ(failed_pops.load(), 0u);
    EXPECT_TRUE(s.empty());
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_LE(live_after_round[r], baseline + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(), baseline + kThreads + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before, kRounds * kRoundGarbage - allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

}  // namespace
