// tests/hostile/exec_test.cpp: the program calls exec() while cycles run.
//
// exec() keeps the signals pending on the calling thread and resets cmr's handler to the
// default action, which for SIGUSR1 ends the process: a handshake signal pending at the
// exec would kill the new program. A thread calling exec() therefore leaves the handshake
// first (the exec guard), and cmr::shutdown() stops every cycle before it returns. A
// scanner in flight at an exec dies with the collector thread (PR_SET_PDEATHSIG). Each is
// provoked: execs at every delay into background cycles, a tracer holding a thread at the
// entry of execve() while another thread collects, shutdown() racing collect() on other
// threads, and an exec while a scanner hangs.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <cmr/detail/hooks.hpp>

#include "hostile/hostile.hpp"
#include "support/ptrace.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

// A cycle that signalled the exec'ing thread just before its exec would kill the new
// program (one exec in fifteen without the exec guard, src/threads/exec_guard.cpp, which
// takes the thread out of the handshake first; the next test forces that interleaving).
// cmr::shutdown() first stops the collector thread, after which no cycle signals anyone,
// even with another thread inside collect() (NoCycleRunsAfterShutdownReturns).
void exec_true_while_cycles_run(int delay_us, bool shut_down_first) {
  cmr::Options options = helper_options();
  options.trigger_bytes = 16 << 10;  // the mutator alone keeps background cycles going
  cmr::init(options);
  std::atomic<bool> stop{false};
  std::thread cycler([&] {
    if (!shut_down_first)
      while (!stop.load()) cmr::collect();
  });
  std::thread mutator([&] {
    try {
      while (!stop.load()) make_garbage();
    } catch (const cmr::Error&) {  // make() after shutdown()
    }
  });
  std::thread execer([&] {
    cmr::Guard<Tracked> g;  // a registered thread, paused by the cycles
    cmr::make<Tracked>(g);
    for (int i = 0; i < 5000 && cmr::stats().cycles == 0; ++i) usleep(1000);
    HCHECK(cmr::stats().cycles > 0, "no cycle ran before the exec");
    usleep(delay_us);
    if (shut_down_first) cmr::shutdown();
    execl("/bin/true", "true", static_cast<char*>(nullptr));
    HCHECK(false, "execl: %s", std::strerror(errno));
    _exit(9);
  });
  execer.join();
}

void expect_execs_succeed(bool shut_down_first, int rounds) {
  SubreaperScope reaper;  // a scanner that outlives the exec comes here
  ASSERT_TRUE(reaper.ok());
  ASSERT_EQ(access("/bin/true", X_OK), 0) << "/bin/true is missing";
  for (int round = 0; round < rounds; ++round) {
    const int delay_us = (round * 1237) % 5000;
    SCOPED_TRACE(format("exec after %d us", delay_us));
    Helper h([=] { exec_true_while_cycles_run(delay_us, shut_down_first); });
    expect_passed(h.finish(10s));
  }
  // A scanner in flight at an exec dies with the collector thread (PR_SET_PDEATHSIG): none
  // may be left running. Zombies are fine; the reaper collects them.
  auto all_ended = [] {
    for (pid_t p : children_of(getpid()))
      if (state_of(p) != 'Z') return false;
    return true;
  };
  for (int i = 0; i < 5000 && !all_ended(); ++i) std::this_thread::sleep_for(1ms);
  for (pid_t p : children_of(getpid()))
    EXPECT_EQ(state_of(p), 'Z') << "still running after its program exec'd:"
                                << describe_processes({p});
}

TEST(Exec, ExecAfterShutdownWhileBackgroundCyclesRunSucceeds) {
  expect_execs_succeed(/*shut_down_first=*/true, 10);
}

// Deterministic form of the race above: a tracer holds the thread at the entry of the
// execve() system call while another thread collects. A cycle that signalled it there
// would leave the signal pending when the exec completes, and the new program would die of
// SIGUSR1 (13 of 200 execs without the exec guard). The thread leaves the handshake in the
// exec wrapper: the cycle completes without it, nothing is pending, and the exec succeeds.
TEST(Exec, ASignalPendingAtExecDoesNotKillTheNewProgram) {
  ASSERT_EQ(access("/bin/true", X_OK), 0) << "/bin/true is missing";
  Helper h([] {
    cmr::init(helper_options());
    std::atomic<int> go{0};
    std::atomic<pid_t> tid{0};
    std::thread execer([&] {
      cmr::Guard<Tracked> g;  // registered: every cycle signals it
      cmr::make<Tracked>(g);
      tid = gettid_now();
      while (go.load() == 0) usleep(1000);
      execl("/bin/true", "true", static_cast<char*>(nullptr));
      HCHECK(false, "execl: %s", std::strerror(errno));
      _exit(9);
    });
    while (tid.load() == 0) std::this_thread::yield();
    say("tid %d", tid.load());
    if (await_command() != 'x') _exit(0);
    go = 1;
    HCHECK(await_command() == 'c', "no command to collect");
    HCHECK(cmr::collect(), "a cycle waited for a thread that was inside exec()");
    say("collected");
    execer.join();  // the exec ends this process
  });
  const auto tid_message = h.await("tid", 10s);
  ASSERT_TRUE(tid_message);
  const pid_t tid = std::atoi(tid_message->c_str());
  const std::string trace_error = seize_and_stop(tid, PTRACE_O_TRACESYSGOOD);
  if (tracing_not_permitted(trace_error)) GTEST_SKIP() << trace_error;
  ASSERT_EQ(trace_error, "");
  h.send_command('x');
  bool at_execve = false;
  for (int i = 0; i < 100000 && !at_execve; ++i) {
    ASSERT_EQ(ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(waitpid(tid, &status, __WALL), tid) << std::strerror(errno);
    ASSERT_TRUE(WIFSTOPPED(status)) << describe_status(status);
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) continue;  // not a system-call stop
    __ptrace_syscall_info info{};
    ASSERT_GT(ptrace(PTRACE_GET_SYSCALL_INFO, tid, reinterpret_cast<void*>(sizeof info), &info), 0);
    at_execve = info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr == SYS_execve;
  }
  ASSERT_TRUE(at_execve) << "the thread never reached execve()";
  h.send_command('c');
  ASSERT_TRUE(h.await("collected", 10s));
  EXPECT_FALSE(signal_pending_on(h.pid(), tid, SIGUSR1))
      << "a handshake signal waits on a thread that is entering execve()";
  EXPECT_EQ(ptrace(PTRACE_DETACH, tid, nullptr, nullptr), 0) << std::strerror(errno);
  expect_passed(h.finish(10s));
}

// shutdown() stops the collector thread, but a collect() that passed its running check just
// before then runs a cycle on its caller's thread (Collector::collect falls back to a
// foreground cycle once the thread is not joinable), after shutdown() returned.
TEST(Exec, NoCycleRunsAfterShutdownReturns) {
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE(format("round %d", round));
    Helper h([round] {
      cmr::init(helper_options());
      std::atomic<bool> stop{false};
      auto collect_loop = [&] {
        try {
          while (!stop.load()) cmr::collect();
        } catch (const cmr::Error&) {  // collect() after shutdown()
        }
      };
      std::thread c1(collect_loop), c2(collect_loop);
      Parked parked;
      usleep(1000 + 300 * round);
      cmr::shutdown();
      const cmr::Stats at_shutdown = cmr::stats();
      usleep(20000);
      const cmr::Stats later = cmr::stats();
      HCHECK(later.cycles == at_shutdown.cycles &&
                 later.cycles_aborted == at_shutdown.cycles_aborted,
             "cycles after shutdown() returned: %llu -> %llu",
             (unsigned long long)at_shutdown.cycles, (unsigned long long)later.cycles);
      stop = true;
      c1.join();
      c2.join();
    });
    expect_passed(h.finish(10s));
    if (HasFailure()) break;
  }
}

TEST(Exec, AnExecKillsTheScannerInFlight) {
  SubreaperScope reaper;
  ASSERT_TRUE(reaper.ok());
  if (access("/bin/sleep", X_OK) != 0) GTEST_SKIP() << "/bin/sleep is missing";
  Helper h([] {
    cmr::init({.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
               .scan_timeout = 30s,  // longer than the test: only the exec can end it
               .diagnostics = &record_diagnostic});
    for (int i = 0; i < 20; ++i) {
      make_garbage();
      HCHECK(collect_completing(), "cycle %d", i);
    }
    std::atomic<int> go{0};
    std::thread execer([&] {
      cmr::Guard<Tracked> g;
      cmr::make<Tracked>(g);
      while (go.load() == 0) std::this_thread::sleep_for(1ms);
      execl("/bin/sleep", "sleep", "1", static_cast<char*>(nullptr));
      HCHECK(false, "execl: %s", std::strerror(errno));
      _exit(9);
    });
    cmr::detail::g_test_faults.child_hang = true;
    std::thread([] { cmr::collect(); }).detach();
    pid_t scanner = 0;
    for (int i = 0; i < 5000 && scanner == 0; ++i) {
      const auto c = children_of(getpid());
      if (!c.empty()) scanner = c.front();
      else std::this_thread::sleep_for(1ms);
    }
    HCHECK(scanner != 0, "no scanner process appeared");
    say("scanner %d", scanner);
    go = 1;
    execer.join();
  });
  const auto scanner_message = h.await("scanner", 10s);
  ASSERT_TRUE(scanner_message);
  const pid_t scanner = std::atoi(scanner_message->c_str());
  for (int i = 0; i < 3000 && first_line(format("/proc/%d/comm", h.pid())) != "sleep"; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(first_line(format("/proc/%d/comm", h.pid())), "sleep") << "the exec did not happen";
  // The program (now sleep) still lives: only the collector thread's death can end the scan.
  for (int i = 0; i < 5000 && state_of(scanner) != 'Z' && state_of(scanner) != '-'; ++i)
    std::this_thread::sleep_for(1ms);
  const char scanner_state = state_of(scanner);
  EXPECT_TRUE(scanner_state == 'Z' || scanner_state == '-')
      << "the scanner still runs after its program exec'd:" << describe_processes({scanner});
  expect_passed(h.finish(10s));
}

}  // namespace
