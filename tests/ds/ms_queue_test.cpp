// tests/ds/ms_queue_test.cpp: single-threaded behaviour of cmr::ds::MsQueue: FIFO order,
// emptiness, move-only values, and that every element is destroyed exactly once, including
// the ones still queued when the queue is destroyed.
#include <cmr/ds/ms_queue.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::MsQueue;
using cmr_ds_test::Counted;

TEST(MsQueue, IsEmptyWhenCreated) {
  MsQueue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.try_pop().has_value());
}

TEST(MsQueue, PopsInFifoOrder) {
  MsQueue<int> q;
  for (int i = 0; i < 1000; ++i) q.push(i);
  for (int i = 0; i < 1000; ++i) {
    auto v = q.try_pop();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(*v, i);
  }
  EXPECT_FALSE(q.try_pop().has_value());
}

TEST(MsQueue, IsEmptyAgainAfterTheLastPop) {
  MsQueue<std::string> q;
  q.push("a");
  EXPECT_FALSE(q.empty());
  q.push("b");
  EXPECT_EQ(*q.try_pop(), "a");
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(*q.try_pop(), "b");
  EXPECT_TRUE(q.empty());
  q.push("c");
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(*q.try_pop(), "c");
  EXPECT_TRUE(q.empty());
}

TEST(MsQueue, MovesMoveOnlyValuesInAndOut) {
  MsQueue<std::unique_ptr<int>> q;
  for (int i = 0; i < 100; ++i) q.push(std::make_unique<int>(i));
  for (int i = 0; i < 100; ++i) {
    std::optional<std::unique_ptr<int>> v = q.try_pop();
    ASSERT_TRUE(v.has_value());
    ASSERT_NE(*v, nullptr);
    EXPECT_EQ(**v, i);
  }
}

TEST(MsQueue, DestroysEachPoppedValueExactlyOnce) {
  cmr_ds_test::start_counting();
  {
    MsQueue<Counted> q;
    for (std::uint64_t i = 0; i < 500; ++i) q.push(Counted(i));
    for (std::uint64_t i = 0; i < 500; ++i) {
      auto v = q.try_pop();
      ASSERT_TRUE(v.has_value());
      EXPECT_EQ(v->value(), i);
    }
    // Popped values left with the caller; the nodes hold none, moved-from or not.
    EXPECT_EQ(Counted::live(), 0);
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 0);  // freeing the nodes destroyed nothing twice
  }
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 0);
}

TEST(MsQueue, DestroysRemainingElementsWhenDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    MsQueue<Counted> q;
    for (std::uint64_t i = 0; i < 300; ++i) q.push(Counted(i));
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(q.try_pop().has_value());
    EXPECT_EQ(Counted::live(), 200);
  }
  // The elements go with the queue, on this thread...
  EXPECT_EQ(Counted::live(), 0);
  // ...and the nodes with the next cycle, without destroying anything a second time.
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

TEST(MsQueue, FreesPoppedNodesOnCollect) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  MsQueue<std::uint64_t> q;
  for (std::uint64_t round = 0; round < 10; ++round) {
    for (std::uint64_t i = 0; i < 1000; ++i) q.push(i);
    for (std::uint64_t i = 0; i < 990; ++i) ASSERT_TRUE(q.try_pop().has_value());
  }
  // 100 values queued plus the dummy; the 9900 dequeued nodes are garbage.
  const std::uint64_t live = cmr_ds_test::collect_and_count_live();
  EXPECT_GE(live, baseline + 101);
  EXPECT_LE(live, baseline + 101 + cmr_ds_test::false_retention_allowance(9900));
}

}  // namespace
