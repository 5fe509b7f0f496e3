// Options and parameters at their edges: every duration the API takes, at zero, negative
// and its type's maximum. "Wait forever" (max) must mean forever; zero and negative either
// mean "do not wait" or are refused at init() with a message that names the option.
//
// Each statement runs in a fresh process (support/verdict.hpp): options are process-wide.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

#include "support/verdict.hpp"

namespace {

using namespace std::chrono_literals;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_error;
using cmr_test::exit_expecting_success;

class Durations : public cmr_test::InFreshProcess {};

struct Blob {
  unsigned char bytes[240] = {};
};

constexpr std::size_t kLimit = std::size_t{4} << 20;

// A cycle that frees garbage, with another registered thread to hold; exits with `code`
// unless it completed and freed what it should.
void expect_a_cycle_frees(int code) {
  std::atomic<int> phase{0};
  std::thread other([&] {
    cmr::Guard<Blob> g;
    phase = 1;
    while (phase.load() != 2) std::this_thread::sleep_for(1ms);
  });
  while (phase.load() != 1) std::this_thread::yield();
  {
    cmr::Guard<Blob> g;
    for (int i = 0; i < 100; ++i) cmr::make<Blob>(g);
  }
  const cmr::Stats before = cmr::stats();
  if (!cmr::collect()) _exit(code);
  const cmr::Stats after = cmr::stats();
  if (after.objects_freed < before.objects_freed + 100 || after.cycles_aborted != 0 ||
      after.cycles_failed != 0)
    _exit(code + 1);
  phase = 2;
  other.join();
}

// Allocates 10x the heap limit as garbage: every allocation past the limit has to wait
// for a cycle to make room. Exits with `code` if one is refused.
template <class Make>
void churn_through_the_limit(Make make, int code) {
  cmr::Guard<Blob> g;
  for (std::size_t made = 0; made < 10 * kLimit / sizeof(Blob); ++made)
    if (!make(g)) _exit(code);
}

// Fills the heap to the limit with live objects, so that no cycle can make room.
std::vector<cmr::Root<Blob>>* fill_with_live() {
  auto* live = new std::vector<cmr::Root<Blob>>(kLimit / sizeof(Blob) + 1000);
  cmr::Guard<Blob> g;
  for (auto& r : *live) {
    Blob* b = cmr::try_make_for(g, 200ms);
    if (b == nullptr) return live;
    r.store(b);
  }
  _exit(9);  // the limit was never reached
}

// ---- max: wait forever -------------------------------------------------------------------

TEST_F(Durations, AHandshakeTimeoutOfMaxWaitsForeverAndCyclesComplete) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.handshake_timeout = std::chrono::milliseconds::max()});
                expect_a_cycle_frees(4);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Durations, AScanTimeoutOfMaxLetsEveryScanFinish) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.scan_timeout = std::chrono::milliseconds::max()});
                expect_a_cycle_frees(4);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Durations, ALimitWaitOfMaxWaitsUntilACycleMakesRoom) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.trigger_bytes = 1 << 20, .heap_limit = kLimit,
                           .limit_wait = std::chrono::milliseconds::max()});
                churn_through_the_limit([](cmr::Guard<Blob>& g) { return cmr::make<Blob>(g); },
                                        4);
                if (cmr::stats().limit_failures != 0) _exit(5);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Durations, TryMakeForWithTheMaximumOfAnyDurationTypeWaitsUntilACycleMakesRoom) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.trigger_bytes = 1 << 20, .heap_limit = kLimit});
                churn_through_the_limit(
                    [](cmr::Guard<Blob>& g) {
                      return cmr::try_make_for(g, std::chrono::nanoseconds::max());
                    },
                    4);
                churn_through_the_limit(
                    [](cmr::Guard<Blob>& g) {
                      return cmr::try_make_for(g, std::chrono::hours::max());
                    },
                    5);
                churn_through_the_limit(
                    [](cmr::Guard<Blob>& g) {
                      return cmr::try_make_for(g, std::chrono::duration<double>::max());
                    },
                    6);
                if (cmr::stats().limit_failures != 0) _exit(7);
              }),
              ExitedWithCode(0), "");
}

// ---- zero: do not wait, or refused -------------------------------------------------------

TEST_F(Durations, AZeroOrNegativeHandshakeTimeoutIsRefused) {
  for (auto t : {0ms, -1ms, std::chrono::milliseconds::min()})
    EXPECT_EXIT(exit_expecting_error([t] { cmr::init({.handshake_timeout = t}); },
                                     "handshake_timeout must be positive"),
                ExitedWithCode(0), "handshake_timeout");
}

TEST_F(Durations, AZeroOrNegativeScanTimeoutIsRefused) {
  for (auto t : {0ms, -1ms, std::chrono::milliseconds::min()})
    EXPECT_EXIT(exit_expecting_error([t] { cmr::init({.scan_timeout = t}); },
                                     "scan_timeout must be positive"),
                ExitedWithCode(0), "scan_timeout");
}

TEST_F(Durations, ANegativeLimitWaitIsRefused) {
  for (auto t : {-1ms, std::chrono::milliseconds::min()})
    EXPECT_EXIT(exit_expecting_error(
                    [t] { cmr::init({.heap_limit = kLimit, .limit_wait = t}); },
                    "limit_wait must not be negative"),
                ExitedWithCode(0), "limit_wait");
}

TEST_F(Durations, AZeroLimitWaitRefusesAtOnceWhenNothingCanBeFreed) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.heap_limit = kLimit, .limit_wait = 0ms});
                fill_with_live();
                cmr::Guard<Blob> g;
                try {
                  cmr::make<Blob>(g);
                  _exit(4);
                } catch (const std::bad_alloc&) {
                }
              }),
              ExitedWithCode(0), "");
}

TEST_F(Durations, TryMakeForWithZeroOrANegativeWaitIsTryMake) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.heap_limit = kLimit});
                {
                  cmr::Guard<Blob> g;  // room: all succeed
                  if (cmr::try_make_for(g, 0ns) == nullptr) _exit(4);
                  if (cmr::try_make_for(g, -1s) == nullptr) _exit(5);
                  if (cmr::try_make_for(g, std::chrono::nanoseconds::min()) == nullptr) _exit(6);
                }
                fill_with_live();
                cmr::Guard<Blob> g;  // no room, and none to be made: all refused
                if (cmr::try_make_for(g, 0ns) != nullptr) _exit(7);
                if (cmr::try_make_for(g, -1s) != nullptr) _exit(8);
                if (cmr::try_make_for(g, std::chrono::hours::min()) != nullptr) _exit(10);
              }),
              ExitedWithCode(0), "");
}

}  // namespace
