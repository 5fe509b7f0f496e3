// tests/hostile/scanner_failures_test.cpp: the scanner child dies, hangs or is never born.
//
// The kernel may kill the scanner (the OOM killer), refuse to create it, or the child may
// end without an answer or stop making progress. Each such cycle must fail, be counted
// once under its own cause, free nothing, leave no process behind and say why; the next
// cycle must free the garbage exactly once and keep what is rooted. A hung scanner is
// killed at scan_timeout, not waited for. (Several failures in a row, invariant 6:
// tests/invariants/complete_answers_test.cpp.)
//
// The faults are injected through cmr::detail::g_test_faults (cmr/detail/hooks.hpp), in a
// helper process per test with a short scan_timeout, so that a hung scanner costs 1.5 s.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>

#include <cmr/detail/hooks.hpp>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

constexpr auto kScanTimeout = 1500ms;

cmr::Options short_scan_options() {
  cmr::Options options = helper_options();
  options.scan_timeout = kScanTimeout;
  return options;
}

// Arms a fault, runs one cycle, and checks that it failed the expected way and changed
// nothing; then checks that the next, fault-free cycle frees the garbage exactly once and
// still keeps a rooted object.
void expect_failed_cycle_frees_nothing(void (*arm)(), std::uint64_t cmr::Stats::*counter,
                                       const char* diagnostic) {
  cmr::init(short_scan_options());
  cmr::Root<Tracked> root;
  const int kept = make_rooted(root);
  const int garbage = make_garbage();
  ASSERT_TRUE(children_of(getpid()).empty()) << describe_processes(children_of(getpid()));
  clear_diagnostics();
  const cmr::Stats before = cmr::stats();

  arm();
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults = {.use_child = true};
  const cmr::Stats after = cmr::stats();

  EXPECT_EQ(after.*counter, before.*counter + 1);
  EXPECT_EQ(after.cycles_failed, before.cycles_failed + 1);
  // The failure is counted once, under its own cause only.
  EXPECT_EQ(after.clone_failures + after.scanner_crashes + after.scanner_timeouts,
            before.clone_failures + before.scanner_crashes + before.scanner_timeouts + 1);
  EXPECT_EQ(after.cycles_aborted, before.cycles_aborted);
  EXPECT_EQ(after.cycles, before.cycles);
  EXPECT_EQ(after.objects_freed, before.objects_freed);
  EXPECT_EQ(destroyed(garbage), 0) << "a failed cycle freed an object";
  EXPECT_EQ(destroyed(kept), 0);
  EXPECT_TRUE(children_of(getpid()).empty())
      << "left behind:" << describe_processes(children_of(getpid()));
  EXPECT_TRUE(diagnosed(diagnostic)) << "no diagnostic mentioning \"" << diagnostic << "\": "
                                     << all_diagnostics();

  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1);
  EXPECT_EQ(destroyed(kept), 0);
  EXPECT_EQ(cmr::stats().cycles, before.cycles + 1);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1) << "freed twice";
  EXPECT_TRUE(children_of(getpid()).empty());
  root.store(nullptr);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(kept), 1);
}

TEST(ScannerFailures, ScannerCrashFreesNothing) {
  run_in_helper([] {
    expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_crash = true; },
                                      &cmr::Stats::scanner_crashes, "without a complete answer");
  });
}

TEST(ScannerFailures, ScannerThatExitsWithoutAnAnswerFreesNothing) {
  run_in_helper([] {
    expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_exit_early = true; },
                                      &cmr::Stats::scanner_crashes, "without a complete answer");
  });
}

TEST(ScannerFailures, FailedProcessCreationFreesNothing) {
  run_in_helper([] {
    expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.fail_clone = 1; },
                                      &cmr::Stats::clone_failures,
                                      "cannot create the scanner process");
  });
}

TEST(ScannerFailures, HungScannerIsKilledAtScanTimeoutAndFreesNothing) {
  run_in_helper([] {
    const auto t0 = Clock::now();
    expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_hang = true; },
                                      &cmr::Stats::scanner_timeouts, "scan_timeout");
    // The cycle waited for scan_timeout, not for ever.
    EXPECT_GE(Clock::now() - t0, kScanTimeout - 100ms);
  });
}

}  // namespace
