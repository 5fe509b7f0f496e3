// tests/hostile/program_fork_test.cpp: the program calls fork() itself.
//
// Pre-fork servers build their structures, then fork workers that keep using them; test
// harnesses fork too. In the child the runtime rebuilds itself on first use: the forking
// thread stays registered, the records of the threads that did not survive are dropped
// and their blocks handed on, a new collector thread starts, and objects inherited from
// the parent are the child's own copies, reclaimed there with their destructors, each
// once. The forks land where they hurt: while cycles run and threads churn, while the
// collector destroys garbage, while the scanner child of a cycle runs, while another thread
// is inside a constructor, in a grandchild, and at the child's exit().
//
// ProgramFork.* run in a helper process (support/helper.hpp); Fork.* in a fresh process
// per statement (support/verdict.hpp), whose forked children report by exit status: 0 is
// success, anything else names the check that failed. Those fork only once the other
// threads are past their start and registration (the points where they call malloc): the
// child of a fork while another thread is inside malloc needs a malloc with fork handlers,
// which AddressSanitizer's allocator (GCC 12) lacks, so under it such a child can hang in
// the sanitizer itself.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <cmr/detail/hooks.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "hostile/hostile.hpp"
#include "support/verdict.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

using ::testing::ExitedWithCode;

struct ForkBlob {
  std::uint64_t words[30] = {};
};

// In the child of the program's fork(): what must and must not work there.
void check_forked_child(int round, Tracked* held, cmr::Root<Tracked>& root) {
  alarm(20);
  // The runtime rebuilds itself here: a collector of its own, cycles that complete.
  const int garbage = make_garbage();
  HCHECK(cmr::collect(), "round %d: no cycle completed in the child of fork(): %s", round,
         all_diagnostics().c_str());
  HCHECK(destroyed(garbage) == 1, "round %d: the child's garbage destroyed %d times", round,
         destroyed(garbage));
  HCHECK(held->payload[0] == static_cast<std::uint64_t>(round) + 1,
         "round %d: the object guarded across fork() changed", round);
  {
    cmr::Guard<Tracked> g;
    Tracked* kept = g.protect(root);
    HCHECK(kept != nullptr && kept->payload[0] == 42, "round %d: the root's object is lost", round);
    Tracked* fresh = cmr::make<Tracked>(g);
    fresh->payload[1] = 7;
    HCHECK(g.get() == fresh && fresh->payload[1] == 7, "round %d: make() failed", round);
  }
  // Past the trigger: automatic cycles in the child.
  for (int i = 0; i < 4096; ++i) {
    cmr::Guard<ForkBlob> g;
    cmr::make<ForkBlob>(g);
  }
  std::thread([round] {
    cmr::Guard<Tracked> g;  // a thread of the child registers and allocates
    HCHECK(cmr::make<Tracked>(g) != nullptr, "round %d: make() on a new thread failed", round);
  }).join();
}

void expect_child_ends(pid_t pid, int round, Clock::duration timeout) {
  const auto status = wait_for_exit(pid, timeout);
  if (!status) {
    HCHECK(false, "round %d: the forked child hung:%s", round, describe_threads(pid).c_str());
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return;
  }
  HCHECK(WIFEXITED(*status) && WEXITSTATUS(*status) == 0, "round %d: the forked child %s", round,
         describe_status(*status).c_str());
}

#if defined(__SANITIZE_ADDRESS__)
// GCC 12's AddressSanitizer allocator is not fork-safe (LLVM added its atfork locking in
// llvm/llvm-project#75290): a child forked while another thread is inside malloc can
// deadlock in its own first malloc. Under ASan the program's threads rest at each fork.
constexpr bool kQuietForks = true;
#else
constexpr bool kQuietForks = false;
#endif

// The children end with _exit so that this test checks fork alone; exit() in a forked
// child has its own test below.
TEST(ProgramFork, TheProgramsForkLeavesAChildThatAllocatesAndCollects) {
  Helper h([] {
    cmr::init({.trigger_bytes = 64 << 10,  // the mutator triggers background cycles too
               .handshake_timeout = kHandshakeTimeout,
               .diagnostics = &record_diagnostic});
    cmr::Root<Tracked> root;
    make_rooted(root);
    {
      cmr::Guard<Tracked> g;
      g.protect(root)->payload[0] = 42;
    }
    const int garbage = make_garbage();
    std::atomic<bool> stop{false}, quiet{false};
    std::atomic<int> resting{0}, completed{0};
    auto rest_while_quiet = [&] {
      if (!quiet.load()) return;
      resting.fetch_add(1);
      while (quiet.load()) std::this_thread::sleep_for(100us);
      resting.fetch_sub(1);
    };
    std::atomic<bool> registered{false};
    std::thread mutator([&] {
      while (!stop.load()) {
        rest_while_quiet();
        cmr::Guard<ForkBlob> g;
        cmr::make<ForkBlob>(g);
        registered = true;
      }
    });
    // Registered before the first explicit cycle: a thread that registers just as a cycle
    // starts can miss its signal (registry.cpp lists the record before the handler can find
    // it through tls_record) and abort that cycle.
    while (!registered.load()) std::this_thread::yield();
    std::thread cycler([&] {
      while (!stop.load()) {
        rest_while_quiet();
        if (cmr::collect()) completed.fetch_add(1);
      }
    });
    const cmr::Stats before = cmr::stats();
    for (int round = 0; round < 12; ++round) {
      cmr::Guard<Tracked> g;
      Tracked* held = cmr::make<Tracked>(g);
      held->payload[0] = static_cast<std::uint64_t>(round) + 1;
      if (kQuietForks) {
        quiet = true;
        while (resting.load() != 2) std::this_thread::sleep_for(100us);
        cmr::collect();  // the collector thread's last cycle, frees included, is over
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(round % 3));
      }
      const pid_t pid = fork();
      if (pid == 0) {
        g_failures = 0;
        check_forked_child(round, held, root);
        _exit(g_failures.load() == 0 ? 0 : 1);
      }
      HCHECK(pid > 0, "fork: %s", std::strerror(errno));
      if (pid > 0) expect_child_ends(pid, round, 10s);
      quiet = false;
    }
    for (int i = 0; i < 5000 && completed.load() == 0; ++i) std::this_thread::sleep_for(1ms);
    stop = true;
    cycler.join();
    mutator.join();
    const cmr::Stats after = cmr::stats();
    // Aborted cycles are tolerated: a loaded machine may not schedule a thread in time.
    HCHECK(completed.load() > 0 && after.cycles_failed == before.cycles_failed,
           "cycles alongside fork(): %d completed, %llu failed: %s", completed.load(),
           (unsigned long long)(after.cycles_failed - before.cycles_failed),
           all_diagnostics().c_str());
    HCHECK(collect_completing(), "no cycle completed after the forks");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    cmr::Guard<Tracked> g;
    HCHECK(g.protect(root)->payload[0] == 42, "the rooted object was freed or changed");
  });
  expect_passed(h.finish(60s));
}

// A child forked while the program collects runs the runtime's atexit handler
// (Collector::stop) in exit(), with no collector thread: locking the collector's request
// mutex (held at the fork by a thread the child does not have) or broadcasting its
// condition variable (glibc waits there for waiters the child does not have) would hang
// it, about once in a hundred forks. Meaningful in a Release build: under GCC 12's ASan
// the child's exit can also deadlock in the sanitizer's own allocator.
TEST(ProgramFork, AChildForkedWhileCollectRunsExitsNormally) {
  // exit() in the child frees memory; with threads allocating at the fork, GCC 12's libasan
  // allocator can be left locked in the child (not fork-safe; fixed upstream in
  // llvm/llvm-project#75290), so the child hangs in ASan, not in cmr (seen in CI: the
  // child waits on a futex in the sanitizer allocator's own state). The Release run holds.
  if (kQuietForks) GTEST_SKIP() << "libasan's allocator is not fork-safe with threads running";
  Helper h([] {
    cmr::init({.trigger_bytes = 64 << 10, .diagnostics = &record_diagnostic});
    std::atomic<bool> stop{false};
    auto collect_loop = [&] {
      while (!stop.load()) cmr::collect();
    };
    std::thread c1(collect_loop), c2(collect_loop);
    // 400 forks, or as many as 20 s allow on a loaded machine (at least 50).
    const auto until = Clock::now() + 20s;
    int round = 0;
    for (; round < 400 && g_failures.load() == 0 && (round < 50 || Clock::now() < until); ++round) {
      const pid_t pid = fork();
      if (pid == 0) {
        alarm(20);
        std::exit(0);
      }
      if (pid > 0) expect_child_ends(pid, round, 10s);
    }
    HCHECK(round >= 50 || g_failures.load() != 0, "only %d forks", round);
    stop = true;
    c1.join();
    c2.join();
  });
  expect_passed(h.finish(40s));
}

// ---- In a fresh process per statement -----------------------------------------------

class Fork : public cmr_test::InFreshProcess {};

// Counted in this process's memory: a child's counts start from the parent's at the fork.
std::atomic<long> g_counted_made{0}, g_counted_destroyed{0};
struct Counted {
  Counted() { g_counted_made.fetch_add(1); }
  explicit Counted(long v) : value(v) { g_counted_made.fetch_add(1); }
  ~Counted() { g_counted_destroyed.fetch_add(1); }
  Counted(Counted&& other) noexcept : value(other.value) { g_counted_made.fetch_add(1); }
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
  const long destroyed_before = g_counted_destroyed.load();
  {
    cmr::Guard<Counted> g;
    for (int i = 0; i < 1000; ++i) cmr::make<Counted>(g);
  }
  if (!cmr::collect()) _exit(code);
  if (!cmr::collect()) _exit(code + 1);
  if (g_counted_destroyed.load() - destroyed_before != 1000) _exit(code + 2);
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
                  if (g_counted_made.load() != g_counted_destroyed.load()) _exit(8);
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
                const long made = g_counted_made.load();
                cmr::detail::g_test_hooks.collector_destroyed_one = &wait_for_the_fork;
                std::thread collecting([] { cmr::collect(); });
                while (g_hook_state.load() != 1) std::this_thread::sleep_for(100us);
                const long destroyed_at_fork = g_counted_destroyed.load();
                const pid_t pid = ::fork();
                if (pid == 0) {
                  cmr::detail::g_test_hooks = {};
                  if (destroyed_at_fork != 1) _exit(4);  // the hook runs after the first
                  if (!cmr::collect() || !cmr::collect()) _exit(5);
                  if (g_counted_destroyed.load() != made) _exit(6);  // each once, none twice
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
                if (g_counted_destroyed.load() != made) _exit(22);  // the parent finished its own
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
    g_counted_destroyed.fetch_add(1);
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
    if (g_counted_destroyed.load() != 0) _exit(5);
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
  if (g_counted_destroyed.load() != 1) _exit(23);  // in the parent it was built, and is destroyed
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
                  if (g_counted_destroyed.load() != 0) _exit(4);
                  if (!cmr::collect() || !cmr::collect()) _exit(5);
                  if (g_counted_destroyed.load() != 100) _exit(6);
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
