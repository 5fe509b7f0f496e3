// src/testing/test_support.hpp: the runtime's side of the test machinery, kept out of the
// production paths: the hook and fault tables tests set (cmr/detail/hooks.hpp), read here
// and nowhere else in the cycle.
//
// Invariant: with no test setting anything, every function below returns "no fault", and
// the scanner child gets an all-clear ChildFaults; production code never writes the tables.
#pragma once

#include "cmr/detail/hooks.hpp"

namespace cmr::detail {

// Faults the tests inject into the scanner child. Passed to the child beside its ScanPlan
// (which holds only what a scan needs), in memory the child keeps (this library's .bss).
struct ChildFaults {
  bool crash = false;       // dies of SIGKILL before answering
  bool hang = false;        // sleeps past scan_timeout
  bool exit_early = false;  // exits 0 without marking its answer complete
  const volatile char* reads = nullptr;  // reads this address first (program memory)
};

namespace test_support {

// A test asked for a scanner child this cycle (any child fault, a clone failure, or
// TestFaults::use_child), so the cycle must not mark in the pause.
bool child_required() noexcept;
// The faults for the next child; stable until the next call.
const ChildFaults& child_faults() noexcept;
// True (and counts one down) when a test asked the next process creation to fail.
bool fail_this_clone() noexcept;
// The handshake handler should make a failing system call (tests of errno saving).
bool handler_fails_a_syscall() noexcept;
// What the last completed cycle observed, for tests of the runtime's own ordering.
void probe_cycle(long long released_ns, long long child_began_ns) noexcept;

}  // namespace test_support

}  // namespace cmr::detail
