// tests/ds/ms_queue_stress_test.cpp: cmr::ds::MsQueue under contention while another thread
// runs collections back to back: no element lost or duplicated, per-producer FIFO order,
// move-only values handed out exactly once, and tracked memory reclaimed as it goes.
#include <cmr/ds/ms_queue.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::MsQueue;
using cmr_ds_test::CollectorLoop;

constexpr std::uint64_t encode(std::uint64_t producer, std::uint64_t seq) {
  return producer << 32 | seq;
}

TEST(MsQueue, KeepsPerProducerFifoOrder) {
  constexpr std::uint64_t kProducers = 3;
  constexpr std::uint64_t kConsumers = 3;
  constexpr std::uint64_t kPerProducer = 100000;
  constexpr std::uint64_t kTotal = kProducers * kPerProducer;

  MsQueue<std::uint64_t> q;
  std::vector<std::atomic<std::uint32_t>> seen(kTotal);
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> order_violations{0};
  std::atomic<std::uint64_t> checksum{0};
  CollectorLoop collector;

  std::vector<std::thread> threads;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&q, &collector, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        if (i % 20000 == 0) collector.await_next_cycle();  // cycles overlap the pushes
        q.push(encode(p, i));
      }
    });
  }
  for (std::uint64_t c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      // One consumer's pops are ordered, so it must see each producer's values rising.
      std::vector<std::int64_t> last(kProducers, -1);
      std::uint64_t sum = 0;
      while (consumed.load(std::memory_order_relaxed) < kTotal) {
        std::optional<std::uint64_t> v = q.try_pop();
        if (!v) {
          std::this_thread::yield();
          continue;
        }
        const std::uint64_t p = *v >> 32;
        const std::int64_t seq = static_cast<std::int64_t>(*v & 0xffffffffu);
        if (p >= kProducers || seq <= last[p]) order_violations.fetch_add(1);
        if (p < kProducers) {
          last[p] = seq;
          seen[p * kPerProducer + seq].fetch_add(1, std::memory_order_relaxed);
        }
        sum += *v;
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
      checksum.fetch_add(sum);
    });
  }
  for (auto& t : threads) t.join();
  collector.stop();

  EXPECT_EQ(order_violations.load(), 0u);
  EXPECT_EQ(consumed.load(), kTotal);
  std::uint64_t expected_sum = 0;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    for (std::uint64_t i = 0; i < kPerProducer; ++i) expected_sum += encode(p, i);
  }
  EXPECT_EQ(checksum.load(), expected_sum);
  std::uint64_t wrong = 0;
  for (auto& s : seen) wrong += s.load() != 1;
  EXPECT_EQ(wrong, 0u) << "values lost or duplicated";
  EXPECT_TRUE(q.empty());
  EXPECT_GE(collector.cycles(), 5u);
}

TEST(MsQueue, HandsEveryMoveOnlyValueToExactlyOneConsumer) {
  constexpr std::uint64_t kProducers = 2;
  constexpr std::uint64_t kConsumers = 2;
  constexpr std::uint64_t kPerProducer = 50000;
  constexpr std::uint64_t kTotal = kProducers * kPerProducer;

  MsQueue<std::unique_ptr<std::uint64_t>> q;
  std::vector<std::atomic<std::uint32_t>> seen(kTotal);
  std::atomic<std::uint64_t> consumed{0};
  std::atomic<std::uint64_t> empty_values{0};
  CollectorLoop collector;

  std::vector<std::thread> threads;
  for (std::uint64_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&q, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) {
        q.push(std::make_unique<std::uint64_t>(p * kPerProducer + i));
      }
    });
  }
  for (std::uint64_t c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      while (consumed.load(std::memory_order_relaxed) < kTotal) {
        auto v = q.try_pop();
        if (!v) {
          std::this_thread::yield();
          continue;
        }
        // A value moved out twice would reach the second consumer as null.
        if (*v == nullptr || **v >= kTotal) {
          empty_values.fetch_add(1);
        } else {
          seen[**v].fetch_add(1, std::memory_order_relaxed);
        }
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  collector.stop();

  EXPECT_EQ(empty_values.load(), 0u);
  std::uint64_t wrong = 0;
  for (auto& s : seen) wrong += s.load() != 1;
  EXPECT_EQ(wrong, 0u) << "values lost or duplicated";
}

// Every thread pushes then pops, so the queue never holds more than one value per thread:
// whatever the tracked heap holds beyond that is garbage not freed yet. Between rounds a
// full cycle must bring the heap back to the queue's own nodes, and while the rounds run
// (with cycles running concurrently) the heap must never hold much more than one round
// of garbage, however many rounds there are.
TEST(MsQueue, KeepsLiveObjectsBoundedDuringALongRun) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 12;
  constexpr std::uint64_t kPairsPerRound = 25000;  // per thread
  constexpr std::uint64_t kRoundGarbage = kThreads * kPairsPerRound;
  constexpr std::uint64_t kQueueNodes = 1 + kThreads;  // dummy + one value per thread
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  std::atomic<std::uint64_t> failed_pops{0};
  {
    MsQueue<std::uint64_t> q;
    CollectorLoop collector;
    const std::vector<std::uint64_t> live_after_round =
        cmr_ds_test::run_rounds(kThreads, kRounds, [&](int t, int round) {
          for (std::uint64_t i = 0; i < kPairsPerRound; ++i) {
            q.push(encode(t, round * kPairsPerRound + i));
            // Our own push is not matched yet, so the queue cannot be empty here.
            if (!q.try_pop()) failed_pops.fetch_add(1);
          }
        });
    collector.stop();

    EXPECT_EQ(failed_pops.load(), 0u);
    EXPECT_TRUE(q.empty());
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_LE(live_after_round[r], baseline + 1 + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(), baseline + kQueueNodes + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before, kRounds * kRoundGarbage - allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

}  // namespace
