// tests/ds/harris_list_stress_test.cpp: cmr::ds::HarrisList under contention while another
// thread runs collections back to back, and the chain unlink that sets Harris's search
// apart. Threads that own disjoint (interleaved, so adjacent) keys must each see exactly
// their own sequential history; threads fighting over the same keys must leave every key
// present iff its successful inserts outnumber its successful erases; erased nodes must be
// reclaimed as the run goes. A chain of several marked nodes, built through
// HarrisListTestAccess (marks set, no unlink tried), must be cut by one search with one CAS,
// stay readable from a guard standing inside it, and be reclaimed once no guard reaches it.
#include <cmr/ds/harris_list.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

template <class N>
bool is_marked(N* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 1) != 0;
}
template <class N>
N* unmarked(N* p) {
  return reinterpret_cast<N*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{1});
}
template <class N>
N* marked(N* p) {
  return reinterpret_cast<N*>(reinterpret_cast<std::uintptr_t>(p) | 1);
}

}  // namespace

// The list's test access (declared in harris_list.hpp). It reaches the list's private
// search and mark so that a test can set marks that no one unlinks and then run one search
// on its own; its walks read the physical list, marked nodes included.
struct cmr::ds::HarrisListTestAccess {
  template <class K, class L>
  using Node = typename HarrisList<K, L>::Node;

  // The first half of erase (search, then mark) without the unlink attempt. True if this
  // call marked the node of `key`.
  template <class K, class L>
  static bool mark_only(HarrisList<K, L>& list, const K& key) {
    typename HarrisList<K, L>::Guards g;
    typename HarrisList<K, L>::Window w;
    Node<K, L>* right_next;
    return list.mark(key, g, w, right_next);
  }

  // Marks a node the caller holds, with no search at all (so that nothing gets unlinked on
  // the way). True if this call marked it.
  template <class N>
  static bool mark_held(const cmr::Guard<N>& held) {
    N* node = unmarked(held.get());
    N* next = node->next.load();
    while (!is_marked(next)) {
      if (node->next.compare_exchange_weak(next, marked(next))) return true;
    }
    return false;
  }

  // Runs one search for `key` and returns how many nodes the CAS of its last pass cut out:
  // those from left_node_next up to right_node, all reachable from the guarded
  // left_node_next through their frozen links. 0 if it found left_node and right_node
  // adjacent.
  template <class K, class L>
  static int search_and_count_cut(HarrisList<K, L>& list, const K& key) {
    typename HarrisList<K, L>::Guards g;
    const auto w = list.search(key, g);
    int cut = 0;
    for (Node<K, L>* p = w.left_next; p != w.right; p = unmarked(p->next.load())) ++cut;
    return cut;
  }

  // A guard on the node physically linked with `key`, marked or not (empty if none).
  template <class K, class L>
  static cmr::Guard<Node<K, L>> hold(const HarrisList<K, L>& list, const K& key) {
    cmr::Guard<Node<K, L>> cur;
    cmr::Guard<Node<K, L>> next;
    Node<K, L>* p = cur.protect(list.head_);
    while (p != nullptr && list.less_(p->key, key)) {
      p = unmarked(next.protect(p->next));
      std::swap(cur, next);
    }
    if (p == nullptr || list.less_(key, p->key)) cur.reset();
    return cur;
  }

  // Calls f(key, marked) for each node from `start` (guarded) to the end of its chain.
  template <class N, class F>
  static void walk_from(N* start, F f) {
    cmr::Guard<N> guards[2];
    guards[0].set(start);
    for (N* p = unmarked(start); p != nullptr;) {
      N* next = guards[1].protect(p->next);
      f(p->key, is_marked(next));
      p = unmarked(next);
      std::swap(guards[0], guards[1]);
    }
  }

  // Calls f(key, marked) for each node physically linked from the list's head.
  template <class K, class L, class F>
  static void walk(const HarrisList<K, L>& list, F f) {
    cmr::Guard<Node<K, L>> first;
    Node<K, L>* p = first.protect(list.head_);
    if (p != nullptr) walk_from(p, f);
  }
};

namespace {

using cmr::ds::HarrisList;
using cmr::ds::HarrisListTestAccess;
using cmr_ds_test::CollectorLoop;
using cmr_ds_test::Counted;
using Access = HarrisListTestAccess;

// The physical list as (key, marked) pairs.
template <class K, class L>
std::vector<std::pair<std::uint64_t, bool>> physical(const HarrisList<K, L>& list) {
  std::vector<std::pair<std::uint64_t, bool>> out;
  Access::walk(list, [&](const K& k, bool m) { out.emplace_back(k.value(), m); });
  return out;
}

std::vector<std::pair<std::uint64_t, bool>> expect_keys(
    std::initializer_list<std::uint64_t> keys, std::initializer_list<std::uint64_t> marks = {}) {
  std::set<std::uint64_t> m(marks);
  std::vector<std::pair<std::uint64_t, bool>> out;
  for (std::uint64_t k : keys) out.emplace_back(k, m.count(k) == 1);
  return out;
}

// Nodes 3..6 are marked but still linked; a search for any key from the chain's first node
// to the node after it walks the whole chain and cuts it with its one CAS (left_node 2,
// left_node_next 3, right_node 7). A search for a key past the chain stops at a later
// window and leaves the chain alone. Once cut, every node of the chain is reclaimed by the
// next cycle; while merely marked, none is.
TEST(HarrisList, UnlinksAChainOfMarkedNodesWithOneCas) {
  for (std::uint64_t search_key : {3, 5, 7, 8}) {
    SCOPED_TRACE("search for " + std::to_string(search_key));
    cmr_ds_test::start_counting();
    const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
    {
      HarrisList<Counted> l;
      for (std::uint64_t k = 0; k < 10; ++k) ASSERT_TRUE(l.insert(Counted(k)));
      // From the top down: mark_only searches, and a search for 4 with 3 already marked
      // would cut 3 out (the search is correct to do so).
      for (std::uint64_t k = 6; k >= 3; --k) ASSERT_TRUE(Access::mark_only(l, Counted(k)));
      EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 4, 5, 6}));
      for (std::uint64_t k = 0; k < 10; ++k) EXPECT_EQ(l.contains(Counted(k)), k < 3 || k > 6);
      // Linked, so reachable: a cycle keeps them.
      EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + 10);
      EXPECT_EQ(Counted::live(), 10);

      const int cut = Access::search_and_count_cut(l, Counted(search_key));
      if (search_key == 8) {
        EXPECT_EQ(cut, 0);
        EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 4, 5, 6}));
        // A search that meets the chain right before its right_node does cut it.
        EXPECT_FALSE(l.insert(Counted(7)));
      } else {
        EXPECT_EQ(cut, 4);
      }
      EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 7, 8, 9}));
      EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + 6);
      EXPECT_EQ(Counted::live(), 6);
    }
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
    EXPECT_EQ(Counted::live(), 0);
  }
}

// Once search has cut the chain, insert links its node between left_node and right_node,
// never into the cut chain; erase of right_node goes through the same search first.
TEST(HarrisList, InsertsAndErasesAcrossAChainItCut) {
  cmr_ds_test::start_counting();
  {
    HarrisList<Counted> l;
    for (std::uint64_t k = 0; k < 10; ++k) ASSERT_TRUE(l.insert(Counted(k)));
    for (std::uint64_t k = 6; k >= 3; --k) ASSERT_TRUE(Access::mark_only(l, Counted(k)));
    EXPECT_TRUE(l.insert(Counted(5)));  // a fresh 5, where the marked one was
    EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 5, 7, 8, 9}));
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 7);
  }
  {
    HarrisList<Counted> l;
    for (std::uint64_t k = 0; k < 10; ++k) ASSERT_TRUE(l.insert(Counted(k)));
    for (std::uint64_t k = 6; k >= 3; --k) ASSERT_TRUE(Access::mark_only(l, Counted(k)));
    EXPECT_TRUE(l.erase(Counted(7)));   // its search cuts 3..6 first
    EXPECT_FALSE(l.erase(Counted(4)));  // marked, then cut: absent
    EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 8, 9}));
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 5);
  }
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 0);
}

// A walker stands on node 4 while 3..6 are marked and cut out. Its guard keeps 4 and every
// node after it alive (4 -> 5 -> 6 -> 7 through frozen links), so only 3 is reclaimed; the
// walker can still read its way back into the list. Once it lets go, 4..6 go too.
TEST(HarrisList, KeepsACutChainReadableFromAGuardInsideIt) {
  cmr_ds_test::start_counting();
  HarrisList<Counted> l;
  for (std::uint64_t k = 0; k < 10; ++k) ASSERT_TRUE(l.insert(Counted(k)));
  auto walker = Access::hold(l, Counted(4));
  ASSERT_NE(walker.get(), nullptr);
  for (std::uint64_t k = 6; k >= 3; --k) ASSERT_TRUE(Access::mark_only(l, Counted(k)));
  EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 4, 5, 6}));
  EXPECT_EQ(Access::search_and_count_cut(l, Counted(6)), 4);
  EXPECT_EQ(physical(l), expect_keys({0, 1, 2, 7, 8, 9}));

  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 9);  // only 3 was reclaimed
  std::vector<std::pair<std::uint64_t, bool>> seen;
  Access::walk_from(walker.get(),
                    [&](const Counted& k, bool m) { seen.emplace_back(k.value(), m); });
  EXPECT_EQ(seen, expect_keys({4, 5, 6, 7, 8, 9}, {4, 5, 6}));

  walker.reset();
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 6);
}

// Per round: kMarkers threads each hold one of the adjacent nodes 1..kMarkers and mark it
// at the same time (no search, so no one unlinks), while a walker stands on node 2 and
// reads on, and cycles run. Then kSearchers threads race to search past the chain: exactly
// one cuts all kMarkers nodes with its CAS, the others find the window already adjacent.
// Node 1 is then reclaimed at once; 2..kMarkers only after the walker lets go.
TEST(HarrisList, CutsAChainMarkedByConcurrentErasersOnceWhileAWalkerStandsInIt) {
  constexpr int kMarkers = 4;
  constexpr int kSearchers = 2;
  constexpr int kRounds = 30;
  constexpr std::uint64_t kLast = kMarkers + 1;  // nodes 0..kLast; 1..kMarkers get marked
  static_assert(kMarkers == 4, "the expected walks below list the keys");

  CollectorLoop collector;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    cmr_ds_test::start_counting();
    auto l = std::make_unique<HarrisList<Counted>>();
    for (std::uint64_t k = 0; k <= kLast; ++k) ASSERT_TRUE(l->insert(Counted(k)));

    // All roles and the main thread meet at each phase.
    std::barrier sync(kMarkers + kSearchers + 2);
    std::atomic<int> marked_by_me{0};
    std::atomic<int> walk_errors{0};
    std::vector<int> cuts(kSearchers, -1);
    std::vector<std::thread> threads;
    for (int t = 0; t < kMarkers; ++t) {
      threads.emplace_back([&, t] {
        auto held = Access::hold(*l, Counted(static_cast<std::uint64_t>(t) + 1));
        sync.arrive_and_wait();  // A: everyone holds its node
        if (held.get() != nullptr && Access::mark_held(held)) marked_by_me.fetch_add(1);
        held.reset();
        sync.arrive_and_wait();  // B: marks set
        sync.arrive_and_wait();  // B2: main saw the chain
        sync.arrive_and_wait();  // C: chain cut
        sync.arrive_and_wait();  // D: reclamation checked with the walker still inside
        sync.arrive_and_wait();  // E: walker gone
      });
    }
    for (int s = 0; s < kSearchers; ++s) {
      threads.emplace_back([&, s] {
        sync.arrive_and_wait();  // A
        sync.arrive_and_wait();  // B
        sync.arrive_and_wait();  // B2
        cuts[s] = Access::search_and_count_cut(*l, Counted(kLast));
        sync.arrive_and_wait();  // C
        sync.arrive_and_wait();  // D
        sync.arrive_and_wait();  // E
      });
    }
    threads.emplace_back([&] {
      auto walker = Access::hold(*l, Counted(2));
      // Keys strictly increase along any chain the walker can reach.
      auto walk = [&] {
        std::uint64_t last = 1;
        int nodes = 0;
        Access::walk_from(walker.get(), [&](const Counted& k, bool) {
          if (k.value() <= last && nodes > 0) walk_errors.fetch_add(1);
          last = k.value();
          ++nodes;
        });
        if (nodes != kMarkers) walk_errors.fetch_add(1);  // 2..kLast
      };
      sync.arrive_and_wait();  // A
      for (int i = 0; i < 20; ++i) walk();
      collector.await_next_cycle();  // a cycle lands while marks are being set
      sync.arrive_and_wait();  // B
      sync.arrive_and_wait();  // B2
      for (int i = 0; i < 20; ++i) walk();
      sync.arrive_and_wait();  // C
      sync.arrive_and_wait();  // D
      std::vector<std::pair<std::uint64_t, bool>> seen;
      Access::walk_from(walker.get(),
                        [&](const Counted& k, bool m) { seen.emplace_back(k.value(), m); });
      if (seen != expect_keys({2, 3, 4, kLast}, {2, 3, 4})) walk_errors.fetch_add(1);
      walker.reset();
      sync.arrive_and_wait();  // E
    });

    sync.arrive_and_wait();  // A
    sync.arrive_and_wait();  // B
    EXPECT_EQ(marked_by_me.load(), kMarkers);
    EXPECT_EQ(physical(*l), expect_keys({0, 1, 2, 3, 4, kLast}, {1, 2, 3, 4}));
    sync.arrive_and_wait();  // B2
    sync.arrive_and_wait();  // C
    int full_cuts = 0;
    for (int c : cuts) {
      EXPECT_TRUE(c == 0 || c == kMarkers) << c;
      full_cuts += c == kMarkers;
    }
    EXPECT_EQ(full_cuts, 1);
    EXPECT_EQ(physical(*l), expect_keys({0, kLast}));
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), kMarkers + 1);  // node 1 went; 2..kMarkers are the walker's
    sync.arrive_and_wait();  // D
    sync.arrive_and_wait();  // E
    for (auto& th : threads) th.join();
    EXPECT_EQ(walk_errors.load(), 0);
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 2);  // 0 and kLast
    l.reset();
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 0);
  }
  collector.stop();
  EXPECT_GE(collector.cycles(), static_cast<std::uint64_t>(kRounds));
}

TEST(HarrisList, KeepsEachThreadsOwnKeysExactWhileOthersShareTheList) {
  HarrisList<int> l;
  const auto r = cmr_ds_test::run_own_keys(l, 4, 256, 200000);
  EXPECT_EQ(r.mismatches, 0);
  EXPECT_EQ(r.wrong_at_end, 0);
  EXPECT_GE(r.cycles, 5u);
}

TEST(HarrisList, AgreesWithTheNetCountOfSuccessfulInsertsAndErases) {
  HarrisList<int> l;
  const auto r = cmr_ds_test::run_net_count(l, 4, 64, 200000);
  EXPECT_EQ(r.wrong_at_end, 0);
  EXPECT_GE(r.cycles, 1u);
}

// Few keys and no lookups: most operations meet another thread's marks on their way, so
// erasers race for the same node and searches find their right_node marked under them.
// Each key's successful inserts and erases must still alternate.
TEST(HarrisList, LetsOnlyOneEraserWinEachInsertUnderHeavyContention) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 8;
  constexpr int kOperations = 300000;

  HarrisList<int> l;
  std::vector<std::vector<int>> net(kThreads, std::vector<int>(kKeys, 0));
  CollectorLoop collector;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(5 + t);
      std::uniform_int_distribution<int> key(0, kKeys - 1);
      for (int i = 0; i < kOperations; ++i) {
        if (i % 50000 == 0) collector.await_next_cycle();
        const int k = key(rng);
        if (rng() & 1) {
          net[t][k] += l.insert(k) ? 1 : 0;
        } else {
          net[t][k] -= l.erase(k) ? 1 : 0;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  collector.stop();

  for (int k = 0; k < kKeys; ++k) {
    int total = 0;
    for (int t = 0; t < kThreads; ++t) total += net[t][k];
    EXPECT_EQ(total, l.contains(k) ? 1 : 0) << "key " << k;
  }
}

// Threads insert and erase random keys of a small range, so the list never holds more than
// kKeys nodes while every successful insert makes one. Between rounds a full cycle must bring
// the heap back to the list's own nodes; while the rounds run it must never hold much more
// than one round of garbage. Every key is destroyed exactly once in the end.
TEST(HarrisList, KeepsLiveObjectsBoundedDuringALongRun) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  constexpr int kKeys = 128;
  constexpr int kOperationsPerRound = 20000;  // per thread, half of them inserts
  // Each insert attempt makes at most one node.
  constexpr std::uint64_t kRoundGarbage = kThreads * kOperationsPerRound / 2;
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);

  cmr_ds_test::start_counting();
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  std::atomic<std::uint64_t> inserted{0};
  {
    HarrisList<Counted> l;
    CollectorLoop collector;
    const std::vector<std::uint64_t> live_after_round =
        cmr_ds_test::run_rounds(kThreads, kRounds, [&](int t, int round) {
          std::mt19937 rng(static_cast<unsigned>(7 + t + kThreads * round));
          std::uniform_int_distribution<std::uint64_t> key(0, kKeys - 1);
          std::uint64_t mine = 0;
          for (int i = 0; i < kOperationsPerRound; ++i) {
            const std::uint64_t k = key(rng);
            if (i % 2 == 0) {
              mine += l.insert(Counted(k)) ? 1 : 0;
            } else {
              (void)l.erase(Counted(k));
            }
          }
          inserted.fetch_add(mine);
        });
    collector.stop();

    ASSERT_GT(inserted.load(), kRounds * kRoundGarbage / 4) << "too few inserts to show anything";
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_LE(live_after_round[r], baseline + kKeys + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(), baseline + kKeys + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before, inserted.load() - kKeys - allowance);
    int present = 0;
    for (std::uint64_t k = 0; k < kKeys; ++k) present += l.contains(Counted(k));
    const std::uint64_t live = cmr_ds_test::collect_and_count_live();
    EXPECT_GE(live, baseline + present);
    EXPECT_LE(live, baseline + present + allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
  EXPECT_EQ(Counted::live(), 0);
}

}  // namespace
