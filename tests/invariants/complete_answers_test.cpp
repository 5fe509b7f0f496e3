// tests/invariants/complete_answers_test.cpp: invariant 6, only complete answers free.
//
// An object is freed only after the scanner child marked its answer complete and exited
// normally, and only if it was allocated at the cut: a child that crashed, exited without
// an answer, or could not be created frees nothing, however many such cycles come in a
// row, and the next cycle that completes frees the garbage exactly once. An object made
// after the threads were released (by the collector's own thread, between the release and
// the use of the answer) is not a candidate of that cycle. (A hung child, killed at
// scan_timeout, needs a short timeout of its own: tests/hostile/scanner_failures_test.cpp.)
#include <gtest/gtest.h>
#include <unistd.h>

#include "invariants/invariants.hpp"
#include "support/proc.hpp"

namespace {

using cmr_invariants::HookReset;
using cmr_test::destroyed;
using cmr_test::make_garbage;
using cmr_test::Tracked;

cmr::Root<Tracked>* g_late_root;
int g_late_id = -1;

void allocate_after_release() {
  // Runs on the collector's thread after the threads were released, before the answer is
  // used: this object is reachable and not part of the snapshot.
  cmr::Guard<Tracked> g;
  Tracked* t = cmr::make<Tracked>(g);
  g_late_id = t->id;
  g_late_root->store(t);
}

TEST(CompleteAnswers, ObjectsAllocatedAfterTheSnapshotAreNotCandidates) {
  HookReset reset;
  cmr::Root<Tracked> root;
  g_late_root = &root;
  cmr::detail::g_test_hooks.collector_released = &allocate_after_release;
  ASSERT_TRUE(cmr::collect());
  cmr::detail::g_test_hooks.collector_released = nullptr;
  ASSERT_GE(g_late_id, 0);
  EXPECT_EQ(destroyed(g_late_id), 0);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(g_late_id), 0);
  root.store(nullptr);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(g_late_id), 1);
}

struct FaultReset {
  ~FaultReset() { cmr::detail::g_test_faults = {.use_child = cmr_test::child_mode()}; }
};

TEST(CompleteAnswers, AScannerThatCrashesFreesNothingAndTheNextCycleDoes) {
  FaultReset reset;
  const int garbage = make_garbage();
  const cmr::Stats before = cmr::stats();
  cmr::detail::g_test_faults.fail_clone = 2;  // two cycles in a row without a child
  EXPECT_FALSE(cmr::collect());
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults.child_crash = true;
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults.child_crash = false;
  cmr::detail::g_test_faults.child_exit_early = true;  // exits 0, its answer not complete
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults.child_exit_early = false;
  const cmr::Stats after = cmr::stats();
  EXPECT_EQ(after.clone_failures, before.clone_failures + 2);
  EXPECT_EQ(after.scanner_crashes, before.scanner_crashes + 2);
  EXPECT_EQ(after.cycles_failed, before.cycles_failed + 4);
  EXPECT_EQ(after.cycles, before.cycles);
  EXPECT_EQ(after.objects_freed, before.objects_freed);
  EXPECT_EQ(destroyed(garbage), 0) << "a failed cycle freed an object";

  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1) << "freed twice";
  EXPECT_TRUE(cmr_test::children_of(getpid()).empty())
      << "left behind:" << cmr_test::describe_processes(cmr_test::children_of(getpid()));
}

}  // namespace
