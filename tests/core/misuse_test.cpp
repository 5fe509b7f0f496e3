// Misuse tests: what the runtime does when the program breaks its rules. Most of these are
// process-global (init happens once per process, shutdown is for good), so each runs in a
// fresh process as a gtest death test. The "threadsafe" style re-executes the test binary
// for the statement, so nothing this process did beforehand leaks into it; the test bodies
// therefore do nothing outside EXPECT_EXIT / EXPECT_DEATH.
//
// Verdicts come from support/verdict.hpp.
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

#include "support/verdict.hpp"

namespace {

using namespace std::chrono_literals;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_error;
using cmr_test::exit_expecting_success;
using cmr_test::kStatementSeconds;

class Misuse : public cmr_test::InFreshProcess {};

struct Node {
  int value = 0;
  cmr::Atomic<Node> next;
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
                std::atomic<bool> registered{false}, done{false};
                std::thread t([&] {
                  cmr::Guard<Node> g;  // a registered thread that must answer
                  registered = true;
                  while (!done.load()) std::this_thread::sleep_for(1ms);
                });
                while (!registered.load()) std::this_thread::sleep_for(1ms);
                const bool ok = cmr::collect();
                done = true;
                t.join();
                if (!ok) _exit(4);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, InitWithASignalTheCLibraryReservesSaysWhichSignalsAreAllowed) {
  for (int sig : {32, 33}) {
    EXPECT_EXIT(exit_expecting_error([sig] { cmr::init({.signal = sig}); },
                                     "reserved by the C library"),
                ExitedWithCode(0), "SIGRTMIN");
  }
  EXPECT_EXIT(exit_expecting_error([] { cmr::init({.signal = SIGRTMAX + 1}); },
                                   "cannot carry the handshake"),
              ExitedWithCode(0), "SIGRTMIN");
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

// ---- moved-from guards ------------------------------------------------------------------
// A moved-from guard holds no slot. reset() on it does nothing; protect(), set() and make()
// re-arm it with a fresh slot of the calling thread, as a new guard would.

TEST_F(Misuse, ResetOnAMovedFromGuardDoesNothing) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::Guard<Node> a;
                Node* n = cmr::make<Node>(a);
                cmr::Guard<Node> b(std::move(a));
                a.reset();
                if (a.get() != nullptr || b.get() != n) _exit(4);
                cmr::Guard<Node> c;
                c = std::move(b);
                b.reset();
                if (b.get() != nullptr || c.get() != n) _exit(5);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Misuse, MakeProtectAndSetReArmAMovedFromGuard) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::Root<Node> root;
                cmr::Guard<Node> a;
                cmr::Guard<Node> b(std::move(a));
                Node* n = cmr::make<Node>(a);  // a is armed again
                n->value = 7;
                if (a.get() != n) _exit(4);
                if (!cmr::collect() || n->value != 7) _exit(5);
                root.store(n);
                cmr::Guard<Node> c(std::move(a));
                if (a.protect(root) != n || a.get() != n) _exit(6);
                cmr::Guard<Node> d(std::move(a));
                a.set(n);
                if (a.get() != n) _exit(7);
                root.store(nullptr);
                c.reset();
                d.reset();
                if (!cmr::collect() || n->value != 7) _exit(8);  // a still protects it
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

// ---- shutdown() from a destructor ---------------------------------------------------------

char g_shutdown_message[256];
std::atomic<int> g_shutdown_errors{0};

struct ShutsDownInDestructor {
  ~ShutsDownInDestructor() {
    try {
      cmr::shutdown();
    } catch (const cmr::Error& e) {
      std::snprintf(g_shutdown_message, sizeof g_shutdown_message, "%s", e.what());
      g_shutdown_errors.fetch_add(1);
    }
  }
  int payload = 0;
};

void expect_shutdown_in_destructor_throws() {
  {
    cmr::Guard<ShutsDownInDestructor> g;
    cmr::make<ShutsDownInDestructor>(g);
  }
  if (!cmr::collect()) _exit(4);
  if (g_shutdown_errors.load() != 1) _exit(5);
  std::fprintf(stderr, "cmr::Error: %s\n", g_shutdown_message);
  if (std::strstr(g_shutdown_message, "collector's own thread") == nullptr) _exit(2);
  // The runtime was not shut down: it still collects.
  cmr::Guard<Node> g;
  cmr::make<Node>(g);
  if (!cmr::collect()) _exit(6);
  cmr::shutdown();  // and a shutdown from the program's own thread works
}

TEST_F(Misuse, ShutdownFromADestructorOnTheCollectorThreadThrows) {
  EXPECT_EXIT(exit_expecting_success(&expect_shutdown_in_destructor_throws), ExitedWithCode(0),
              "shutdown\\(\\) was called on the collector's own thread");
}

TEST_F(Misuse, ShutdownFromADestructorWithoutACollectorThreadThrows) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.background = false});
                expect_shutdown_in_destructor_throws();
              }),
              ExitedWithCode(0), "shutdown\\(\\) was called on the collector's own thread");
}

}  // namespace
