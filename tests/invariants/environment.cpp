// tests/invariants/environment.cpp: the runtime every invariant test runs on.
//
// Only the tests' own collect() calls run cycles (no trigger is ever reached), so that
// every counter delta a test checks is that of its own cycles, faults included; the
// diagnostics are kept, for the tests that check what an abort says.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>

#include "invariants/invariants.hpp"
#include "support/diagnostics.hpp"

namespace {

class OnlyOurCycles : public ::testing::Environment {
 public:
  void SetUp() override {
    cmr::init({.trigger_bytes = std::size_t{1} << 40,
               .trigger_interval = std::chrono::milliseconds(0),
               .handshake_timeout = cmr_invariants::kHandshakeTimeout,
               .diagnostics = &cmr_test::record_diagnostic});
  }
};
[[maybe_unused]] ::testing::Environment* const g_only_our_cycles =
    ::testing::AddGlobalTestEnvironment(new OnlyOurCycles);

}  // namespace
