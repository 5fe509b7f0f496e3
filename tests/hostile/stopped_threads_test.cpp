// tests/hostile/stopped_threads_test.cpp: registered threads that cannot run.
//
// A debugger stops one thread of the program (ptrace), or job control stops the whole
// process (SIGSTOP, SIGCONT). A stopped thread cannot answer the handshake: the cycle must
// abort after handshake_timeout, free nothing, and name the thread; and once the thread
// runs again, the signal of the aborted cycle still pending on it must be harmless, and
// cycles complete again. A stop of the whole process may land in any phase of a cycle: it
// may abort a handshake, but never lose a scanner or its answer.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "hostile/hostile.hpp"
#include "support/ptrace.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

TEST(StoppedThreads, AThreadStoppedByATracerAbortsCyclesUntilItRunsAgain) {
  Helper h([] {
    cmr::init(helper_options());
    cmr::Root<Tracked> root;
    const int kept = make_rooted(root);
    const int garbage = make_garbage();
    Parked parked;
    say("tid %d", parked.tid());
    if (await_command() != 's') return;  // the test cannot trace: it skips

    clear_diagnostics();
    const cmr::Stats before = cmr::stats();
    const auto t0 = Clock::now();
    HCHECK(!cmr::collect(), "a cycle completed while a registered thread was stopped");
    const auto waited = Clock::now() - t0;
    const cmr::Stats after = cmr::stats();
    HCHECK(after.cycles_aborted == before.cycles_aborted + 1, "aborted %llu -> %llu",
           (unsigned long long)before.cycles_aborted, (unsigned long long)after.cycles_aborted);
    HCHECK(after.cycles == before.cycles && after.cycles_failed == before.cycles_failed,
           "the abort was counted as something else");
    HCHECK(after.objects_freed == before.objects_freed, "an aborted cycle freed objects");
    HCHECK(destroyed(garbage) == 0, "an aborted cycle freed garbage");
    HCHECK(waited >= kHandshakeTimeout - 50ms && waited < kHandshakeTimeout + 5s,
           "aborted after %lld ms; handshake_timeout is %lld", ms(waited),
           ms(kHandshakeTimeout));
    HCHECK(diagnosed("did not answer") && diagnosed(format("tid %d", parked.tid())),
           "the stopped thread is not named: %s", all_diagnostics().c_str());
    say("aborted");

    HCHECK(await_command() == 'c', "no command to go on");
    HCHECK(collect_completing(), "no cycle completed once the thread ran again");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    HCHECK(destroyed(kept) == 0 && destroyed(parked.object()) == 0, "a reachable object was freed");
  });
  const auto tid_message = h.await("tid", 10s);
  ASSERT_TRUE(tid_message);
  const pid_t tid = std::atoi(tid_message->c_str());
  const std::string trace_error = seize_and_stop(tid, 0);
  if (tracing_not_permitted(trace_error)) {
    h.send_command('q');
    h.finish(10s);
    GTEST_SKIP() << trace_error;
  }
  ASSERT_EQ(trace_error, "");
  EXPECT_EQ(state_of(h.pid(), tid), 't');
  h.send_command('s');
  EXPECT_TRUE(h.await("aborted", 10s));
  // The signal of the aborted cycle is still pending: it arrives once the thread runs, and
  // the handler must return at once (that cycle is over).
  EXPECT_EQ(ptrace(PTRACE_DETACH, tid, nullptr, nullptr), 0) << std::strerror(errno);
  h.send_command('c');
  expect_passed(h.finish(15s));
}

TEST(StoppedThreads, AProcessStoppedAndContinuedByJobControlKeepsCollecting) {
  Helper h([] {
    cmr::init(helper_options());
    const int garbage = make_garbage();
    Parked parked;
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0};
    std::thread cycler([&] {
      while (!stop.load())
        if (cmr::collect()) completed.fetch_add(1);
    });
    say("running");
    HCHECK(await_command() == 'c', "no command to go on");
    const int at_continue = completed.load();
    for (int i = 0; i < 5000 && completed.load() < at_continue + 5; ++i)
      std::this_thread::sleep_for(1ms);
    stop = true;
    cycler.join();
    HCHECK(completed.load() >= at_continue + 5, "cycles did not resume after SIGCONT (%d)",
           completed.load() - at_continue);
    const cmr::Stats s = cmr::stats();
    // The stop may abort a handshake (its deadline passes meanwhile); it must never lose a
    // scanner or its answer.
    HCHECK(s.cycles_failed == 0, "%llu failed cycles", (unsigned long long)s.cycles_failed);
    HCHECK(destroyed(parked.object()) == 0, "a guarded object was freed");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
  });
  ASSERT_TRUE(h.await("running", 10s));
  std::this_thread::sleep_for(20ms);  // let cycles run, so that the stop lands in one
  ASSERT_EQ(kill(h.pid(), SIGSTOP), 0);
  for (int i = 0; i < 2000 && state_of(h.pid()) != 'T'; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(state_of(h.pid()), 'T');
  std::this_thread::sleep_for(kHandshakeTimeout + 200ms);  // a handshake's deadline passes
  ASSERT_EQ(kill(h.pid(), SIGCONT), 0);
  h.send_command('c');
  expect_passed(h.finish(20s));
}

}  // namespace
