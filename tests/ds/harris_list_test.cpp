// tests/ds/harris_list_test.cpp: single-threaded behaviour of cmr::ds::HarrisList: set
// semantics against std::set on random operation sequences (several seeds and key ranges),
// a custom ordering, keys with no usable minimum or maximum, move-only keys, and that
// rejected, erased and remaining keys are each destroyed exactly once.
#include <cmr/ds/harris_list.hpp>

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::HarrisList;
using cmr_ds_test::Counted;

TEST(HarrisList, ContainsNothingWhenCreated) {
  HarrisList<int> l;
  for (int k = -5; k < 50; ++k) EXPECT_FALSE(l.contains(k));
  EXPECT_FALSE(l.erase(3));
}

TEST(HarrisList, InsertsEachKeyOnlyOnce) {
  HarrisList<int> l;
  EXPECT_TRUE(l.insert(7));
  EXPECT_FALSE(l.insert(7));
  EXPECT_TRUE(l.contains(7));
  EXPECT_TRUE(l.insert(3));   // before the first node
  EXPECT_TRUE(l.insert(11));  // after the last
  EXPECT_TRUE(l.insert(9));   // in the middle
  for (int k : {3, 7, 9, 11}) EXPECT_TRUE(l.contains(k)) << k;
  for (int k : {2, 4, 8, 10, 12}) EXPECT_FALSE(l.contains(k)) << k;
}

TEST(HarrisList, ErasesOnlyKeysThatArePresent) {
  HarrisList<std::string> l;
  EXPECT_TRUE(l.insert("x"));
  EXPECT_FALSE(l.erase("y"));
  EXPECT_TRUE(l.erase("x"));
  EXPECT_FALSE(l.erase("x"));
  EXPECT_FALSE(l.contains("x"));
  EXPECT_TRUE(l.insert("x"));  // a fresh node after the erase
  EXPECT_TRUE(l.contains("x"));
}

// The sentinels are head_ and null, so the extreme values of K are ordinary keys.
TEST(HarrisList, NeedsNoMinimumOrMaximumKey) {
  HarrisList<int> l;
  EXPECT_TRUE(l.insert(INT_MAX));
  EXPECT_TRUE(l.insert(INT_MIN));
  EXPECT_TRUE(l.insert(0));
  EXPECT_FALSE(l.insert(INT_MIN));
  EXPECT_TRUE(l.contains(INT_MIN));
  EXPECT_TRUE(l.contains(INT_MAX));
  EXPECT_TRUE(l.erase(INT_MAX));
  EXPECT_TRUE(l.erase(INT_MIN));
  EXPECT_FALSE(l.contains(INT_MAX));
  EXPECT_FALSE(l.contains(INT_MIN));
  EXPECT_TRUE(l.contains(0));

  HarrisList<std::string> s;  // "" is the least string: a node like any other
  EXPECT_TRUE(s.insert(""));
  EXPECT_TRUE(s.insert("a"));
  EXPECT_TRUE(s.contains(""));
  EXPECT_TRUE(s.erase(""));
  EXPECT_FALSE(s.contains(""));
  EXPECT_TRUE(s.contains("a"));
}

TEST(HarrisList, OrdersByTheGivenLess) {
  HarrisList<int, std::greater<int>> l;
  for (int k = 0; k < 20; ++k) EXPECT_TRUE(l.insert(k));
  for (int k = 0; k < 20; k += 2) EXPECT_TRUE(l.erase(k));
  for (int k = 0; k < 20; ++k) EXPECT_EQ(l.contains(k), k % 2 == 1) << k;
}

// Random insert/erase/contains sequences, each result compared with std::set's. A small key
// range keeps the list short and makes erases hit neighbours of marked nodes; a large one
// makes long walks.
TEST(HarrisList, MatchesASequentialModelOnRandomOperations) {
  for (int keys : {8, 64, 500}) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
      SCOPED_TRACE("keys=" + std::to_string(keys) + " seed=" + std::to_string(seed));
      std::mt19937_64 rng(seed);
      std::uniform_int_distribution<int> key(0, keys - 1);
      std::uniform_int_distribution<int> op(0, 2);
      HarrisList<int> l;
      std::set<int> model;
      for (int i = 0; i < 10000; ++i) {
        const int k = key(rng);
        switch (op(rng)) {
          case 0:
            ASSERT_EQ(l.insert(k), model.insert(k).second) << "insert " << k << " at " << i;
            break;
          case 1:
            ASSERT_EQ(l.erase(k), model.erase(k) == 1) << "erase " << k << " at " << i;
            break;
          default:
            ASSERT_EQ(l.contains(k), model.count(k) == 1) << "contains " << k << " at " << i;
        }
      }
      for (int k = 0; k < keys; ++k) ASSERT_EQ(l.contains(k), model.count(k) == 1) << k;
    }
  }
}

struct BoxedKey {
  std::unique_ptr<int> p;
  bool operator<(const BoxedKey& o) const { return *p < *o.p; }
};
BoxedKey boxed(int v) { return BoxedKey{std::make_unique<int>(v)}; }

TEST(HarrisList, AcceptsMoveOnlyKeys) {
  HarrisList<BoxedKey> l;
  for (int k = 49; k >= 0; --k) EXPECT_TRUE(l.insert(boxed(k)));
  EXPECT_FALSE(l.insert(boxed(10)));
  for (int k = 0; k < 50; k += 2) EXPECT_TRUE(l.erase(boxed(k)));
  for (int k = 0; k < 50; ++k) EXPECT_EQ(l.contains(boxed(k)), k % 2 == 1) << k;
}

TEST(HarrisList, DestroysARejectedKeyBeforeInsertReturns) {
  cmr_ds_test::start_counting();
  HarrisList<Counted> l;
  EXPECT_TRUE(l.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
  EXPECT_FALSE(l.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
}

TEST(HarrisList, DestroysErasedKeysOnCollect) {
  cmr_ds_test::start_counting();
  HarrisList<Counted> l;
  for (std::uint64_t k = 0; k < 400; ++k) ASSERT_TRUE(l.insert(Counted(k)));
  for (std::uint64_t k = 0; k < 400; k += 4) ASSERT_TRUE(l.erase(Counted(k)));
  // Erased keys wait for the collector: a concurrent reader could still be looking at them.
  cmr_ds_test::collect_and_count_live();
  EXPECT_GE(Counted::live(), 300);
  EXPECT_LE(Counted::live(), 300 + static_cast<long>(cmr_ds_test::false_retention_allowance(100)));
  for (std::uint64_t k = 0; k < 400; ++k) EXPECT_EQ(l.contains(Counted(k)), k % 4 != 0) << k;
}

TEST(HarrisList, DestroysRemainingKeysOnCollectAfterItIsDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    HarrisList<Counted> l;
    for (std::uint64_t k = 0; k < 300; ++k) ASSERT_TRUE(l.insert(Counted(k)));
    for (std::uint64_t k = 0; k < 300; k += 3) ASSERT_TRUE(l.erase(Counted(k)));
    EXPECT_GE(cmr::stats().live_objects, baseline + 200);
  }
  // The list dropped its root; the next cycle destroys every node, each key exactly once.
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

}  // namespace
