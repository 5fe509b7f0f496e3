// tests/hostile/blocked_signals_test.cpp: the program blocks signals, cmr's among them.
//
// cmr's threads block every signal, so a process-directed signal goes to a program thread
// that accepts it, or stays pending for a signalfd: a program that blocks SIGTERM, SIGINT
// and SIGHUP everywhere and reads them from a signalfd gets every one while cycles run, and
// the scanner children raise no SIGCHLD. A thread that blocks every signal around short
// critical sections in a hot loop is still held by every cycle. A thread that keeps cmr's
// signal blocked cannot be held, so it must never wait for a cycle either (pacing). (A
// thread that blocks it past handshake_timeout aborts the cycle: invariant 3,
// tests/invariants/consistent_snapshot_test.cpp.)
// Each test runs in a fresh process (support/verdict.hpp): the masks it sets are
// process-wide.
#include <gtest/gtest.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "hostile/hostile.hpp"
#include "support/verdict.hpp"

namespace {

using namespace cmr_hostile;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_success;

class BlockedSignals : public cmr_test::InFreshProcess {};

struct PacedBlob {
  long words[2] = {};
};

#define SIG_CHECK(cond, ...) CMR_STATEMENT_CHECK(cond, __VA_ARGS__)

TEST_F(BlockedSignals, ASignalfdReadsEveryTerminationSignalWhileCyclesRun) {
  EXPECT_EXIT(exit_expecting_success([] {
                // cmr starts first, with nothing blocked; then the program blocks the signals
                // in main, before its own threads exist, so every program thread has them
                // blocked. A cmr thread that left them open would receive them (and die of
                // SIGTERM's default action).
                cmr::init({});
                SIG_CHECK(cmr::collect(), "the first cycle");  // the collector thread exists
                sigset_t set;
                sigemptyset(&set);
                for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
                SIG_CHECK(pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0, "pthread_sigmask");
                const int fd = signalfd(-1, &set, SFD_CLOEXEC);
                SIG_CHECK(fd >= 0, "signalfd: %s", std::strerror(errno));
                cmr::detail::g_test_faults.use_child = true;  // scanner children too
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<long> ops{0}, cycles{0};
                std::thread worker([&] { churn(stack, stop, ops); });
                std::thread cycler([&] {
                  while (!stop.load()) cycles.fetch_add(cmr::collect() ? 1 : 0);
                });
                // One signal at a time (standard signals coalesce), each read before the next;
                // at least 300 signals and at least 100 cycles during them.
                int sent = 0;
                const int kinds[] = {SIGTERM, SIGINT, SIGHUP};
                while (sent < 300 || cycles.load() < 100) {
                  const int sig = kinds[sent % 3];
                  SIG_CHECK(kill(getpid(), sig) == 0, "kill");
                  pollfd p{fd, POLLIN, 0};
                  SIG_CHECK(poll(&p, 1, 10000) == 1, "signal %d (%d sent) never reached the signalfd", sig, sent);
                  signalfd_siginfo info{};
                  SIG_CHECK(read(fd, &info, sizeof info) == sizeof info, "read");
                  SIG_CHECK(static_cast<int>(info.ssi_signo) == sig, "read %u, sent %d", info.ssi_signo, sig);
                  ++sent;
                }
                stop = true;
                worker.join();
                cycler.join();
                // The program has no child process: a SIGCHLD could only be a scanner's.
                sigset_t pending;
                sigpending(&pending);
                SIG_CHECK(!sigismember(&pending, SIGCHLD), "a scanner child raised SIGCHLD in the program");
                const cmr::Stats s = cmr::stats();
                SIG_CHECK(s.cycles_aborted == 0 && s.cycles_failed == 0, "%llu aborted, %llu failed",
                          (unsigned long long)s.cycles_aborted, (unsigned long long)s.cycles_failed);
              }),
              ExitedWithCode(0), "");
}

TEST_F(BlockedSignals, AThreadTogglingItsMaskInAHotLoopIsHeldByEveryCycle) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<long> ops{0}, toggles{0};
                std::thread toggler([&] {
                  sigset_t all, old;
                  sigfillset(&all);
                  for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
                    pthread_sigmask(SIG_BLOCK, &all, &old);  // a critical section, signals off
                    stack.push(i);
                    stack.try_pop();
                    pthread_sigmask(SIG_SETMASK, &old, nullptr);
                    toggles.fetch_add(1, std::memory_order_relaxed);
                  }
                });
                std::thread worker([&] { churn(stack, stop, ops); });
                // Both threads at work first; then at least 200 cycles, and at least 1000
                // toggles during them, however the machine schedules the threads.
                while (toggles.load() == 0 || ops.load() == 0) std::this_thread::sleep_for(1ms);
                const long toggles_before = toggles.load();
                for (int i = 0; i < 200 || toggles.load() < toggles_before + 1000; ++i)
                  SIG_CHECK(cmr::collect(), "cycle %d", i);
                stop = true;
                toggler.join();
                worker.join();
                SIG_CHECK(toggles.load() > 0, "the toggling thread did nothing");
                SIG_CHECK(cmr::stats().cycles_aborted == 0, "%llu cycles aborted",
                          (unsigned long long)cmr::stats().cycles_aborted);
              }),
              ExitedWithCode(0), "");
}

// A thread that allocates past the pacing point with cmr's signal blocked must not wait
// for a cycle: the cycle cannot hold it until it unblocks, so the wait would only end by
// timing out (and the cycle it waited for would stall every other thread meanwhile).
TEST_F(BlockedSignals, AThreadWithTheSignalBlockedIsNeverHeldBackByPacing) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.trigger_bytes = 16 << 10});
                { cmr::Guard<PacedBlob> registration; }
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGUSR1);  // cmr's signal (Options::signal's default)
                // A reference: with the signal open, allocation is paced within n objects.
                auto allocate = [](long n) {
                  for (long i = 0; i < n; ++i) {
                    cmr::Guard<PacedBlob> g;
                    cmr::make<PacedBlob>(g);
                  }
                };
                const std::uint64_t open_before = cmr::stats().paced_waits;
                long n = 0;
                while (cmr::stats().paced_waits == open_before && n < 10'000'000) {
                  allocate(1000);
                  n += 1000;
                }
                SIG_CHECK(cmr::stats().paced_waits > open_before,
                          "never paced with the signal open: the test proves nothing");
                pthread_sigmask(SIG_BLOCK, &set, nullptr);
                const std::uint64_t before = cmr::stats().paced_waits;
                allocate(4 * n);
                const std::uint64_t after = cmr::stats().paced_waits;
                pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
                SIG_CHECK(after == before, "waited %llu times for a cycle that could not hold it",
                          (unsigned long long)(after - before));
                SIG_CHECK(cmr::collect(), "the cycle after");
              }),
              ExitedWithCode(0), "");
}

}  // namespace
