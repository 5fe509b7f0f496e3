// tests/core/fork_test.cpp: the runtime keeps working in a child of the program's fork().
//
// Pre-fork servers build their structures, then fork workers that keep using them. In the
// child the runtime rebuilds itself on first use: the forking thread stays registered, the
// records of the threads that did not survive are dropped and their blocks handed on, a
// new collector thread starts, and objects inherited from the parent are the child's own
// copies, reclaimed there with their destructors. These tests fork while cycles run,
// while the collector destroys garbage, and from a forked child again.
//
// Each statement runs in a fresh process (core/verdict.hpp); each forked child reports by
// its exit status, which the forking process checks: 0 is success, anything else names the
// check that failed. Every test forks only once the other threads are past their start
// and registration (the points where they call malloc): the child of a fork while another
// thread is inside malloc needs a malloc with fork handlers, which AddressSanitizer's
// allocator (GCC 12) lacks, so under it such a child can hang in the sanitizer itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "core/verdict.hpp"

namespace {

using namespace std::chrono_literals;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_success;

class Fork : public cmr_test::InFreshProcess {};

// Counted in this process's memory: a child's counts start from the parent's at the fork.
std::atomic<long> g_made{0}, g_destroyed{0};
struct Counted {
  Counted() { g_made.fetch_add(1); }
  explicit Counted(long v) : value(v) { g_made.fetch_add(1); }
  ~Counted() { g_destroyed.fetch_add(1); }
  Counted(Counted&& other) noexcept : value(other.value) { g_made.fetch_add(1); }
  long value = 0;
};

// Waits for `pid` (at most `timeout`); its exit code, or 100 + signal, or 99 on timeout.
int wait_for(pid_t pid, std::chrono::seconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return 99;
    }
    std::this_thread::sleep_for(1ms);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 100 + WTERMSIG(status) : 98;
}

// In a child: makes garbage with destructors, collects, and checks it was destroyed once
// each; exits with `code` (or code + 1, + 2) if not.
void child_collects_its_own_garbage(int code) {
  const long destroyed_before = g_destroyed.load();
  {
    cmr::Guard<Counted> g;
    for (int i = 0; i < 1000; ++i) cmr::make<Counted>(g);
  }
  if (!cmr::collect()) _exit(code);
  if (!cmr::collect()) _exit(code + 1);
  if (g_destroyed.load() - destroyed_before != 1000) _exit(code + 2);
}

TEST_F(Fork, AStructureBuiltBeforeForkIsChurnedByTheChildUnderAutomaticCycles) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::ds::TreiberStack<Counted> stack;
                for (long i = 0; i < 10000; ++i) stack.push(Counted(i));
                // Each push made a value and a node copy; the values are moved-from
                // temporaries, destroyed at once: the nodes' values are what lives.
                if (!cmr::collect()) _exit(19);  // the collector thread is running
                const pid_t pid = ::fork();
                if (pid == 0) {
                  // The child pops what the parent pushed, and churns with automatic
                  // cycles (the default trigger) until some have run.
                  long popped = 0, sum = 0;
                  while (auto v = stack.try_pop()) {
                    ++popped;
                    sum += v->value;
                  }
                  if (popped != 10000 || sum != 10000L * 9999 / 2) _exit(4);
                  const std::uint64_t cycles_at_fork = cmr::stats().cycles;
                  for (long round = 0; cmr::stats().cycles < cycles_at_fork + 5; ++round) {
                    if (round > 50'000'000) _exit(5);  // no automatic cycle in the child
                    stack.push(Counted(round));
                    if (!stack.try_pop()) _exit(6);
                  }
                  if (!cmr::collect() || !cmr::collect()) _exit(7);
                  // Every object made, in the parent or here, is destroyed exactly once.
                  if (g_made.load() != g_destroyed.load()) _exit(8);
                  if (cmr::stats().live_objects != 0) _exit(9);
                  child_collects_its_own_garbage(10);
                  _exit(0);
                }
                if (pid < 0) _exit(20);
                const int code = wait_for(pid);
                if (code != 0) {
                  std::fprintf(stderr, "the child failed with %d\n", code);
                  _exit(21);
                }
                // The parent is unaffected: its stack is whole.
                long left = 0;
                while (stack.try_pop()) ++left;
                if (left != 10000) _exit(22);
                if (!cmr::collect()) _exit(23);
              }),
              ExitedWithCode(0), "");
}

TEST_F(Fork, ChildrenForkedWhileFourThreadsChurnAndCyclesRunAllCollect) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<int> churning{0};
                std::vector<std::thread> churn;
                for (int t = 0; t < 4; ++t)
                  churn.emplace_back([&, t] {
                    for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
                      stack.push(i * 4 + t);
                      stack.try_pop();
                      if (i == 1000) churning.fetch_add(1);
                    }
                  });
                std::thread cycler([&] {
                  for (bool first = true; !stop.load(std::memory_order_relaxed); first = false) {
                    cmr::collect();
                    if (first) churning.fetch_add(1);
                  }
                });
                while (churning.load() != 5) std::this_thread::sleep_for(1ms);
                int failures = 0, first_code = 0;
                for (int round = 0; round < 200; ++round) {
                  const pid_t pid = ::fork();
                  if (pid == 0) {
                    while (stack.try_pop()) {
                    }
                    child_collects_its_own_garbage(4);
                    _exit(0);
                  }
                  if (pid < 0) _exit(20);
                  if (const int code = wait_for(pid); code != 0 && failures++ == 0) first_code = code;
                }
                stop = true;
                cycler.join();
                for (auto& t : churn) t.join();
                if (failures != 0) {
                  std::fprintf(stderr, "%d of 200 children failed, the first with %d\n", failures,
                               first_code);
                  _exit(21);
                }
              }),
              ExitedWithCode(0), "");
}

TEST_F(Fork, AGrandchildCollectsToo) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::Root<Counted> kept;
                {
                  cmr::Guard<Counted> g;
                  kept.store(cmr::make<Counted>(g, 42));
                }
                if (!cmr::collect()) _exit(19);  // the collector thread is running
                const pid_t child = ::fork();
                if (child == 0) {
                  child_collects_its_own_garbage(4);
                  const pid_t grandchild = ::fork();
                  if (grandchild == 0) {
                    child_collects_its_own_garbage(10);
                    cmr::Guard<Counted> g;
                    if (g.protect(kept)->value != 42) _exit(14);
                    _exit(0);
                  }
                  const int code = wait_for(grandchild);
                  _exit(code == 0 ? 0 : 20 + code);
                }
                const int code = wait_for(child);
                if (code != 0) {
                  std::fprintf(stderr, "the child failed with %d\n", code);
                  _exit(30);
                }
                cmr::Guard<Counted> g;
                if (g.protect(kept)->value != 42) _exit(31);
              }),
              ExitedWithCode(0), "");
}

// The collector is made to stop between two destructors of one block's garbage (a hook)
// while the test's main thread forks. In the child, the object already destroyed must not
// be destroyed again, and the others must be destroyed once.
std::atomic<int> g_hook_state{0};  // 1: the collector waits in the hook; 2: fork done
void wait_for_the_fork() {
  int expected = 0;
  if (!g_hook_state.compare_exchange_strong(expected, 1)) return;  // the first time only
  while (g_hook_state.load() != 2) std::this_thread::sleep_for(100us);
}

TEST_F(Fork, AForkWhileTheCollectorDestroysGarbageNeverDestroysAnObjectTwice) {
  EXPECT_EXIT(exit_expecting_success([] {
                {
                  cmr::Guard<Counted> g;
                  for (int i = 0; i < 100; ++i) cmr::make<Counted>(g);
                }
                const long made = g_made.load();
                cmr::detail::g_test_hooks.collector_destroyed_one = &wait_for_the_fork;
                std::thread collecting([] { cmr::collect(); });
                while (g_hook_state.load() != 1) std::this_thread::sleep_for(100us);
                const long destroyed_at_fork = g_destroyed.load();
                const pid_t pid = ::fork();
                if (pid == 0) {
                  cmr::detail::g_test_hooks = {};
                  if (destroyed_at_fork != 1) _exit(4);  // the hook runs after the first
                  if (!cmr::collect() || !cmr::collect()) _exit(5);
                  if (g_destroyed.load() != made) _exit(6);  // each once, none twice
                  child_collects_its_own_garbage(10);
                  _exit(0);
                }
                g_hook_state = 2;
                collecting.join();
                cmr::detail::g_test_hooks = {};
                if (pid < 0) _exit(20);
                const int code = wait_for(pid);
                if (code != 0) {
                  std::fprintf(stderr, "the child failed with %d\n", code);
                  _exit(21);
                }
                if (g_destroyed.load() != made) _exit(22);  // the parent finished its own
              }),
              ExitedWithCode(0), "");
}

// Another thread is inside an object's constructor at the fork. In the child that thread
// does not exist: the object is unreachable there and is never finished, so its slot is
// released without its destructor (which would see a half-built object).
std::atomic<int> g_building{0};  // 1: the constructor waits; 2: fork done
template <std::size_t kBytes>
struct Building {
  static constexpr long kBuilt = 0x5eed;
  Building() {
    g_building.store(1);
    while (g_building.load() != 2) std::this_thread::sleep_for(100us);
    built = kBuilt;
  }
  ~Building() {
    if (built != kBuilt) _exit(7);  // a destructor ran on an object never built
    g_destroyed.fetch_add(1);
  }
  long built = 0;
  char payload[kBytes] = {};
};

template <std::size_t kBytes>
void fork_while_another_thread_constructs() {
  if (!cmr::collect()) _exit(19);  // the collector thread is running
  std::thread constructing([] {
    cmr::Guard<Building<kBytes>> g;
    cmr::make<Building<kBytes>>(g);
  });
  while (g_building.load() != 1) std::this_thread::sleep_for(100us);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!cmr::collect() || !cmr::collect()) _exit(4);
    if (g_destroyed.load() != 0) _exit(5);
    if (cmr::stats().live_objects != 0) _exit(6);  // released all the same
    child_collects_its_own_garbage(10);
    _exit(0);
  }
  g_building = 2;
  constructing.join();
  if (pid < 0) _exit(20);
  const int code = wait_for(pid);
  if (code != 0) {
    std::fprintf(stderr, "the child failed with %d\n", code);
    _exit(21);
  }
  if (!cmr::collect() || !cmr::collect()) _exit(22);
  if (g_destroyed.load() != 1) _exit(23);  // in the parent it was built, and is destroyed
}

TEST_F(Fork, AnObjectUnderConstructionAtTheForkIsReleasedUnbuiltInTheChild) {
  EXPECT_EXIT(exit_expecting_success([] { fork_while_another_thread_constructs<64>(); }),
              ExitedWithCode(0), "");
}

TEST_F(Fork, ALargeObjectUnderConstructionAtTheForkIsReleasedUnbuiltInTheChild) {
  EXPECT_EXIT(exit_expecting_success([] { fork_while_another_thread_constructs<100000>(); }),
              ExitedWithCode(0), "");
}

// A fork while the scanner child of a cycle is alive (the threads are released, the
// answer not yet used): the forked child's runtime works.
std::atomic<int> g_released_state{0};
void wait_after_release() {
  int expected = 0;
  if (!g_released_state.compare_exchange_strong(expected, 1)) return;
  while (g_released_state.load() != 2) std::this_thread::sleep_for(100us);
}

TEST_F(Fork, AForkWhileTheScannerChildRunsLeavesAChildThatCollects) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::detail::g_test_faults.use_child = true;
                {
                  cmr::Guard<Counted> g;
                  for (int i = 0; i < 100; ++i) cmr::make<Counted>(g);
                }
                cmr::detail::g_test_hooks.collector_released = &wait_after_release;
                std::thread collecting([] { cmr::collect(); });
                while (g_released_state.load() != 1) std::this_thread::sleep_for(100us);
                const pid_t pid = ::fork();
                if (pid == 0) {
                  cmr::detail::g_test_hooks = {};
                  // The parent's cycle had freed nothing yet: its garbage is the child's.
                  if (g_destroyed.load() != 0) _exit(4);
                  if (!cmr::collect() || !cmr::collect()) _exit(5);
                  if (g_destroyed.load() != 100) _exit(6);
                  child_collects_its_own_garbage(10);
                  _exit(0);
                }
                g_released_state = 2;
                collecting.join();
                cmr::detail::g_test_hooks = {};
                if (pid < 0) _exit(20);
                const int code = wait_for(pid);
                if (code != 0) {
                  std::fprintf(stderr, "the child failed with %d\n", code);
                  _exit(21);
                }
              }),
              ExitedWithCode(0), "");
}

}  // namespace
