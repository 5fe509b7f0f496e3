// tests/support/verdict.hpp: one process per statement, for tests of process-wide settings.
//
// init() happens once per process and shutdown() is for good, so tests of options, of
// misuse and of process-wide masks, handlers and forks run each statement in a fresh
// process as a gtest death test ("threadsafe" style: the test binary is re-executed for
// the statement). The statement ends the process with a verdict: 0 only if the expected
// cmr::Error was thrown and its message names the cause (the message is printed too, for
// the death test's regular expression); otherwise 1 nothing thrown, 2 wrong message, 3
// another exception type, 4 and up the test's own.
// A statement that hangs (a misuse that deadlocks instead of failing) dies of SIGALRM.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>

#include <cmr/cmr.hpp>

namespace cmr_test {

constexpr unsigned kStatementSeconds = 60;

// Runs `f`, which must throw a cmr::Error whose message contains `needle`.
template <class F>
[[noreturn]] void exit_expecting_error(F f, const char* needle) {
  alarm(kStatementSeconds);
  try {
    f();
  } catch (const cmr::Error& e) {
    std::fprintf(stderr, "cmr::Error: %s\n", e.what());
    std::fflush(stderr);
    _exit(std::strstr(e.what(), needle) != nullptr ? 0 : 2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    std::fflush(stderr);
    _exit(3);
  }
  std::fprintf(stderr, "no exception\n");
  std::fflush(stderr);
  _exit(1);
}

// Runs `f`, which must not throw.
template <class F>
[[noreturn]] void exit_expecting_success(F f) {
  alarm(kStatementSeconds);
  try {
    f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    std::fflush(stderr);
    _exit(3);
  }
  _exit(0);
}

// Inside a statement: ends the process, naming the failed condition and why, with a
// status that says which line (10 and up, so apart from the codes above).
#define CMR_STATEMENT_CHECK(cond, ...)            \
  do {                                            \
    if (!(cond)) {                                \
      std::fprintf(stderr, "FAILED %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);          \
      std::fprintf(stderr, "\n");                 \
      std::fflush(stderr);                        \
      _exit(10 + __LINE__ % 80);                  \
    }                                             \
  } while (0)

// Fixture: every statement runs in a re-executed copy of the test binary.
class InFreshProcess : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

}  // namespace cmr_test
