// tests/invariants/signal_safe_state_test.cpp: invariant 4, signal-safe state.
//
// The handler can interrupt any instruction of a registered thread. It must leave the
// thread as it found it: errno restored (the handler is made to fail a system call), and,
// being installed with SA_RESTART, a blocking read() restarted instead of failing with
// EINTR, while the cycles that interrupt it still complete. The state the handshake reads
// (guard slots, allocation logs) must be consistent at every point, even while its owner
// is growing it: each round of thousands of guards overlaps several cycles.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "invariants/invariants.hpp"
#include "support/proc.hpp"

namespace {

using namespace std::chrono_literals;
using cmr_test::destroyed;
using cmr_test::Tracked;

TEST(SignalSafeState, TheHandlerPreservesErrno) {
  std::atomic<bool> stop{false}, ready{false};
  std::atomic<long> clobbered{0};
  std::thread t([&] {
    cmr::Guard<Tracked> g;
    ready = true;
    while (!stop.load(std::memory_order_relaxed)) {
      errno = 4242;
      for (int i = 0; i < 1000; ++i) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (errno != 4242) {
          clobbered.fetch_add(1);
          errno = 4242;
        }
      }
    }
  });
  while (!ready.load()) std::this_thread::yield();
  cmr::detail::g_test_faults.handler_fails_a_syscall = true;  // EAGAIN inside the handler
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(cmr::collect());
  cmr::detail::g_test_faults.handler_fails_a_syscall = false;
  stop = true;
  t.join();
  EXPECT_EQ(clobbered.load(), 0);
}

// The cycles must interrupt the read itself, not the code before it: they start only once
// /proc shows the reader asleep in read().
TEST(SignalSafeState, ABlockingReadIsRestartedNotInterrupted) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::atomic<pid_t> reader_tid{0};
  std::atomic<bool> returned{false};
  ssize_t got = 0;
  int err = 0;
  char byte = 0;
  int guarded_id = -1;
  std::thread reader([&] {
    cmr::Guard<Tracked> g;  // registered, and holds an object across the read
    guarded_id = cmr::make<Tracked>(g)->id;
    reader_tid = cmr_test::gettid_now();
    got = read(fds[0], &byte, 1);
    err = got < 0 ? errno : 0;
    returned = true;
  });
  while (reader_tid.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 10000 && !cmr_test::in_syscall(reader_tid, SYS_read); ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(cmr_test::in_syscall(reader_tid, SYS_read)) << "the reader never blocked in read()";

  const cmr::Stats before = cmr::stats();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(cmr::collect()) << "cycle " << i;
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(cmr::stats().cycles, before.cycles + 20);
  EXPECT_EQ(cmr::stats().cycles_aborted, before.cycles_aborted);
  EXPECT_LT(took, 10s) << "the blocked reader stalled the cycles";
  EXPECT_FALSE(returned.load()) << "read() returned early: " << got << ", errno " << err;
  EXPECT_EQ(destroyed(guarded_id), 0);

  ASSERT_EQ(write(fds[1], "x", 1), 1);
  reader.join();
  EXPECT_EQ(got, 1) << "read() failed with errno " << err << " (" << std::strerror(err) << ")";
  EXPECT_EQ(byte, 'x');
  close(fds[0]);
  close(fds[1]);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(guarded_id), 1);
}

TEST(SignalSafeState, GuardsAndLogsGrowingDuringCyclesLoseNothing) {
  // Slot blocks and log chunks are published while cycles interrupt their owners. Each
  // round keeps its guards until kCyclesPerRound cycles completed after it began, so every
  // round's growth overlaps cycles however the threads are scheduled.
  constexpr int kRounds = 6, kCyclesPerRound = 4;
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::atomic<int> cycles_done{0};
  std::thread grower([&] {
    for (int round = 0; round < kRounds && !failed; ++round) {
      const int first = cycles_done.load();
      std::vector<cmr::Guard<Tracked>> guards(3000);
      std::vector<int> ids;
      for (auto& g : guards) ids.push_back(cmr::make<Tracked>(g)->id);
      while (cycles_done.load() < first + kCyclesPerRound) std::this_thread::yield();
      for (std::size_t i = 0; i < guards.size(); ++i)
        if (destroyed(ids[i]) != 0 || guards[i].get()->id != ids[i]) failed = true;
    }
    stop = true;
  });
  while (!stop.load()) {
    ASSERT_TRUE(cmr::collect());
    cycles_done.fetch_add(1);
  }
  grower.join();
  EXPECT_FALSE(failed.load());
  EXPECT_GE(cycles_done.load(), kRounds * kCyclesPerRound);
}

}  // namespace
