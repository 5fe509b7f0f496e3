// tests/invariants/invariants.hpp: what the invariant tests share.
//
// One file per invariant of docs/design.md, each provoking it at
// the interruption point it protects, through the hooks of cmr/detail/hooks.hpp (compiled
// into the inline fast paths: CMR_TEST_HOOKS, from cmr_test_support). docs/invariants.md
// names the mutation each test was checked against. The executable runs twice: as itself
// (small heaps, marked in the pause) and as invariant_test_child (a scanner child every
// cycle, support/test_mode.hpp). Only the tests' own collect() calls run cycles
// (environment.cpp), so every counter delta a test checks is that of its own cycles.
#pragma once

#include <chrono>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>

#include "support/test_mode.hpp"
#include "support/tracked.hpp"

namespace cmr_invariants {

// The handshake timeout of every cycle here (cmr's default): what a test that makes a
// cycle abort waits.
constexpr std::chrono::milliseconds kHandshakeTimeout{1000};

// Clears every hook when a test ends, whatever assertion ended it.
struct HookReset {
  ~HookReset() { cmr::detail::g_test_hooks = {}; }
};

// A test of the scanner child itself: a child every cycle while it lives, in either mode.
struct UseChild {
  UseChild() { cmr::detail::g_test_faults.use_child = true; }
  ~UseChild() { cmr::detail::g_test_faults.use_child = cmr_test::child_mode(); }
};

}  // namespace cmr_invariants
