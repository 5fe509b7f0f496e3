// tests/ds/treiber_stack_test.cpp: single-threaded behaviour of cmr::ds::TreiberStack: LIFO
// order, emptiness, move-only values, and that every element is destroyed exactly once,
// including the ones still on the stack when it is destroyed.
#include <cmr/ds/treiber_stack.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::TreiberStack;
using cmr_ds_test::Counted;

TEST(TreiberStack, IsEmptyWhenCreated) {
  TreiberStack<int> s;
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.try_pop().has_value());
}

TEST(TreiberStack, PopsInLifoOrder) {
  TreiberStack<int> s;
  for (int i = 0; i < 1000; ++i) s.push(i);
  for (int i = 999; i >= 0; --i) {
    auto v = s.try_pop();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(*v, i);
  }
  EXPECT_FALSE(s.try_pop().has_value());
}

TEST(TreiberStack, IsEmptyAgainAfterTheLastPop) {
  TreiberStack<std::string> s;
  s.push("a");
  EXPECT_FALSE(s.empty());
  s.push("b");
  EXPECT_EQ(*s.try_pop(), "b");
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(*s.try_pop(), "a");
  EXPECT_TRUE(s.empty());
}

TEST(TreiberStack, MovesMoveOnlyValuesInAndOut) {
  TreiberStack<std::unique_ptr<int>> s;
  for (int i = 0; i < 100; ++i) s.push(std::make_unique<int>(i));
  for (int i = 99; i >= 0; --i) {
    std::optional<std::unique_ptr<int>> v = s.try_pop();
    ASSERT_TRUE(v.has_value());
    ASSERT_NE(*v, nullptr);
    EXPECT_EQ(**v, i);
  }
}

TEST(TreiberStack, DestroysEachPoppedValueExactlyOnce) {
  cmr_ds_test::start_counting();
  {
    TreiberStack<Counted> s;
    for (std::uint64_t i = 0; i < 500; ++i) s.push(Counted(i));
    for (std::uint64_t i = 500; i-- > 0;) {
      auto v = s.try_pop();
      ASSERT_TRUE(v.has_value());
      EXPECT_EQ(v->value(), i);
    }
    EXPECT_EQ(Counted::live(), 0);
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 0);  // freeing the nodes destroyed nothing twice
  }
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 0);
}

TEST(TreiberStack, DestroysRemainingElementsWhenDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    TreiberStack<Counted> s;
    for (std::uint64_t i = 0; i < 300; ++i) s.push(Counted(i));
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(s.try_pop().has_value());
    EXPECT_EQ(Counted::live(), 200);
  }
  EXPECT_EQ(Counted::live(), 0);
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

TEST(TreiberStack, FreesPoppedNodesOnCollect) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  TreiberStack<std::uint64_t> s;
  for (std::uint64_t round = 0; round < 10; ++round) {
    for (std::uint64_t i = 0; i < 1000; ++i) s.push(i);
    for (std::uint64_t i = 0; i < 990; ++i) ASSERT_TRUE(s.try_pop().has_value());
  }
  // 100 values on the stack; the 9900 popped nodes are garbage.
  const std::uint64_t live = cmr_ds_test::collect_and_count_live();
  EXPECT_GE(live, baseline + 100);
  EXPECT_LE(live, baseline + 100 + cmr_ds_test::false_retention_allowance(9900));
}

}  // namespace
