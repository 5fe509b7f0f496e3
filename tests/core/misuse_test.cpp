// Misuse tests: what the runtime does when the program breaks its rules. Most of these are
// process-global (init happens once per process, shutdown is for good), so each runs in a
// fresh process as a gtest death test. The "threadsafe" style re-executes the test binary
// for the statement, so nothing this process did beforehand leaks into it; the test bodies
// therefore do nothing outside EXPECT_EXIT / EXPECT_DEATH.
//
// Where an error is expected, the statement exits with code 0 only if a cmr::Error was
// thrown whose message names the cause (and prints the message, which the death test's
// regular expression checks as well). Any other outcome exits with a distinct code:
// 1 nothing thrown, 2 wrong message, 3 another exception type.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <cmr/cmr.hpp>

namespace {

using namespace std::chrono_literals;
using ::testing::ExitedWithCode;

struct Node {
  int value = 0;
  cmr::Atomic<Node> next;
};

// Runs `f`, which must throw a cmr::Error whose message contains `needle`, and ends the
// process with the verdict.
// A statement that hangs (a misuse that deadlocks instead of failing) dies of SIGALRM.
constexpr unsigned kStatementSeconds = 60;

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

// Runs `f`, which must not throw, and ends the process with the verdict.
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

class Misuse : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// ---- init ---------------------------------------------------------------------------

TEST_F(Misuse, ASecondInitWithDifferentOptionsThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    cmr::init({.handshake_timeout = 700ms});
                    cmr::init({.handshake_timeout = 900ms});
                  },
                  "second time with different options"),
              ExitedWithCode(0), "second time with different options");
}

TEST_F(Misuse, ASecondInitWithTheSameOptionsIsHarmless) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.handshake_timeout = 700ms, .background = false});
                cmr::init({.handshake_timeout = 700ms, .background = false});
                cmr::Guard<Node> g;
                cmr::make<Node>(g);
                if (!cmr::collect()) _exit(4);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithOtherOptionsAfterImplicitInitialisationThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    { cmr::Guard<Node> g; }  // initialises with the defaults
                    cmr::init({.trigger_bytes = 1 << 20});
                  },
                  "initialised with defaults"),
              ExitedWithCode(0), "cmr::init\\(\\) before creating any Guard");
}

TEST_F(Misuse, InitWithDefaultOptionsAfterImplicitInitialisationIsHarmless) {
  EXPECT_EXIT(exit_expecting_success([] {
                { cmr::Guard<Node> g; }
                cmr::init();
                cmr::init(cmr::Options{});
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithASignalTheProgramAlreadyHandlesThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    struct sigaction sa {};
                    sa.sa_handler = [](int) {};
                    sigemptyset(&sa.sa_mask);
                    sigaction(SIGUSR2, &sa, nullptr);
                    cmr::init({.signal = SIGUSR2});
                  },
                  "already has a handler"),
              ExitedWithCode(0), "signal 12 .*already has a handler");
}

TEST_F(Misuse, InitWithAnIgnoredSignalThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    signal(SIGUSR2, SIG_IGN);
                    cmr::init({.signal = SIGUSR2});
                  },
                  "is ignored"),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithAFailedSignalLeavesTheProgramsHandlerInPlace) {
  static std::atomic<int> calls{0};
  EXPECT_EXIT(
      {
        alarm(kStatementSeconds);
        struct sigaction sa {};
        sa.sa_handler = [](int) { calls.fetch_add(1); };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR2, &sa, nullptr);
        try {
          cmr::init({.signal = SIGUSR2});
        } catch (const cmr::Error&) {
        }
        raise(SIGUSR2);
        _exit(calls.load() == 1 ? 0 : 1);
      },
      ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithSigkillThrows) {
  EXPECT_EXIT(exit_expecting_error([] { cmr::init({.signal = SIGKILL}); },
                                   "cannot carry the handshake"),
              ExitedWithCode(0), "signal 9 cannot carry the handshake");
}

TEST_F(Misuse, InitWithSigsegvThrows) {
  EXPECT_EXIT(exit_expecting_error([] { cmr::init({.signal = SIGSEGV}); },
                                   "cannot carry the handshake"),
              ExitedWithCode(0), "signal 11 cannot carry the handshake");
}

TEST_F(Misuse, InitWithAnOutOfRangeSignalThrows) {
  EXPECT_EXIT(exit_expecting_error([] { cmr::init({.signal = 0}); },
                                   "cannot carry the handshake"),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithANonPositiveTimeoutThrows) {
  EXPECT_EXIT(exit_expecting_error([] { cmr::init({.handshake_timeout = 0ms}); },
                                   "handshake_timeout"),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, ARealTimeSignalIsAccepted) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.signal = SIGRTMIN + 3});
                std::thread t([] {
                  cmr::Guard<Node> g;  // a registered thread that must answer
                  std::this_thread::sleep_for(300ms);
                });
                std::this_thread::sleep_for(50ms);
                const bool ok = cmr::collect();
                t.join();
                if (!ok) _exit(4);
              }),
              ExitedWithCode(0), "");
}

// ---- shutdown ---------------------------------------------------------------------------

TEST_F(Misuse, AGuardCreatedAfterShutdownThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    { cmr::Guard<Node> g; }  // the thread has a free slot
                    cmr::shutdown();
                    cmr::Guard<Node> g;
                  },
                  "after cmr::shutdown()"),
              ExitedWithCode(0), "Guard was created after cmr::shutdown");
}

TEST_F(Misuse, AGuardCreatedAfterShutdownOnANewThreadThrows) {
  EXPECT_EXIT(exit_expecting_success([] {
                { cmr::Guard<Node> g; }
                cmr::shutdown();
                int verdict = 1;
                std::thread([&] {
                  try {
                    cmr::Guard<Node> g;
                  } catch (const cmr::Error& e) {
                    verdict = std::strstr(e.what(), "shutdown") != nullptr ? 0 : 2;
                  }
                }).join();
                if (verdict != 0) _exit(verdict);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, MakeAfterShutdownThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    cmr::Guard<Node> g;  // made before shutdown: still usable
                    cmr::shutdown();
                    cmr::make<Node>(g);
                  },
                  "make() was called after cmr::shutdown()"),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, TryMakeAfterShutdownReturnsNull) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::Guard<Node> g;
                cmr::shutdown();
                if (cmr::try_make<Node>(g) != nullptr) _exit(4);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, CollectAfterShutdownThrows) {
  EXPECT_EXIT(exit_expecting_error(
                  [] {
                    { cmr::Guard<Node> g; }
                    cmr::shutdown();
                    cmr::collect();
                  },
                  "after cmr::shutdown()"),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, ShutdownKeepsExistingGuardsAndRootsWorking) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::Root<Node> root;
                cmr::Guard<Node> g;
                Node* n = cmr::make<Node>(g);
                n->value = 42;
                root.store(n);
                cmr::shutdown();
                cmr::Guard<Node>* moved = new cmr::Guard<Node>(std::move(g));
                if (moved->protect(root) != n || n->value != 42) _exit(4);
                moved->reset();
                delete moved;
                root.store(nullptr);
              }),
              ExitedWithCode(0), "");
}

// ---- guards on the wrong thread -------------------------------------------------------

TEST_F(Misuse, AGuardDestroyedOnAnotherThreadAborts) {
  EXPECT_DEATH(
      {
        alarm(kStatementSeconds);
        auto guard = std::make_unique<cmr::Guard<Node>>();
        std::thread([&] { guard.reset(); }).join();
        std::fprintf(stderr, "the guard was destroyed without complaint\n");
        _exit(0);
      },
      "other than the one");
}

TEST_F(Misuse, AGuardDestroyedOnAnotherRegisteredThreadAborts) {
  EXPECT_DEATH(
      {
        alarm(kStatementSeconds);
        auto guard = std::make_unique<cmr::Guard<Node>>();
        std::thread([&] {
          cmr::Guard<Node> mine;  // this thread is registered too
          guard.reset();
        }).join();
        std::fprintf(stderr, "the guard was destroyed without complaint\n");
        _exit(0);
      },
      "other than the one");
}

// ---- collect() from a destructor --------------------------------------------------------

std::atomic<int> g_destructor_calls{0};
std::atomic<int> g_destructor_errors{0};
char g_destructor_message[256];

struct CollectsInDestructor {
  ~CollectsInDestructor() {
    g_destructor_calls.fetch_add(1);
    try {
      cmr::collect();
    } catch (const cmr::Error& e) {
      std::snprintf(g_destructor_message, sizeof g_destructor_message, "%s", e.what());
      g_destructor_errors.fetch_add(1);
    }
  }
  int payload = 0;
};

void make_one_that_collects_in_its_destructor() {
  cmr::Guard<CollectsInDestructor> g;
  cmr::make<CollectsInDestructor>(g);
}

void expect_collect_in_destructor_throws() {
  make_one_that_collects_in_its_destructor();
  if (!cmr::collect()) _exit(4);
  if (g_destructor_calls.load() != 1) _exit(5);
  if (g_destructor_errors.load() != 1) _exit(6);
  std::fprintf(stderr, "cmr::Error: %s\n", g_destructor_message);
  if (std::strstr(g_destructor_message, "destructor") == nullptr) _exit(2);
  // The runtime still works afterwards.
  make_one_that_collects_in_its_destructor();
  if (!cmr::collect() || g_destructor_calls.load() != 2 || g_destructor_errors.load() != 2)
    _exit(7);
}

TEST_F(Misuse, CollectFromADestructorOnTheCollectorThreadThrows) {
  EXPECT_EXIT(exit_expecting_success(&expect_collect_in_destructor_throws), ExitedWithCode(0),
              "collect\\(\\) was called on the collector's own thread");
}

TEST_F(Misuse, CollectFromADestructorWithoutACollectorThreadThrows) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.background = false});
                expect_collect_in_destructor_throws();
              }),
              ExitedWithCode(0), "collect\\(\\) was called on the collector's own thread");
}

}  // namespace
