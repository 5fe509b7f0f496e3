// tests/support/test_mode.hpp: run a test binary's cycles with a scanner child every time.
//
// A cycle marks a small heap in the pause and a larger one in a scanner child; most tests
// make small heaps. With CMR_TEST_MODE=child in the environment (ctest registers a second
// run of the invariant and stress tests that way, cmr_add_gtest's BOTH_MODES), every cycle
// of the binary uses the child, so both paths are held to the same tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include <cmr/detail/hooks.hpp>

namespace cmr_test {

inline bool child_mode() {
  const char* mode = std::getenv("CMR_TEST_MODE");
  return mode != nullptr && std::strcmp(mode, "child") == 0;
}

class TestModeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (child_mode()) cmr::detail::g_test_faults.use_child = true;
  }
};
inline ::testing::Environment* const g_test_mode =
    ::testing::AddGlobalTestEnvironment(new TestModeEnvironment);

}  // namespace cmr_test
