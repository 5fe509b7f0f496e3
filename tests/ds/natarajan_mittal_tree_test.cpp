// tests/ds/natarajan_mittal_tree_test.cpp: single-threaded behaviour of
// cmr::ds::NatarajanMittalTree: set semantics against std::set on random operation
// sequences (copyable keys, whose internal nodes hold copies, and move-only keys, whose
// internal nodes point to a leaf), the sentinels at the ends of the key type, comparators,
// how many nodes the tree keeps, and that every key is destroyed exactly once by the
// collector.
#include <cmr/ds/natarajan_mittal_tree.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::NatarajanMittalTree;
using cmr_ds_test::Counted;
using CountedTree = NatarajanMittalTree<Counted>;  // move-only: routing keys point to leaves

// A copyable key that counts its live objects, so copy-mode trees can be counted too.
class CopyCounted {
 public:
  explicit CopyCounted(int v) : v_(v) { live_.fetch_add(1); }
  CopyCounted(const CopyCounted& o) : v_(o.v_) { live_.fetch_add(1); }
  CopyCounted& operator=(const CopyCounted&) = default;
  ~CopyCounted() { live_.fetch_sub(1); }
  bool operator<(const CopyCounted& o) const { return v_ < o.v_; }
  static long live() { return live_.load(); }

 private:
  int v_;
  static inline std::atomic<long> live_{0};
};

// Five sentinel nodes, then two nodes (a leaf and an internal node) per key.
constexpr std::uint64_t kSentinels = 5;

TEST(NatarajanMittalTree, ContainsNothingWhenCreated) {
  NatarajanMittalTree<int> t;
  for (int k = -5; k < 50; ++k) EXPECT_FALSE(t.contains(k));
  EXPECT_FALSE(t.contains(std::numeric_limits<int>::min()));
  EXPECT_FALSE(t.contains(std::numeric_limits<int>::max()));
  EXPECT_FALSE(t.erase(3));
  EXPECT_FALSE(t.erase(std::numeric_limits<int>::max()));
}

TEST(NatarajanMittalTree, InsertsEachKeyOnlyOnce) {
  NatarajanMittalTree<int> t;
  EXPECT_TRUE(t.insert(7));
  EXPECT_FALSE(t.insert(7));
  EXPECT_TRUE(t.contains(7));
  EXPECT_FALSE(t.contains(6));
  EXPECT_FALSE(t.contains(8));
  EXPECT_TRUE(t.insert(3));
  EXPECT_TRUE(t.insert(11));
  EXPECT_FALSE(t.insert(3));
  EXPECT_FALSE(t.insert(11));
  for (int k : {3, 7, 11}) EXPECT_TRUE(t.contains(k)) << k;
}

TEST(NatarajanMittalTree, ErasesOnlyKeysThatArePresent) {
  NatarajanMittalTree<std::string> t;
  EXPECT_TRUE(t.insert("x"));
  EXPECT_FALSE(t.erase("y"));
  EXPECT_FALSE(t.erase("w"));
  EXPECT_TRUE(t.erase("x"));
  EXPECT_FALSE(t.erase("x"));
  EXPECT_FALSE(t.contains("x"));
  EXPECT_TRUE(t.insert("x"));  // a fresh leaf after the erase
  EXPECT_TRUE(t.contains("x"));
}

// The sentinels are ranks, not key values: the largest and smallest values of the key type
// are ordinary keys, and so is a key equal to what a sentinel would be in a tree that
// borrows infinities from the key type.
TEST(NatarajanMittalTree, TreatsTheExtremesOfTheKeyTypeAsOrdinaryKeys) {
  NatarajanMittalTree<std::uint64_t> t;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (std::uint64_t k : {kMax, kMax - 1, kMax - 2, std::uint64_t{0}}) {
    EXPECT_TRUE(t.insert(k)) << k;
  }
  EXPECT_FALSE(t.insert(kMax));
  for (std::uint64_t k : {kMax, kMax - 1, kMax - 2, std::uint64_t{0}}) {
    EXPECT_TRUE(t.contains(k)) << k;
  }
  EXPECT_FALSE(t.contains(kMax - 3));
  EXPECT_TRUE(t.erase(kMax));
  EXPECT_FALSE(t.contains(kMax));
  EXPECT_TRUE(t.contains(kMax - 1));
  EXPECT_TRUE(t.erase(kMax - 1));
  EXPECT_TRUE(t.erase(kMax - 2));
  EXPECT_TRUE(t.erase(0));
  EXPECT_FALSE(t.contains(0));
  EXPECT_TRUE(t.insert(kMax));  // the tree is empty again and still works
  EXPECT_TRUE(t.contains(kMax));
}

// One key at a time: the only real leaf sits under the inf0 internal node, and erasing it
// splices that node out, back to the five sentinels.
TEST(NatarajanMittalTree, EmptiesAndRefillsRepeatedly) {
  NatarajanMittalTree<int> t;
  for (int round = 0; round < 100; ++round) {
    ASSERT_TRUE(t.insert(round));
    ASSERT_TRUE(t.contains(round));
    ASSERT_FALSE(t.contains(round + 1));
    ASSERT_TRUE(t.erase(round));
    ASSERT_FALSE(t.contains(round));
    ASSERT_FALSE(t.erase(round));
  }
}

// Keys in order make the unbalanced tree a path: every operation walks all of it.
TEST(NatarajanMittalTree, HandlesKeysInsertedInOrder) {
  constexpr int kKeys = 3000;
  NatarajanMittalTree<int> up;
  NatarajanMittalTree<int> down;
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(up.insert(k));
    ASSERT_TRUE(down.insert(kKeys - 1 - k));
  }
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(up.contains(k));
    ASSERT_TRUE(down.contains(k));
  }
  EXPECT_FALSE(up.contains(kKeys));
  EXPECT_FALSE(down.contains(-1));
  for (int k = 0; k < kKeys; k += 2) {
    ASSERT_TRUE(up.erase(k));
    ASSERT_TRUE(down.erase(k));
  }
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_EQ(up.contains(k), k % 2 == 1) << k;
    ASSERT_EQ(down.contains(k), k % 2 == 1) << k;
  }
}

TEST(NatarajanMittalTree, OrdersKeysByTheGivenComparator) {
  NatarajanMittalTree<int, std::greater<int>> t;
  for (int k : {5, 1, 9, 3, 7}) EXPECT_TRUE(t.insert(k));
  for (int k : {5, 1, 9, 3, 7}) EXPECT_TRUE(t.contains(k));
  EXPECT_FALSE(t.contains(4));
  EXPECT_TRUE(t.erase(9));
  EXPECT_FALSE(t.contains(9));
  EXPECT_TRUE(t.contains(7));
}

// Equivalence is !less(a, b) && !less(b, a): with a comparator that looks only at the tens,
// 41 and 47 are the same key. The comparator object is the tree's own copy.
struct ByTens {
  int divisor = 10;
  bool operator()(int a, int b) const { return a / divisor < b / divisor; }
};

TEST(NatarajanMittalTree, UsesItsComparatorsEquivalence) {
  NatarajanMittalTree<int, ByTens> t(ByTens{10});
  EXPECT_TRUE(t.insert(41));
  EXPECT_FALSE(t.insert(47));
  EXPECT_TRUE(t.contains(40));
  EXPECT_TRUE(t.insert(50));
  EXPECT_TRUE(t.erase(49));
  EXPECT_FALSE(t.contains(41));
  EXPECT_TRUE(t.contains(55));
}

template <class Tree, class MakeKey>
void run_model(Tree& t, int key_range, std::uint64_t seed, MakeKey key_of) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> key(0, key_range - 1);
  std::uniform_int_distribution<int> op(0, 2);
  std::set<int> model;
  for (int i = 0; i < 20000; ++i) {
    const int k = key(rng);
    switch (op(rng)) {
      case 0:
        ASSERT_EQ(t.insert(key_of(k)), model.insert(k).second) << "insert " << k << " at " << i;
        break;
      case 1:
        ASSERT_EQ(t.erase(key_of(k)), model.erase(k) == 1) << "erase " << k << " at " << i;
        break;
      default:
        ASSERT_EQ(t.contains(key_of(k)), model.count(k) == 1) << "contains " << k << " at " << i;
    }
  }
  for (int k = -1; k <= key_range; ++k) {
    ASSERT_EQ(t.contains(key_of(k)), model.count(k) == 1) << k;
  }
}

// Random insert/erase/contains sequences, each result compared with std::set's. A tiny key
// range keeps the tree near empty (the sentinels' edges change all the time); a large one
// makes it deep.
TEST(NatarajanMittalTree, MatchesASequentialModelOnRandomOperations) {
  for (int range : {2, 8, 200, 5000}) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE("range=" + std::to_string(range) + " seed=" + std::to_string(seed));
      NatarajanMittalTree<int> t;
      run_model(t, range, seed, [](int k) { return k; });
    }
  }
}

TEST(NatarajanMittalTree, MatchesASequentialModelWithMoveOnlyKeys) {
  for (int range : {2, 8, 200, 5000}) {
    for (std::uint64_t seed = 11; seed <= 13; ++seed) {
      SCOPED_TRACE("range=" + std::to_string(range) + " seed=" + std::to_string(seed));
      CountedTree t;
      run_model(t, range, seed, [](int k) { return Counted(static_cast<std::uint64_t>(k + 1)); });
    }
  }
}

struct BoxedKey {
  std::unique_ptr<int> p;
  bool operator<(const BoxedKey& o) const { return *p < *o.p; }
};
BoxedKey boxed(int v) { return BoxedKey{std::make_unique<int>(v)}; }

TEST(NatarajanMittalTree, AcceptsMoveOnlyKeys) {
  NatarajanMittalTree<BoxedKey> t;
  for (int k = 0; k < 50; ++k) EXPECT_TRUE(t.insert(boxed((k * 37) % 50)));
  EXPECT_FALSE(t.insert(boxed(10)));
  for (int k = 0; k < 50; k += 2) EXPECT_TRUE(t.erase(boxed(k)));
  for (int k = 0; k < 50; ++k) EXPECT_EQ(t.contains(boxed(k)), k % 2 == 1) << k;
}

TEST(NatarajanMittalTree, DestroysARejectedKeyBeforeInsertReturns) {
  cmr_ds_test::start_counting();
  CountedTree t;
  EXPECT_TRUE(t.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
  EXPECT_FALSE(t.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
}

// The tree keeps exactly its sentinels and two nodes per key; erased keys' nodes and the
// tree itself are reclaimed by the next cycles.
TEST(NatarajanMittalTree, KeepsTwoNodesPerKeyAndFreesTheRest) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  {
    NatarajanMittalTree<int> t;
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + kSentinels);
    std::mt19937 rng(5);
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(t.insert(static_cast<int>(rng() % 1000000) * 1000 + i));
    EXPECT_FALSE(t.insert(static_cast<int>(std::mt19937(5)() % 1000000) * 1000));
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + kSentinels + 2 * 400);
    std::mt19937 again(5);
    for (int i = 0; i < 400; ++i) {
      const int k = static_cast<int>(again() % 1000000) * 1000 + i;
      if (i % 4 != 0) {
        ASSERT_TRUE(t.erase(k));
      }
    }
    const std::uint64_t live = cmr_ds_test::collect_and_count_live();
    EXPECT_GE(live, baseline + kSentinels + 2 * 100);
    EXPECT_LE(live, baseline + kSentinels + 2 * 100 + cmr_ds_test::false_retention_allowance(600));
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

// With a copyable key an internal node routes on its own copy, so erasing every key leaves
// no key object behind once a cycle ran.
TEST(NatarajanMittalTree, DestroysEveryCopiedRoutingKeyOnceTheKeysAreErased) {
  cmr_ds_test::collect_and_count_live();
  const long before = CopyCounted::live();
  NatarajanMittalTree<CopyCounted> t;
  for (int k = 0; k < 500; ++k) ASSERT_TRUE(t.insert(CopyCounted((k * 211) % 500)));
  cmr_ds_test::collect_and_count_live();
  // 500 leaves, and up to one copy per internal node.
  EXPECT_GE(CopyCounted::live() - before, 500);
  EXPECT_LE(CopyCounted::live() - before, 1000);
  for (int k = 0; k < 500; ++k) ASSERT_TRUE(t.erase(CopyCounted(k)));
  cmr_ds_test::collect_and_count_live();
  EXPECT_LE(CopyCounted::live() - before,
            static_cast<long>(cmr_ds_test::false_retention_allowance(1000)));
  EXPECT_FALSE(t.contains(CopyCounted(0)));
}

// With a move-only key an internal node points to the leaf it routes on. Inserting 20, 30
// and 35 makes R30 -> {leaf 20, R35 -> {leaf 30, leaf 35}}; erasing 30 splices out R35 but
// R30 still routes on leaf 30, so key 30 outlives its erase until R30 goes too.
TEST(NatarajanMittalTree, KeepsAnErasedMoveOnlyKeyWhileANodeStillRoutesOnIt) {
  cmr_ds_test::start_counting();
  CountedTree t;
  ASSERT_TRUE(t.insert(Counted(20)));
  ASSERT_TRUE(t.insert(Counted(30)));
  ASSERT_TRUE(t.insert(Counted(35)));
  ASSERT_TRUE(t.erase(Counted(30)));
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 3);  // 20, 35, and 30 routing
  EXPECT_FALSE(t.contains(Counted(30)));
  EXPECT_TRUE(t.contains(Counted(35)));
  EXPECT_TRUE(t.contains(Counted(20)));
  ASSERT_TRUE(t.erase(Counted(20)));  // splices out R30
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 1);
  EXPECT_TRUE(t.contains(Counted(35)));
}

TEST(NatarajanMittalTree, DestroysRemainingKeysOnCollectAfterItIsDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    CountedTree t;
    for (std::uint64_t k = 0; k < 300; ++k) ASSERT_TRUE(t.insert(Counted((k * 7) % 300)));
    for (std::uint64_t k = 0; k < 300; k += 3) ASSERT_TRUE(t.erase(Counted(k)));
    EXPECT_GE(cmr::stats().live_objects, baseline + kSentinels + 2 * 200);
  }
  // The tree dropped its root; the next cycle destroys every node, each key exactly once.
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

TEST(NatarajanMittalTree, CanBeCreatedAndDestroyedManyTimes) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  for (int i = 0; i < 200; ++i) {
    NatarajanMittalTree<int> t;
    ASSERT_TRUE(t.insert(i));
    ASSERT_TRUE(t.contains(i));
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

}  // namespace
