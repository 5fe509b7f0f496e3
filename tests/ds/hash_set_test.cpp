// tests/ds/hash_set_test.cpp: single-threaded behaviour of cmr::ds::HashSet: set semantics
// against std::set on random operation sequences, move-only keys, and that erased and
// remaining keys are destroyed exactly once by the collector.
#include <cmr/ds/hash_set.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::HashSet;
using cmr_ds_test::Counted;
using cmr_ds_test::CountedHash;
using CountedSet = HashSet<Counted, CountedHash>;

TEST(HashSet, ContainsNothingWhenCreated) {
  HashSet<int> s(16);
  for (int k = -5; k < 50; ++k) EXPECT_FALSE(s.contains(k));
  EXPECT_FALSE(s.erase(3));
}

TEST(HashSet, InsertsEachKeyOnlyOnce) {
  HashSet<int> s(8);
  EXPECT_TRUE(s.insert(7));
  EXPECT_FALSE(s.insert(7));
  EXPECT_TRUE(s.contains(7));
  EXPECT_TRUE(s.insert(15));  // same bucket as 7 with std::hash<int>
  EXPECT_TRUE(s.contains(15));
  EXPECT_TRUE(s.contains(7));
}

TEST(HashSet, ErasesOnlyKeysThatArePresent) {
  HashSet<std::string> s(4);
  EXPECT_TRUE(s.insert("x"));
  EXPECT_FALSE(s.erase("y"));
  EXPECT_TRUE(s.erase("x"));
  EXPECT_FALSE(s.erase("x"));
  EXPECT_FALSE(s.contains("x"));
  EXPECT_TRUE(s.insert("x"));  // a fresh node after the erase
  EXPECT_TRUE(s.contains("x"));
}

TEST(HashSet, TreatsZeroBucketsAsOne) {
  HashSet<int> s(0);
  EXPECT_EQ(s.bucket_count(), 1u);
  for (int k = 10; k > 0; --k) EXPECT_TRUE(s.insert(k));
  for (int k = 1; k <= 10; ++k) EXPECT_TRUE(s.contains(k));
}

// Random insert/erase/contains sequences, each result compared with std::set's. Small
// bucket counts make long lists, so inserts and erases hit the middle and ends of lists.
TEST(HashSet, MatchesASequentialModelOnRandomOperations) {
  for (std::size_t buckets : {std::size_t{1}, std::size_t{7}, std::size_t{64}}) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE("buckets=" + std::to_string(buckets) + " seed=" + std::to_string(seed));
      std::mt19937_64 rng(seed);
      std::uniform_int_distribution<int> key(0, 199);
      std::uniform_int_distribution<int> op(0, 2);
      HashSet<int> s(buckets);
      std::set<int> model;
      for (int i = 0; i < 20000; ++i) {
        const int k = key(rng);
        switch (op(rng)) {
          case 0:
            ASSERT_EQ(s.insert(k), model.insert(k).second) << "insert " << k << " at " << i;
            break;
          case 1:
            ASSERT_EQ(s.erase(k), model.erase(k) == 1) << "erase " << k << " at " << i;
            break;
          default:
            ASSERT_EQ(s.contains(k), model.count(k) == 1) << "contains " << k << " at " << i;
        }
      }
      for (int k = 0; k < 200; ++k) ASSERT_EQ(s.contains(k), model.count(k) == 1) << k;
    }
  }
}

struct BoxedKey {
  std::unique_ptr<int> p;
  bool operator<(const BoxedKey& o) const { return *p < *o.p; }
};
struct BoxedKeyHash {
  std::size_t operator()(const BoxedKey& k) const { return std::hash<int>()(*k.p); }
};
BoxedKey boxed(int v) { return BoxedKey{std::make_unique<int>(v)}; }

TEST(HashSet, AcceptsMoveOnlyKeys) {
  HashSet<BoxedKey, BoxedKeyHash> s(5);
  for (int k = 0; k < 50; ++k) EXPECT_TRUE(s.insert(boxed(k)));
  EXPECT_FALSE(s.insert(boxed(10)));
  for (int k = 0; k < 50; k += 2) EXPECT_TRUE(s.erase(boxed(k)));
  for (int k = 0; k < 50; ++k) EXPECT_EQ(s.contains(boxed(k)), k % 2 == 1) << k;
}

TEST(HashSet, DestroysARejectedKeyBeforeInsertReturns) {
  cmr_ds_test::start_counting();
  CountedSet s(4);
  EXPECT_TRUE(s.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
  EXPECT_FALSE(s.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
}

TEST(HashSet, DestroysErasedKeysOnCollect) {
  cmr_ds_test::start_counting();
  CountedSet s(64);
  for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_TRUE(s.insert(Counted(k)));
  for (std::uint64_t k = 0; k < 1000; k += 4) ASSERT_TRUE(s.erase(Counted(k)));
  // Erased keys wait for the collector: a concurrent reader could still be looking at them.
  cmr_ds_test::collect_and_count_live();
  EXPECT_GE(Counted::live(), 750);
  EXPECT_LE(Counted::live(), 750 + static_cast<long>(cmr_ds_test::false_retention_allowance(250)));
  for (std::uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(s.contains(Counted(k)), k % 4 != 0) << k;
}

TEST(HashSet, DestroysRemainingKeysOnCollectAfterItIsDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    CountedSet s(16);
    for (std::uint64_t k = 0; k < 300; ++k) ASSERT_TRUE(s.insert(Counted(k)));
    for (std::uint64_t k = 0; k < 300; k += 3) ASSERT_TRUE(s.erase(Counted(k)));
    // 300 nodes + the bucket array, some of it garbage already.
    EXPECT_GE(cmr::stats().live_objects, baseline + 201);
  }
  // The set dropped its root; the next cycle destroys every node, each key exactly once.
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

}  // namespace
