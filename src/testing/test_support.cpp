// src/testing/test_support.cpp: the hook, fault and probe tables, and the only code of the
// runtime that reads the fault table (see test_support.hpp).
#include "testing/test_support.hpp"

namespace cmr::detail {

TestHooks g_test_hooks;
TestFaults g_test_faults;
TestProbe g_test_probe;

namespace test_support {

namespace {
ChildFaults g_child_faults;  // read by the scanner child: in this library's data, kept
}  // namespace

bool child_required() noexcept {
  const TestFaults& f = g_test_faults;
  return f.use_child || f.child_crash || f.child_hang || f.child_exit_early ||
         f.child_reads != nullptr || f.fail_clone > 0;
}

const ChildFaults& child_faults() noexcept {
  const TestFaults& f = g_test_faults;
  g_child_faults = ChildFaults{f.child_crash, f.child_hang, f.child_exit_early, f.child_reads};
  return g_child_faults;
}

bool fail_this_clone() noexcept {
  if (g_test_faults.fail_clone <= 0) return false;
  --g_test_faults.fail_clone;
  return true;
}

bool handler_fails_a_syscall() noexcept { return g_test_faults.handler_fails_a_syscall; }

void probe_cycle(long long released_ns, long long child_began_ns) noexcept {
  g_test_probe.released_ns = released_ns;
  g_test_probe.child_began_ns = child_began_ns;
}

}  // namespace test_support

}  // namespace cmr::detail
