// tests/invariants/child_never_allocates_test.cpp: invariant 5, the child never allocates.
//
// The scanner child is created with the raw clone system call, never with glibc's fork():
// fork() runs the program's atfork handlers, and those of glibc and jemalloc take the
// malloc locks that a held thread may own, so a cycle could deadlock or a child inherit a
// locked heap. The program's fork handlers are registered (and seen to run for a real
// fork()), then cycles of both kinds run while registered threads, held by every
// handshake, and an unregistered one, never held, hammer malloc, new and string growth:
// every cycle completes and no handler runs (200 cycles of each kind; the child run has
// only the 200 with a child). A hang would be a deadlock: the watchdog names it.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "invariants/invariants.hpp"
#include "support/watchdog.hpp"

namespace {

using cmr_invariants::UseChild;

std::atomic<int> g_atfork_prepare{0}, g_atfork_parent{0}, g_atfork_child{0};

// Tracked garbage that needs no destructor and takes no id: the hammer makes millions.
struct Junk {
  std::uint64_t words[4] = {1, 2, 3, 4};
};

// Two registered threads (paused by every handshake, possibly inside malloc) and one
// unregistered thread (never paused; it keeps taking malloc locks while the child is
// created).
void hammer_malloc(std::uint64_t seed, bool registered, const std::atomic<bool>& stop,
                   std::atomic<int>& started, std::atomic<std::uint64_t>& ops) {
  std::unique_ptr<cmr::Guard<Junk>> registration;
  if (registered) registration = std::make_unique<cmr::Guard<Junk>>();
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;  // xorshift: no locks, no allocation
  std::vector<void*> blocks(128, nullptr);
  std::vector<std::unique_ptr<std::vector<int>>> objects(32);
  std::string text;
  started.fetch_add(1);
  std::uint64_t my_ops = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::uint64_t r = x;
    switch (r % 5) {
      case 0: case 1: {  // malloc/free, up to 64 KiB, now and then past mmap's threshold
        void*& b = blocks[(r >> 8) % blocks.size()];
        std::free(b);
        const std::size_t size = (r >> 20) % 64 == 0 ? 256 * 1024 + (r >> 32) % 4096
                                                     : 1 + (r >> 32) % 65536;
        b = std::malloc(size);
        if (b != nullptr) static_cast<char*>(b)[0] = 1;
        break;
      }
      case 2:  // new/delete
        objects[(r >> 8) % objects.size()] =
            std::make_unique<std::vector<int>>(1 + (r >> 16) % 512, 7);
        break;
      case 3:  // std::string growth (repeated reallocation)
        text.append(1 + (r >> 8) % 200, 'x');
        if (text.size() > 20000) {
          text.clear();
          text.shrink_to_fit();
        }
        break;
      case 4:
        if (registered) {
          cmr::Guard<Junk> g;
          cmr::make<Junk>(g);  // tracked garbage for the cycles to free
        }
        break;
    }
    ++my_ops;
  }
  for (void* b : blocks) std::free(b);
  ops += my_ops;
}

TEST(RawClone, CyclesNeverRunForkHandlersAndSurviveThreadsInMalloc) {
  cmr_test::Watchdog watchdog("cycles with threads in malloc", std::chrono::seconds(240));
  static const int registered =
      pthread_atfork([] { g_atfork_prepare.fetch_add(1); }, [] { g_atfork_parent.fetch_add(1); },
                     [] { g_atfork_child.fetch_add(1); });
  ASSERT_EQ(registered, 0);
  // The handlers do run for a real fork(): the test can see them. (Before the hammering
  // threads start: the child only exits.)
  const int prepare0 = g_atfork_prepare.load(), parent0 = g_atfork_parent.load(),
            child0 = g_atfork_child.load();
  const pid_t pid = fork();
  if (pid == 0) _exit(g_atfork_child.load() == child0 + 1 ? 0 : 1);
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child handler did not run";
  ASSERT_EQ(g_atfork_prepare.load(), prepare0 + 1);
  ASSERT_EQ(g_atfork_parent.load(), parent0 + 1);

  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::atomic<std::uint64_t> ops{0};
  std::vector<std::thread> threads;
  threads.emplace_back(hammer_malloc, 1, true, std::cref(stop), std::ref(started), std::ref(ops));
  threads.emplace_back(hammer_malloc, 2, true, std::cref(stop), std::ref(started), std::ref(ops));
  threads.emplace_back(hammer_malloc, 3, false, std::cref(stop), std::ref(started), std::ref(ops));
  while (started.load() != 3) std::this_thread::yield();

  const int prepare = g_atfork_prepare.load(), parent = g_atfork_parent.load();
  const cmr::Stats before = cmr::stats();
  // A cycle may abort when the loaded machine does not schedule a hammering thread within
  // handshake_timeout; that is no deadlock and no fork(), so it is retried (at most twice).
  // A cycle that fails, or one that aborts three times in a row, fails the test.
  int unfinished = 0, completed = 0;
  auto run_cycles = [&](int n) {
    for (int i = 0; i < n; ++i) {
      bool done = false;
      for (int attempt = 0; attempt < 3 && !done; ++attempt) {
        const std::uint64_t aborted = cmr::stats().cycles_aborted;
        done = cmr::collect();
        if (!done && cmr::stats().cycles_aborted == aborted) break;  // failed: no retry
      }
      if (done) ++completed;
      else ++unfinished;
    }
  };
  if (!cmr_test::child_mode()) run_cycles(200);  // marked in the pause (the child run has none)
  {
    UseChild child;  // and with a child, in either run
    run_cycles(200);
  }
  stop = true;
  for (auto& t : threads) t.join();
  const cmr::Stats after = cmr::stats();

  EXPECT_EQ(unfinished, 0) << "cycles that failed or kept aborting";
  EXPECT_EQ(after.cycles_failed, before.cycles_failed);
  EXPECT_EQ(after.cycles - before.cycles, static_cast<std::uint64_t>(completed));
  EXPECT_GT(ops.load(), 0u);
  EXPECT_EQ(g_atfork_prepare.load(), prepare) << "a cycle called fork()";
  EXPECT_EQ(g_atfork_parent.load(), parent);
  if (after.cycles_aborted != before.cycles_aborted)
    std::printf("[ stats    ] %llu aborted cycles retried\n",
                static_cast<unsigned long long>(after.cycles_aborted - before.cycles_aborted));
}

}  // namespace
