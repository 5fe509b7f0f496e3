// tests/ds/skip_list_set_test.cpp: single-threaded behaviour of cmr::ds::SkipListSet: set
// semantics and range scans against std::set on random operation sequences (for several
// tower heights, including a single level), ordering by a custom Less, move-only keys, a
// scan that modifies the set or collects under its own feet, and that erased and remaining
// keys are destroyed exactly once by the collector. Interleavings are forced without
// threads: a comparator with a trap runs another operation (and cycles) in the middle of an
// insert, erase, lookup or scan, at every comparison in turn, so each retry path, an erase
// racing a tower that is still going up, and the guards of a walk or of an insert's saved
// windows are exercised deterministically.
#include <cmr/ds/skip_list_set.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::SkipListSet;
using cmr_ds_test::Counted;

template <class Set, class K>
std::vector<K> scan(const Set& s, const K& lo, const K& hi) {
  std::vector<K> out;
  s.for_each_in(lo, hi, [&](const K& k) { out.push_back(k); });
  return out;
}

std::vector<int> model_range(const std::set<int>& m, int lo, int hi) {
  if (lo >= hi) return {};
  return std::vector<int>(m.lower_bound(lo), m.lower_bound(hi));
}

TEST(SkipListSet, ContainsNothingWhenCreated) {
  SkipListSet<int> s;
  for (int k = -5; k < 50; ++k) EXPECT_FALSE(s.contains(k));
  EXPECT_FALSE(s.erase(3));
  EXPECT_TRUE(scan(s, -100, 100).empty());
  EXPECT_EQ(s.levels_in_use(), 1u);
}

TEST(SkipListSet, InsertsEachKeyOnlyOnce) {
  SkipListSet<int> s;
  EXPECT_TRUE(s.insert(7));
  EXPECT_FALSE(s.insert(7));
  EXPECT_TRUE(s.contains(7));
  EXPECT_TRUE(s.insert(3));
  EXPECT_TRUE(s.insert(11));
  EXPECT_FALSE(s.insert(3));
  EXPECT_TRUE(s.contains(3));
  EXPECT_TRUE(s.contains(11));
  EXPECT_FALSE(s.contains(5));
  EXPECT_EQ(scan(s, 0, 100), (std::vector<int>{3, 7, 11}));
}

TEST(SkipListSet, ErasesOnlyKeysThatArePresent) {
  SkipListSet<std::string> s;
  EXPECT_TRUE(s.insert("x"));
  EXPECT_FALSE(s.erase("y"));
  EXPECT_TRUE(s.erase("x"));
  EXPECT_FALSE(s.erase("x"));
  EXPECT_FALSE(s.contains("x"));
  EXPECT_TRUE(s.insert("x"));  // a fresh node after the erase
  EXPECT_TRUE(s.contains("x"));
}

TEST(SkipListSet, ScansTheHalfOpenRangeOnly) {
  SkipListSet<int> s;
  for (int k = 0; k < 100; k += 10) ASSERT_TRUE(s.insert(k));
  EXPECT_EQ(scan(s, 10, 40), (std::vector<int>{10, 20, 30}));   // lo in, hi out
  EXPECT_EQ(scan(s, 11, 41), (std::vector<int>{20, 30, 40}));
  EXPECT_EQ(scan(s, -50, 5), (std::vector<int>{0}));
  EXPECT_EQ(scan(s, 90, 1000), (std::vector<int>{90}));
  EXPECT_TRUE(scan(s, 30, 30).empty());  // empty range
  EXPECT_TRUE(scan(s, 40, 10).empty());  // reversed range
  EXPECT_TRUE(scan(s, 91, 99).empty());
  EXPECT_EQ(scan(s, -1000, 1000).size(), 10u);
}

TEST(SkipListSet, OrdersKeysByItsLess) {
  SkipListSet<int, std::greater<int>> s;
  for (int k : {5, 1, 9, 3, 7}) ASSERT_TRUE(s.insert(k));
  // With greater<>, [lo, hi) runs downwards: from 8 (included) to 2 (excluded).
  EXPECT_EQ(scan(s, 8, 2), (std::vector<int>{7, 5, 3}));
  EXPECT_EQ(scan(s, 100, -100), (std::vector<int>{9, 7, 5, 3, 1}));
  EXPECT_TRUE(s.erase(9));
  EXPECT_FALSE(s.contains(9));
  EXPECT_TRUE(s.contains(1));
}

// Random insert/erase/contains/scan sequences, each result compared with std::set's. A
// single level makes the structure a plain Harris list; 4 levels saturate at a few hundred
// keys, so many towers are as tall as allowed; 24 is the default.
template <std::size_t Levels>
void run_model(std::uint64_t seed, int key_range, int operations) {
  SCOPED_TRACE("levels=" + std::to_string(Levels) + " seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> key(0, key_range - 1);
  std::uniform_int_distribution<int> op(0, 9);
  SkipListSet<int, std::less<int>, Levels> s;
  std::set<int> model;
  for (int i = 0; i < operations; ++i) {
    const int k = key(rng);
    const int o = op(rng);
    if (o < 4) {
      ASSERT_EQ(s.insert(k), model.insert(k).second) << "insert " << k << " at " << i;
    } else if (o < 7) {
      ASSERT_EQ(s.erase(k), model.erase(k) == 1) << "erase " << k << " at " << i;
    } else if (o < 9) {
      ASSERT_EQ(s.contains(k), model.count(k) == 1) << "contains " << k << " at " << i;
    } else {
      const int lo = k - key_range / 8;
      const int hi = lo + std::uniform_int_distribution<int>(-2, key_range / 4)(rng);
      ASSERT_EQ(scan(s, lo, hi), model_range(model, lo, hi))
          << "for_each_in [" << lo << ", " << hi << ") at " << i;
    }
  }
  for (int k = -1; k <= key_range; ++k) ASSERT_EQ(s.contains(k), model.count(k) == 1) << k;
  ASSERT_EQ(scan(s, -1, key_range + 1), model_range(model, -1, key_range + 1));
  EXPECT_LE(s.levels_in_use(), Levels);
}

TEST(SkipListSet, MatchesASequentialModelOnRandomOperations) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    run_model<1>(seed, 150, 6000);
    run_model<4>(seed, 600, 20000);
    run_model<24>(seed, 2000, 20000);
  }
}

TEST(SkipListSet, UsesMoreLevelsAsItGrows) {
  SkipListSet<int> s;
  for (int k = 0; k < 4096; ++k) ASSERT_TRUE(s.insert(k));
  // Geometric heights with p = 1/2: among 4096 towers the tallest is below 8 with
  // probability (1 - 2^-7)^4096 < 1e-13.
  EXPECT_GE(s.levels_in_use(), 8u);
  EXPECT_LE(s.levels_in_use(), 24u);
  SkipListSet<int, std::less<int>, 3> low;
  for (int k = 0; k < 1000; ++k) ASSERT_TRUE(low.insert(k));
  EXPECT_EQ(low.levels_in_use(), 3u);
  EXPECT_EQ(scan(low, 0, 1000).size(), 1000u);
}

struct BoxedKey {
  std::unique_ptr<int> p;
  bool operator<(const BoxedKey& o) const { return *p < *o.p; }
};
BoxedKey boxed(int v) { return BoxedKey{std::make_unique<int>(v)}; }

TEST(SkipListSet, AcceptsMoveOnlyKeys) {
  SkipListSet<BoxedKey> s;
  for (int k = 49; k >= 0; --k) EXPECT_TRUE(s.insert(boxed(k)));
  EXPECT_FALSE(s.insert(boxed(10)));
  for (int k = 0; k < 50; k += 2) EXPECT_TRUE(s.erase(boxed(k)));
  for (int k = 0; k < 50; ++k) EXPECT_EQ(s.contains(boxed(k)), k % 2 == 1) << k;
  std::vector<int> seen;
  s.for_each_in(boxed(10), boxed(20), [&](const BoxedKey& k) { seen.push_back(*k.p); });
  EXPECT_EQ(seen, (std::vector<int>{11, 13, 15, 17, 19}));
}

// f may change the set: erasing the key it is given, inserting ahead of the scan (which
// then may or may not see it), erasing ahead of it (which it must then not report).
TEST(SkipListSet, LetsTheScanCallbackChangeTheSet) {
  SkipListSet<int> s;
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(s.insert(2 * k));  // even keys 0..198
  std::vector<int> seen;
  s.for_each_in(0, 200, [&](const int& k) {
    seen.push_back(k);
    EXPECT_TRUE(s.erase(k));        // the node the scan stands on
    if (k == 50) {
      for (int j = 52; j < 100; j += 2) EXPECT_TRUE(s.erase(j));  // ahead of the scan
    }
    if (k < 10) {
      EXPECT_TRUE(s.insert(k + 101));  // odd keys ahead, may or may not be seen
    }
  });
  std::vector<int> must;
  for (int k = 0; k <= 50; k += 2) must.push_back(k);
  for (int k = 100; k < 200; k += 2) must.push_back(k);
  std::vector<int> evens;
  for (int k : seen) {
    if (k % 2 == 0) evens.push_back(k);
  }
  EXPECT_EQ(evens, must);
  for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
  // Every key the callback was given it erased; the odd ones it inserted stay unless seen.
  for (int k = 0; k < 200; k += 2) EXPECT_FALSE(s.contains(k)) << k;
  for (int k = 101; k < 111; k += 2) {
    const bool reported = std::find(seen.begin(), seen.end(), k) != seen.end();
    EXPECT_NE(s.contains(k), reported) << k;
  }
}

TEST(SkipListSet, StopsTheScanWhenTheCallbackThrows) {
  SkipListSet<int> s;
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(s.insert(k));
  int calls = 0;
  EXPECT_THROW(s.for_each_in(0, 20,
                             [&](const int& k) {
                               ++calls;
                               if (k == 4) throw std::runtime_error("stop");
                             }),
               std::runtime_error);
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(scan(s, 0, 20).size(), 20u);
}

// The scan stands on a node while everything ahead of it is erased and collected, and
// thousands of new nodes are made (reusing whatever slots the cycles freed): the guarded
// node keeps the erased chain it must walk through alive, so the scan walks on through it
// to the keys that stayed and reports none of the erased ones. (A freed chain would be
// reused by the new keys, all >= hi, and end the scan early; AddressSanitizer also
// reports the use of a freed node.)
TEST(SkipListSet, WalksOnThroughErasedAndCollectedNodes) {
  cmr_ds_test::start_counting();
  SkipListSet<Counted> s;
  for (std::uint64_t k = 0; k < 200; ++k) ASSERT_TRUE(s.insert(Counted(k)));
  std::vector<std::uint64_t> seen;
  s.for_each_in(Counted(0), Counted(200), [&](const Counted& k) {
    seen.push_back(k.value());
    if (k.value() == 10) {
      for (std::uint64_t j = 11; j < 150; ++j) EXPECT_TRUE(s.erase(Counted(j)));
      cmr_ds_test::collect_and_count_live();
      cmr_ds_test::collect_and_count_live();
      for (std::uint64_t j = 1000; j < 5000; ++j) EXPECT_TRUE(s.insert(Counted(j)));
    }
  });
  std::vector<std::uint64_t> expected;
  for (std::uint64_t k = 0; k <= 10; ++k) expected.push_back(k);
  for (std::uint64_t k = 150; k < 200; ++k) expected.push_back(k);
  EXPECT_EQ(seen, expected);
  // The scan is over: the erased nodes are garbage now.
  cmr_ds_test::collect_and_count_live();
  EXPECT_LE(Counted::live(),
            4061 + static_cast<long>(cmr_ds_test::false_retention_allowance(139)));
  EXPECT_GE(Counted::live(), 4061);
}

// A Less that, once armed, runs an action at the first comparison `when` accepts: the way
// to act from the outside in the middle of an operation, deterministically.
struct TrapContext {
  bool armed = false;
  std::function<bool(int, int)> when;
  std::function<void()> action;
};
struct TrapLess {
  TrapContext* trap = nullptr;
  bool operator()(int a, int b) const {
    if (trap != nullptr && trap->armed && trap->when(a, b)) {
      trap->armed = false;  // the action's own operations compare without the trap
      trap->action();
    }
    return a < b;
  }
};
using TrapSet = SkipListSet<int, TrapLess, 4>;

// Applies an insert (or erase) to a key's membership `present`; returns what it returns.
bool apply(bool insert, bool& present) {
  const bool result = insert ? !present : present;
  present = insert;
  return result;
}

enum class Op { kInsert, kErase, kContains, kScan };

// How often the interesting interruptions happened, for the test to check.
int g_towers_erased = 0;
int g_walks_collected = 0;

// Runs one operation on x with the trap firing at its `at`-th comparison, where another
// operation runs on a neighbour of x or on x itself. An insert or erase of x is then
// interrupted by an insert or erase (forcing its retries: a stale window, a failed link, a
// lost race for the same key), and every key is checked: contains and a full scan agree
// with the model for every key but x, and with each other for x, whatever step x's
// operation is at; in the end the two operations on x must have the results of one order
// or the other. A contains or scan is interrupted by an erase and a cycle, which frees
// what the walk has left behind: what it still stands on must stay alive (AddressSanitizer
// reports a use of a freed node), and its answer must hold for the keys it did not race.
void interrupt_once(std::set<int>& model, Op op, int x, int at, std::mt19937_64& rng,
                    bool& fired, bool always_race_tower = false) {
  TrapContext trap;
  TrapSet s(TrapLess{&trap});
  for (int k : model) ASSERT_TRUE(s.insert(k));
  int countdown = at;
  const bool reading = op == Op::kContains || op == Op::kScan;
  const int other = x + std::uniform_int_distribution<int>(-2, 2)(rng);
  const bool other_insert = !reading && rng() % 2 == 0;
  bool other_result = false;
  // An insert interrupted by a neighbour's change is interrupted once more, by an erase of
  // x as soon as x is in the set, to race the erase with the building of x's tower.
  const bool erase_tower = op == Op::kInsert && other != x && model.count(x) == 0 &&
                           (always_race_tower || rng() % 2 == 0);
  std::optional<bool> tower_erased;
  fired = false;
  // 0: waiting for the `at`-th comparison; 1: waiting for x to be in the set; 2: done.
  int phase = 0;
  trap.when = [&](int, int) {
    if (phase == 0) return --countdown == 0;
    trap.armed = false;  // contains compares too
    const bool visible = s.contains(x);
    trap.armed = true;
    return visible;
  };
  trap.action = [&] {
    if (phase == 1) {
      tower_erased = s.erase(x);
      ++g_towers_erased;
      phase = 2;
      return;
    }
    phase = 2;
    fired = true;
    if (other == x) {
      other_result = other_insert ? s.insert(x) : s.erase(x);
    } else if (other_insert) {
      EXPECT_EQ(s.insert(other), model.insert(other).second);
    } else {
      EXPECT_EQ(s.erase(other), model.erase(other) == 1);
    }
    if (reading) {
      cmr_ds_test::collect_and_count_live();
      ++g_walks_collected;
      return;
    }
    if (erase_tower) {
      // Once x is in the set (the insert's tower may still be going up), erase it.
      phase = 1;
      trap.armed = true;
    }
    std::vector<int> all = scan(s, -10, 1000);
    for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1], all[i]);
    const bool x_scanned = std::find(all.begin(), all.end(), x) != all.end();
    EXPECT_EQ(s.contains(x), x_scanned) << "x=" << x << " at comparison " << at;
    all.erase(std::remove(all.begin(), all.end(), x), all.end());
    std::set<int> others = model;
    others.erase(x);
    EXPECT_EQ(all, std::vector<int>(others.begin(), others.end())) << "at comparison " << at;
    for (int k = -3; k < 100; ++k) {
      if (k == x) continue;
      EXPECT_EQ(s.contains(k), others.count(k) == 1) << k << " at comparison " << at;
    }
  };
  const bool was_present = model.count(x) == 1;
  trap.armed = true;
  if (op == Op::kContains) {
    const bool result = s.contains(x);
    trap.armed = false;
    // Only an erase of x itself can race with the answer.
    if (!(fired && other == x)) {
      EXPECT_EQ(result, was_present) << "contains " << x;
    }
  } else if (op == Op::kScan) {
    std::vector<int> seen = scan(s, x - 6, x + 6);
    trap.armed = false;
    for (std::size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
    // The erased key may or may not be reported; every other key must be, or not, as
    // the model says.
    const int raced = fired ? other : x + 1000;
    seen.erase(std::remove(seen.begin(), seen.end(), raced), seen.end());
    std::vector<int> expected = model_range(model, x - 6, x + 6);
    expected.erase(std::remove(expected.begin(), expected.end(), raced), expected.end());
    EXPECT_EQ(seen, expected) << "scan around " << x << " at comparison " << at;
  } else {
    const bool insert = op == Op::kInsert;
    const bool result = insert ? s.insert(x) : s.erase(x);
    trap.armed = false;
    const bool present = s.contains(x);
    if (fired && other == x) {
      bool first = was_present, second = was_present;  // x's membership in either order
      const bool other_first = apply(other_insert, first) == other_result &&
                               apply(insert, first) == result && first == present;
      const bool x_first = apply(insert, second) == result &&
                           apply(other_insert, second) == other_result && second == present;
      EXPECT_TRUE(other_first || x_first)
          << (insert ? "insert " : "erase ") << x << " at comparison " << at << " returned "
          << result << ", the other " << (other_insert ? "insert" : "erase") << " returned "
          << other_result << ", present after: " << present;
    } else if (tower_erased.has_value()) {
      EXPECT_TRUE(result && *tower_erased && !present)
          << "insert " << x << " at comparison " << at << ", then erased while linked";
    } else {
      bool expected_present = was_present;
      EXPECT_EQ(result, apply(insert, expected_present))
          << (insert ? "insert " : "erase ") << x << " at comparison " << at;
      EXPECT_EQ(present, expected_present);
    }
  }
  trap.armed = false;
  if (s.contains(x)) {
    model.insert(x);
  } else {
    model.erase(x);
  }
  EXPECT_EQ(scan(s, -10, 1000), std::vector<int>(model.begin(), model.end()));
  // Whatever the race left behind (a marked node still linked at some level), the keys
  // around x must still go in and out: a node wrongly left unmarked above an unlinked one
  // would make these walks fail their CAS forever.
  for (int k = x - 2; k <= x + 2; ++k) {
    const bool had = model.count(k) == 1;
    EXPECT_EQ(s.insert(k), !had) << k;
    EXPECT_TRUE(s.erase(k)) << k;
    if (had) {
      EXPECT_TRUE(s.insert(k)) << k;
    }
    for (int j = x - 4; j <= x + 4; ++j) EXPECT_EQ(s.contains(j), model.count(j) == 1) << j;
  }
}

// Tries `op` on x once per comparison it makes (each try rebuilds the set from the model and
// stops the operation one comparison later than the last), until it completes without
// reaching the trap; that last, uninterrupted try leaves its result in the model.
int interrupt_at_every_comparison(std::set<int>& model, Op op, int x, std::mt19937_64& rng,
                                  bool always_race_tower = false) {
  int interrupted = 0;
  bool fired = true;
  for (int at = 1; fired; ++at) {
    const std::set<int> before = model;
    interrupt_once(model, op, x, at, rng, fired, always_race_tower);
    if (::testing::Test::HasFailure()) return interrupted;
    if (fired) model = before;  // the next try starts from the same state
    interrupted += fired;
  }
  return interrupted;
}

std::set<int> random_model(std::mt19937_64& rng) {
  std::set<int> model;
  for (int k = 0; k < 96; ++k) {
    if (rng() % 2 == 0) model.insert(k);
  }
  return model;
}

TEST(SkipListSet, StaysConsistentWhenInterruptedAtEveryComparison) {
  int interrupted = 0;
  g_walks_collected = 0;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::set<int> model = random_model(rng);
    for (int i = 0; i < 48; ++i) {
      const int x = std::uniform_int_distribution<int>(0, 95)(rng);
      interrupted += interrupt_at_every_comparison(model, static_cast<Op>(i % 4), x, rng);
      if (HasFailure()) return;
    }
  }
  // Every operation compares at least once per level it walks; half are reads.
  EXPECT_GE(interrupted, 3 * 48 * 4);
  EXPECT_GE(g_walks_collected, 3 * 24 * 4);
}

// An insert whose upper-level window a neighbour's insert made stale looks again, after its
// node is already in the set; right then the trap erases the node, whose tower is still
// going up. The insert must stop building (or have the marked levels unlinked), and the
// keys around must still go in and out.
TEST(SkipListSet, ErasesANodeWhoseTowerIsStillGoingUp) {
  g_towers_erased = 0;
  for (std::uint64_t seed = 1; seed <= 12 && g_towers_erased < 40; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::set<int> model = random_model(rng);
    for (int i = 0; i < 40; ++i) {
      int x = std::uniform_int_distribution<int>(0, 95)(rng);
      while (model.count(x) == 1) x = (x + 1) % 96;
      interrupt_at_every_comparison(model, Op::kInsert, x, rng, /*always_race_tower=*/true);
      if (HasFailure()) return;
    }
  }
  EXPECT_GE(g_towers_erased, 40);
}

// Keys 100, 120, 200 and an insert of 150, with two levels. When 100 and 150 are two levels
// tall and 120 one, the insert's walk saves (100, 200 or the end) as its level-1 window,
// moves on to 120 at level 0 and leaves 100 behind. Right then the trap erases 100 and
// collects: only the window's own guard keeps 100 alive for the level-1 CAS that follows
// (which fails, since 100 is marked, and looks again). Unguarded, 100 would be freed, and
// reused by the allocations that follow; AddressSanitizer reports the use of a freed node.
TEST(SkipListSet, KeepsTheSavedWindowOfAnInsertAliveUntilItIsUsed) {
  using TwoLevelSet = SkipListSet<int, TrapLess, 2>;
  int fired = 0;
  for (int trial = 0; trial < 100; ++trial) {
    TrapContext trap;
    TwoLevelSet s(TrapLess{&trap});
    TwoLevelSet scratch;  // same node type: its nodes take whatever slots the cycle freed
    for (int k : {100, 120, 200}) ASSERT_TRUE(s.insert(k));
    int last_a = 0, last_b = 0;
    trap.when = [&](int a, int b) {
      // At level 0, with 120 one level tall, the walk compares 120 then 200 with 150.
      const bool hit = a == 200 && b == 150 && last_a == 120 && last_b == 150;
      last_a = a;
      last_b = b;
      return hit;
    };
    trap.action = [&] {
      ++fired;
      EXPECT_TRUE(s.erase(100));
      cmr_ds_test::collect_and_count_live();
      cmr_ds_test::collect_and_count_live();
      for (int k = 0; k < 1000; ++k) scratch.insert(k);
    };
    trap.armed = true;
    ASSERT_TRUE(s.insert(150));
    EXPECT_EQ(scan(s, 0, 1000), (std::vector<int>{120, 150, 200})) << "trial " << trial;
    EXPECT_FALSE(s.contains(100));
  }
  // The trap fires in most trials; the case above, 100 and 150 two levels tall and 120
  // one, comes in one trial in eight.
  EXPECT_GE(fired, 20);
}

TEST(SkipListSet, DestroysARejectedKeyBeforeInsertReturns) {
  cmr_ds_test::start_counting();
  SkipListSet<Counted> s;
  EXPECT_TRUE(s.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
  EXPECT_FALSE(s.insert(Counted(1)));
  EXPECT_EQ(Counted::live(), 1);
}

TEST(SkipListSet, DestroysErasedKeysOnCollect) {
  cmr_ds_test::start_counting();
  SkipListSet<Counted> s;
  for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_TRUE(s.insert(Counted(k)));
  for (std::uint64_t k = 0; k < 1000; k += 4) ASSERT_TRUE(s.erase(Counted(k)));
  // Erased keys wait for the collector: a concurrent reader could still be looking at them.
  cmr_ds_test::collect_and_count_live();
  EXPECT_GE(Counted::live(), 750);
  EXPECT_LE(Counted::live(), 750 + static_cast<long>(cmr_ds_test::false_retention_allowance(250)));
  for (std::uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(s.contains(Counted(k)), k % 4 != 0) << k;
}

TEST(SkipListSet, DestroysRemainingKeysOnCollectAfterItIsDestroyed) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  cmr_ds_test::start_counting();
  {
    SkipListSet<Counted> s;
    for (std::uint64_t k = 0; k < 300; ++k) ASSERT_TRUE(s.insert(Counted(k)));
    for (std::uint64_t k = 0; k < 300; k += 3) ASSERT_TRUE(s.erase(Counted(k)));
    // 300 nodes (some garbage already), their upper arrays and the head array.
    EXPECT_GE(cmr::stats().live_objects, baseline + 201);
  }
  // The set dropped its root; the next cycle destroys every node, each key exactly once.
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

}  // namespace
