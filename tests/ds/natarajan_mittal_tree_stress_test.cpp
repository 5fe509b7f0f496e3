// tests/ds/natarajan_mittal_tree_stress_test.cpp: cmr::ds::NatarajanMittalTree under
// contention while cycles run.
//
// Forced interleavings: the tree's test hooks (CMR_DS_NM_TREE_TEST_HOOKS) stop a thread
// (two, at most) at a named step (after its flag, after its tag, standing on a node) while
// the main thread runs the operations that must help it, splice around it or unlink the
// nodes it holds, and cycles run. Each of the paper's helping paths is taken on purpose and
// counted; the keys (Counted) show that every node a stopped thread holds, and what those
// nodes point to, stays alive, and a thread resumed on unlinked nodes must find them alive
// (ASan reports a use of a freed slot). A watchdog turns a livelocked helping path into a
// quick failure. Random runs: threads owning disjoint keys see exactly their own sequential
// history; threads sharing a tiny range of adjacent keys leave each key present iff its
// successful inserts outnumber its successful erases; readers walking through nodes being
// removed never miss a stable key; and removed nodes are reclaimed as the run goes.
#define CMR_DS_NM_TREE_TEST_HOOKS
#include <cmr/ds/natarajan_mittal_tree.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ds/ds_test_support.hpp"

namespace {

using cmr::ds::NatarajanMittalTree;
using cmr::ds::detail::NmTreeEvent;
using cmr_ds_test::CollectorLoop;
using cmr_ds_test::Counted;

constexpr std::uint64_t kSentinels = 5;

// What the hook does: counts every event, lets chosen threads stop at the n-th occurrence
// of one event until the test releases them (or re-arms them for a later event), and
// optionally yields at flags and tags so that other threads run into the half-done erase.
struct StopPoint {
  std::atomic<std::thread::id> thread{};
  std::atomic<int> event{-1};
  std::atomic<int> countdown{0};
  std::atomic<bool> stopped{false};
  std::atomic<bool> released{false};
};
struct HookState {
  std::array<std::atomic<std::uint64_t>, static_cast<int>(NmTreeEvent::kCount)> counts{};
  std::array<StopPoint, 2> stops;
  std::atomic<bool> yield_at_marks{false};
};
HookState g_hook;

void hook(NmTreeEvent e) {
  g_hook.counts[static_cast<int>(e)].fetch_add(1);
  // Every 32nd mark only: under load each yield may give a whole time slice away.
  thread_local unsigned marks = 0;
  if ((e == NmTreeEvent::kFlagged || e == NmTreeEvent::kTagged) && g_hook.yield_at_marks.load() &&
      ++marks % 32 == 0)
    std::this_thread::yield();
  for (StopPoint& sp : g_hook.stops) {
    if (sp.event.load() != static_cast<int>(e) || sp.thread.load() != std::this_thread::get_id())
      continue;
    if (sp.countdown.fetch_sub(1) != 1) continue;
    sp.released.store(false);  // the test releases only after it saw `stopped`
    sp.stopped.store(true);
    // Spinning, not blocking: the stopped thread keeps answering the handshake, so cycles
    // run while it holds its guards.
    while (!sp.released.load()) std::this_thread::yield();
  }
}

std::uint64_t count(NmTreeEvent e) { return g_hook.counts[static_cast<int>(e)].load(); }

class NatarajanMittalTreeStress : public ::testing::Test {
 protected:
  // No tree operation runs here, so installing the hook races with nothing.
  void SetUp() override {
    for (auto& c : g_hook.counts) c.store(0);
    for (StopPoint& sp : g_hook.stops) {
      sp.event.store(-1);
      sp.stopped.store(false);
      sp.released.store(false);
    }
    g_hook.yield_at_marks.store(false);
    cmr::ds::detail::nm_tree_hook = &hook;
    // A helping path that is broken makes the main thread spin forever against a stopped
    // thread; fail in seconds rather than at the suite's timeout.
    watchdog_ = std::thread([this] {
      std::unique_lock lock(watchdog_mutex_);
      if (!watchdog_cv_.wait_for(lock, std::chrono::seconds(120), [this] { return done_; })) {
        std::fprintf(stderr, "%s: no progress within 120 s (a helping path is broken)\n",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::abort();
      }
    });
  }
  void TearDown() override {
    for (std::size_t i = 0; i < threads_.size(); ++i) resume(static_cast<int>(i));
    cmr::ds::detail::nm_tree_hook = nullptr;
    {
      std::lock_guard lock(watchdog_mutex_);
      done_ = true;
    }
    watchdog_cv_.notify_one();
    watchdog_.join();
  }

  // Runs op on a new thread that stops at the n-th `event` it reaches; returns a handle
  // once the thread has stopped there.
  template <class Op>
  int run_until(NmTreeEvent event, int nth, Op op) {
    const int h = static_cast<int>(threads_.size());
    StopPoint& sp = g_hook.stops.at(h);
    sp.countdown.store(nth);
    sp.event.store(static_cast<int>(event));
    threads_.emplace_back([&sp, op] {
      sp.thread.store(std::this_thread::get_id());
      op();
    });
    await_stop(h);
    return h;
  }
  // Lets stopped thread h go on until the n-th `event` it reaches from now.
  void resume_until(int h, NmTreeEvent event, int nth) {
    StopPoint& sp = g_hook.stops.at(h);
    sp.stopped.store(false);
    sp.countdown.store(nth);
    sp.event.store(static_cast<int>(event));
    sp.released.store(true);
    await_stop(h);
  }
  // Lets thread h finish.
  void resume(int h) {
    StopPoint& sp = g_hook.stops.at(h);
    sp.event.store(-1);
    sp.released.store(true);
    if (threads_[h].joinable()) threads_[h].join();
  }
  static void await_stop(int h) {
    const StopPoint& sp = g_hook.stops.at(h);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!sp.stopped.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    ASSERT_TRUE(sp.stopped.load()) << "the thread never reached the event";
  }
  // A few full cycles while the stopped threads hold their guards.
  static void collect_while_stopped() {
    for (int i = 0; i < 3; ++i) cmr_ds_test::collect_and_count_live();
  }

  std::vector<std::thread> threads_;
  std::thread watchdog_;
  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_cv_;
  bool done_ = false;
};

// Tree {10, 20}: X(inf0) -> {P(20) -> {10, 20}, inf0}. erase(10) flags P's edge to 10 and
// stops. insert(5) lands on that flagged edge: its CAS fails, it helps (splicing out P and
// leaf 10), then inserts. The stopped erase's own splice then fails, and its next seek no
// longer ends at its leaf: it returns true, finished by the helper.
TEST_F(NatarajanMittalTreeStress, InsertHelpsAPendingEraseThatStillReportsItsKey) {
  NatarajanMittalTree<int> t;
  ASSERT_TRUE(t.insert(10));
  ASSERT_TRUE(t.insert(20));
  std::atomic<int> erased{-1};
  const int h = run_until(NmTreeEvent::kFlagged, 1, [&] { erased.store(t.erase(10)); });
  EXPECT_TRUE(t.contains(10));  // flagged, not yet spliced out: still in the set
  EXPECT_TRUE(t.insert(5));
  EXPECT_EQ(count(NmTreeEvent::kInsertHelps), 1u);
  EXPECT_FALSE(t.contains(10));
  collect_while_stopped();  // P and leaf 10 are unlinked; only the stopped thread holds them
  resume(h);
  EXPECT_EQ(erased.load(), 1);
  EXPECT_EQ(count(NmTreeEvent::kCleanupLost), 1u);
  EXPECT_EQ(count(NmTreeEvent::kEraseFinishedByOther), 1u);
  EXPECT_TRUE(t.contains(5));
  EXPECT_TRUE(t.contains(20));
  EXPECT_FALSE(t.contains(10));
  EXPECT_FALSE(t.erase(10));
}

// A second erase(10) that meets the flag helps too, and reports that it removed nothing.
TEST_F(NatarajanMittalTreeStress, EraseHelpsAPendingEraseOfTheSameKeyAndReportsFalse) {
  NatarajanMittalTree<int> t;
  ASSERT_TRUE(t.insert(10));
  ASSERT_TRUE(t.insert(20));
  std::atomic<int> erased{-1};
  const int h = run_until(NmTreeEvent::kFlagged, 1, [&] { erased.store(t.erase(10)); });
  EXPECT_FALSE(t.erase(10));
  EXPECT_EQ(count(NmTreeEvent::kEraseHelps), 1u);
  resume(h);
  EXPECT_EQ(erased.load(), 1);
  EXPECT_TRUE(t.contains(20));
  EXPECT_FALSE(t.contains(10));
}

// Tree {10, 20}. erase(10) flags its edge and stops; erase(20) flags the other edge of the
// same parent P, tags the edge to 10 (already flagged) and moves leaf 10 up with its flag.
// The stopped erase then finds its leaf one level higher, under the inf0 node, and splices
// that out: the tree is empty again, down to its five sentinels.
TEST_F(NatarajanMittalTreeStress, ErasingBothChildrenOfANodeCarriesTheFirstFlagUp) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  {
    NatarajanMittalTree<int> t;
    ASSERT_TRUE(t.insert(10));
    ASSERT_TRUE(t.insert(20));
    std::atomic<int> erased{-1};
    const int h = run_until(NmTreeEvent::kFlagged, 1, [&] { erased.store(t.erase(10)); });
    EXPECT_TRUE(t.erase(20));
    EXPECT_EQ(count(NmTreeEvent::kCleanupCarriedFlag), 1u);
    EXPECT_TRUE(t.contains(10));  // moved up, still flagged, still in the set
    collect_while_stopped();
    resume(h);
    EXPECT_EQ(erased.load(), 1);
    EXPECT_EQ(count(NmTreeEvent::kCleanupLost), 1u);
    EXPECT_FALSE(t.contains(10));
    EXPECT_FALSE(t.contains(20));
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + kSentinels);
    EXPECT_TRUE(t.insert(15));
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

// Tree {10, 20}. erase(10) flags its edge, tags P's edge to leaf 20 and stops before its
// splice. insert(25) lands on the tagged edge: it helps with its own edge unflagged, so it
// keeps leaf 20 (the paper's "sibling := child" case), then inserts under it.
TEST_F(NatarajanMittalTreeStress, HelpingFromTheTaggedSideKeepsThatChild) {
  NatarajanMittalTree<int> t;
  ASSERT_TRUE(t.insert(10));
  ASSERT_TRUE(t.insert(20));
  std::atomic<int> erased{-1};
  const int h = run_until(NmTreeEvent::kTagged, 1, [&] { erased.store(t.erase(10)); });
  EXPECT_TRUE(t.insert(25));
  EXPECT_EQ(count(NmTreeEvent::kInsertHelps), 1u);
  EXPECT_EQ(count(NmTreeEvent::kCleanupKeptChild), 1u);
  collect_while_stopped();
  resume(h);
  EXPECT_EQ(erased.load(), 1);
  EXPECT_EQ(count(NmTreeEvent::kEraseFinishedByOther), 1u);
  EXPECT_FALSE(t.contains(10));
  EXPECT_TRUE(t.contains(20));
  EXPECT_TRUE(t.contains(25));
}

// Tree {10, 20, 30}: X(inf0) -> P(20) -> {10, Q(30) -> {20, 30}}. erase(10) flags P's edge
// to 10, tags P's edge to Q and stops. erase(20) then seeks past the tagged edge (its
// ancestor stays X, its successor P), flags Q's edge to 20, and its one splice on X's edge
// removes P, leaf 10, Q and leaf 20 together.
TEST_F(NatarajanMittalTreeStress, ASeekPastATaggedEdgeSplicesTheWholeChainInOneStep) {
  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  {
    NatarajanMittalTree<int> t;
    for (int k : {10, 20, 30}) ASSERT_TRUE(t.insert(k));
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + kSentinels + 6);
    std::atomic<int> erased{-1};
    const int h = run_until(NmTreeEvent::kTagged, 1, [&] { erased.store(t.erase(10)); });
    EXPECT_TRUE(t.erase(20));
    EXPECT_EQ(count(NmTreeEvent::kSeekSkippedTag), 1u);
    EXPECT_FALSE(t.contains(10));
    EXPECT_FALSE(t.contains(20));
    EXPECT_TRUE(t.contains(30));
    collect_while_stopped();
    resume(h);
    EXPECT_EQ(erased.load(), 1);
    EXPECT_EQ(count(NmTreeEvent::kEraseFinishedByOther), 1u);
    // One key left: its leaf and the inf0 node above it, nothing of the spliced chain.
    EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline + kSentinels + 2);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

// The reason cmr can run this tree and hazard pointers cannot. contains(30) stops standing
// on P(20) of X(inf0) -> P(20) -> {10, Q(30) -> {20, 30}}. erase(10) unlinks P, erase(30)
// unlinks Q and leaf 30: Q and leaf 30 are now reachable only through P's frozen edges, and
// P only from the reader's guard. Cycles run; the reader then walks on through P and Q to
// leaf 30. The keys tell what stayed alive: every erased leaf reachable from the reader
// until it lets go, and only the remaining key after.
TEST_F(NatarajanMittalTreeStress, AReaderOnAnUnlinkedNodeWalksOnThroughItsFrozenEdges) {
  cmr_ds_test::start_counting();
  {
    NatarajanMittalTree<Counted> t;
    for (std::uint64_t k : {10, 20, 30}) ASSERT_TRUE(t.insert(Counted(k)));
    std::atomic<int> found{-1};
    // Step 1 stands on X, step 2 on P.
    const int h =
        run_until(NmTreeEvent::kContainsStep, 2, [&] { found.store(t.contains(Counted(30))); });
    ASSERT_TRUE(t.erase(Counted(10)));
    ASSERT_TRUE(t.erase(Counted(30)));
    EXPECT_FALSE(t.contains(Counted(30)));
    collect_while_stopped();
    // 20 in the tree; 10 and 30 held through P; and the reader's own search key.
    EXPECT_EQ(Counted::live(), 4);
    resume(h);
    EXPECT_EQ(found.load(), 1);  // 30 was in the set when the reader started
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 1);
    EXPECT_TRUE(t.contains(Counted(20)));
  }
  cmr_ds_test::collect_and_count_live();
  EXPECT_EQ(Counted::live(), 0);
}

// An update's seek, too, walks on from an unlinked node, and the guard on the node it
// stands on is what keeps that node: its parent's edge may move on without freezing.
// erase(20) stops with its descent on Q, leaf role on P. erase(30) splices Q out of P's
// edge (P now points to leaf 20), so only the stopped seek's guard holds Q, and leaf 30
// below it (P routes on leaf 20, Q on leaf 30). After cycles the seek walks on through Q's
// frozen edge to leaf 20, fails to flag it (that edge is tagged), helps, seeks again and
// erases 20 from where it now is.
TEST_F(NatarajanMittalTreeStress, AnEraseWhoseSeekStandsOnAnUnlinkedNodeFinishesFromThere) {
  cmr_ds_test::start_counting();
  {
    NatarajanMittalTree<Counted> t;
    for (std::uint64_t k : {10, 20, 30}) ASSERT_TRUE(t.insert(Counted(k)));
    std::atomic<int> erased{-1};
    // Step 1 stands on P, step 2 on Q.
    const int h = run_until(NmTreeEvent::kSeekStep, 2, [&] { erased.store(t.erase(Counted(20))); });
    ASSERT_TRUE(t.erase(Counted(30)));
    collect_while_stopped();
    // 10 and 20 in the tree; 30 held through Q; and the eraser's own search key.
    EXPECT_EQ(Counted::live(), 4);
    resume(h);
    EXPECT_EQ(erased.load(), 1);
    EXPECT_EQ(count(NmTreeEvent::kEraseHelps), 1u);
    EXPECT_FALSE(t.contains(Counted(20)));
    EXPECT_TRUE(t.contains(Counted(10)));
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 1);
  }
}

// The successor is the expected value of cleanup's splice, so the seek keeps it in a guard
// of its own. erase(10) stops after tagging P's edge to Q; erase(20) seeks past that tag
// (successor P, parent Q), flags leaf 20 and stops. erase(10) then finishes: P is unlinked,
// and only the second eraser's successor guard holds it (and leaf 10 below it). After
// cycles that eraser's splice fails on the changed edge, and it finishes from a new seek.
TEST_F(NatarajanMittalTreeStress, AStoppedEraseKeepsItsSuccessorAliveAfterItIsUnlinked) {
  cmr_ds_test::start_counting();
  {
    NatarajanMittalTree<Counted> t;
    for (std::uint64_t k : {10, 20, 30}) ASSERT_TRUE(t.insert(Counted(k)));
    std::atomic<int> first{-1};
    std::atomic<int> second{-1};
    const int h1 = run_until(NmTreeEvent::kTagged, 1, [&] { first.store(t.erase(Counted(10))); });
    const int h2 = run_until(NmTreeEvent::kFlagged, 1, [&] { second.store(t.erase(Counted(20))); });
    EXPECT_EQ(count(NmTreeEvent::kSeekSkippedTag), 1u);
    resume(h1);
    EXPECT_EQ(first.load(), 1);
    collect_while_stopped();
    // 20 and 30 in the tree; 10 held through P; and the second eraser's search key.
    EXPECT_EQ(Counted::live(), 4);
    resume(h2);
    EXPECT_EQ(second.load(), 1);
    EXPECT_FALSE(t.contains(Counted(20)));
    EXPECT_TRUE(t.contains(Counted(30)));
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 1);
  }
}

// erase compares its flagged leaf with later seeks' leaves by address, so it holds it in a
// guard until it returns: a freed leaf's address could come back as a new leaf. erase(10)
// stops after its flag; insert(5) helps and splices leaf 10 out; the eraser then stops
// again just after it saw its leaf gone, when only its own guard still holds leaf 10.
TEST_F(NatarajanMittalTreeStress, AnEraseKeepsItsFlaggedLeafAliveUntilItSawItGone) {
  cmr_ds_test::start_counting();
  {
    NatarajanMittalTree<Counted> t;
    ASSERT_TRUE(t.insert(Counted(10)));
    ASSERT_TRUE(t.insert(Counted(20)));
    std::atomic<int> erased{-1};
    const int h = run_until(NmTreeEvent::kFlagged, 1, [&] { erased.store(t.erase(Counted(10))); });
    ASSERT_TRUE(t.insert(Counted(5)));
    resume_until(h, NmTreeEvent::kEraseFinishedByOther, 1);
    collect_while_stopped();
    // 5 and 20 in the tree; 10 held by the eraser; and its search key.
    EXPECT_EQ(Counted::live(), 4);
    resume(h);
    EXPECT_EQ(erased.load(), 1);
    cmr_ds_test::collect_and_count_live();
    EXPECT_EQ(Counted::live(), 2);
  }
}

// Many threads insert and erase the same few adjacent keys: siblings are erased together,
// erases meet each other's flags and tags, and inserts land on edges being cleaned up. A
// thread yields right after some flags and tags, so others run into the half-done erase.
// Each key must end present iff its successful inserts outnumber its successful erases,
// and every helping path must have run.
TEST_F(NatarajanMittalTreeStress, AdjacentKeysUnderContentionTakeEveryHelpingPath) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 8;
  constexpr int kOperations = 40000;
  g_hook.yield_at_marks.store(true);
  NatarajanMittalTree<int> t;
  std::vector<std::array<int, kKeys>> net(kThreads);
  CollectorLoop collector;
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      net[w].fill(0);
      std::mt19937 rng(31 + w);
      std::uniform_int_distribution<int> key(0, kKeys - 1);
      std::uniform_int_distribution<int> op(0, 4);
      for (int i = 0; i < kOperations; ++i) {
        if (i % 10000 == 0) collector.await_next_cycle();
        const int k = key(rng);
        const int o = op(rng);
        if (o <= 1) {
          net[w][k] += t.insert(k) ? 1 : 0;
        } else if (o <= 3) {
          net[w][k] -= t.erase(k) ? 1 : 0;
        } else {
          (void)t.contains(k);
        }
      }
    });
  }
  for (auto& th : workers) th.join();
  collector.stop();

  for (int k = 0; k < kKeys; ++k) {
    int total = 0;
    for (int w = 0; w < kThreads; ++w) total += net[w][k];
    EXPECT_EQ(total, t.contains(k) ? 1 : 0) << "key " << k;
  }
  EXPECT_GT(count(NmTreeEvent::kInsertHelps), 0u);
  EXPECT_GT(count(NmTreeEvent::kEraseHelps), 0u);
  EXPECT_GT(count(NmTreeEvent::kCleanupLost), 0u);
  EXPECT_GT(count(NmTreeEvent::kEraseFinishedByOther), 0u);
  EXPECT_GT(count(NmTreeEvent::kCleanupKeptChild), 0u);
  std::printf("flags %llu, insert helps %llu, erase helps %llu, kept child %llu, carried flag "
              "%llu, skipped tag %llu, lost splices %llu, finished by others %llu, cycles %llu\n",
              static_cast<unsigned long long>(count(NmTreeEvent::kFlagged)),
              static_cast<unsigned long long>(count(NmTreeEvent::kInsertHelps)),
              static_cast<unsigned long long>(count(NmTreeEvent::kEraseHelps)),
              static_cast<unsigned long long>(count(NmTreeEvent::kCleanupKeptChild)),
              static_cast<unsigned long long>(count(NmTreeEvent::kCleanupCarriedFlag)),
              static_cast<unsigned long long>(count(NmTreeEvent::kSeekSkippedTag)),
              static_cast<unsigned long long>(count(NmTreeEvent::kCleanupLost)),
              static_cast<unsigned long long>(count(NmTreeEvent::kEraseFinishedByOther)),
              static_cast<unsigned long long>(collector.cycles()));
}

TEST_F(NatarajanMittalTreeStress, KeepsEachThreadsOwnKeysExactWhileOthersShareItsSubtrees) {
  NatarajanMittalTree<int> t;
  const auto r = cmr_ds_test::run_own_keys(t, 4, 2048, 150000);
  EXPECT_EQ(r.mismatches, 0);
  EXPECT_EQ(r.wrong_at_end, 0);
  EXPECT_GE(r.cycles, 4u);
}

// Readers look up keys that are never erased and keys that are never inserted while
// writers churn the keys between them, so readers keep walking through edges being flagged
// and tagged and past nodes being unlinked (and freed by the concurrent cycles).
TEST_F(NatarajanMittalTreeStress, ReadersNeverMissAStableKeyWhileItsNeighboursChurn) {
  constexpr int kWriters = 2;
  constexpr int kReaders = 2;
  constexpr int kKeys = 512;  // k % 4 == 0: always present; k % 4 == 3: never inserted
  constexpr int kOperations = 150000;

  NatarajanMittalTree<int> t;
  for (int k = 0; k < kKeys; k += 4) ASSERT_TRUE(t.insert(k));
  std::atomic<int> wrong{0};
  std::atomic<int> writers_done{0};
  CollectorLoop collector;
  std::vector<std::thread> workers;
  for (int w = 0; w < kWriters; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(77 + w);
      std::uniform_int_distribution<int> quad(0, kKeys / 4 - 1);
      for (int i = 0; i < kOperations; ++i) {
        if (i % 30000 == 0) collector.await_next_cycle();
        const int k = quad(rng) * 4 + 1 + static_cast<int>(rng() % 2);  // 1 or 2 mod 4
        if (i % 2 == 0) {
          (void)t.insert(k);
        } else {
          (void)t.erase(k);
        }
      }
      writers_done.fetch_add(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    workers.emplace_back([&, r] {
      std::mt19937 rng(500 + r);
      std::uniform_int_distribution<int> quad(0, kKeys / 4 - 1);
      while (writers_done.load() < kWriters) {
        const int base = quad(rng) * 4;
        if (!t.contains(base)) wrong.fetch_add(1);
        if (t.contains(base + 3)) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : workers) th.join();
  collector.stop();
  EXPECT_EQ(wrong.load(), 0);
  for (int k = 0; k < kKeys; k += 4) EXPECT_TRUE(t.contains(k)) << k;
  EXPECT_GE(collector.cycles(), 2u);
}

// Threads insert and erase random keys of a small range, so the tree never holds more than
// kKeys keys while every successful insert makes two nodes. Between rounds a full cycle
// must bring the heap back to the tree's own nodes; while the rounds run it must never hold
// much more than one round of garbage. `Key` picks the routing-key mode: int copies, Counted
// (move-only) points to leaves, which may keep one erased leaf per internal node.
template <class Key>
void check_bounded_long_run(std::uint64_t retained_leaves_per_key) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  constexpr int kKeys = 512;
  constexpr int kOperationsPerRound = 20000;  // per thread, half of them inserts
  // Each insert attempt that misses makes two nodes.
  constexpr std::uint64_t kRoundGarbage = 2 * kThreads * kOperationsPerRound / 2;
  const std::uint64_t allowance = cmr_ds_test::false_retention_allowance(kRoundGarbage);
  const std::uint64_t tree_max = kSentinels + (2 + retained_leaves_per_key) * kKeys;

  const std::uint64_t baseline = cmr_ds_test::collect_and_count_live();
  const std::uint64_t freed_before = cmr::stats().objects_freed;
  cmr_ds_test::start_counting();
  std::atomic<std::uint64_t> inserted{0};
  {
    NatarajanMittalTree<Key> t;
    CollectorLoop collector;
    const std::vector<std::uint64_t> live_after_round =
        cmr_ds_test::run_rounds(kThreads, kRounds, [&](int w, int round) {
          std::mt19937 rng(static_cast<unsigned>(7 + w + kThreads * round));
          std::uniform_int_distribution<int> key(0, kKeys - 1);
          std::uint64_t mine = 0;
          for (int i = 0; i < kOperationsPerRound; ++i) {
            const auto k = static_cast<std::uint64_t>(key(rng));
            if (i % 2 == 0) {
              mine += t.insert(Key(k)) ? 1 : 0;
            } else {
              (void)t.erase(Key(k));
            }
          }
          inserted.fetch_add(mine);
        });
    collector.stop();

    ASSERT_GT(inserted.load(), kRounds * kThreads * kOperationsPerRound / 16)
        << "too few inserts to show anything";
    for (int r = 0; r < kRounds; ++r) {
      EXPECT_LE(live_after_round[r], baseline + tree_max + allowance) << "after round " << r;
    }
    EXPECT_LE(collector.max_live_objects(), baseline + tree_max + kRoundGarbage + 2 * allowance)
        << "cycles run concurrently: " << collector.cycles();
    EXPECT_GE(cmr::stats().objects_freed - freed_before,
              2 * inserted.load() - tree_max - allowance);
    int present = 0;
    for (int k = 0; k < kKeys; ++k) present += t.contains(Key(static_cast<std::uint64_t>(k)));
    const std::uint64_t live = cmr_ds_test::collect_and_count_live();
    EXPECT_GE(live, baseline + kSentinels + 2 * present);
    EXPECT_LE(live, baseline + kSentinels + (2 + retained_leaves_per_key) * present + allowance);
  }
  EXPECT_EQ(cmr_ds_test::collect_and_count_live(), baseline);
}

TEST_F(NatarajanMittalTreeStress, KeepsLiveObjectsBoundedDuringALongRun) {
  check_bounded_long_run<std::uint64_t>(0);
}

TEST_F(NatarajanMittalTreeStress, KeepsLiveObjectsBoundedWithMoveOnlyKeys) {
  check_bounded_long_run<Counted>(1);
  EXPECT_EQ(Counted::live(), 0);  // every key destroyed exactly once, the last ones with the tree
}

}  // namespace
