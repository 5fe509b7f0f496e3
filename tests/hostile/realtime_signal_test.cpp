// tests/hostile/realtime_signal_test.cpp: cmr on a real-time signal; SIGUSR1 the program's.
//
// A program that uses SIGUSR1 itself gives cmr another signal (Options::signal). Cycles
// must then complete on it, free exactly the garbage, and never send SIGUSR1, which goes
// to the program's own handler. Real-time signals queue: a thread that blocks cmr's
// signal through three aborted cycles gets three late instances when it unblocks, and
// none may hold it.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

std::atomic<int> g_sigusr1_calls{0};

void count_sigusr1(int) { g_sigusr1_calls.fetch_add(1); }

TEST(RealTimeSignal, ARealTimeSignalCarriesCyclesAndLeavesSigusr1ToTheProgram) {
  Helper h([] {
    const int sig = SIGRTMIN + 3;
    cmr::Options options = helper_options();
    options.signal = sig;
    cmr::init(options);
    struct sigaction mine {};
    mine.sa_handler = &count_sigusr1;
    sigemptyset(&mine.sa_mask);
    HCHECK(sigaction(SIGUSR1, &mine, nullptr) == 0, "SIGUSR1 is not free for the program");
    cmr::Root<Tracked> root;
    const int kept = make_rooted(root);
    Parked a, b;
    std::vector<int> garbage;
    for (int i = 0; i < 20; ++i) {
      garbage.push_back(make_garbage());
      HCHECK(collect_completing(), "cycle %d: %s", i, all_diagnostics().c_str());
    }
    for (int id : garbage) HCHECK(destroyed(id) == 1, "garbage destroyed %d times", destroyed(id));
    HCHECK(destroyed(kept) == 0 && destroyed(a.object()) == 0 && destroyed(b.object()) == 0,
           "a reachable object was freed");
    HCHECK(g_sigusr1_calls.load() == 0, "cycles sent SIGUSR1");
    HCHECK(syscall(SYS_tgkill, getpid(), a.tid(), SIGUSR1) == 0, "tgkill");
    for (int i = 0; i < 2000 && g_sigusr1_calls.load() == 0; ++i)
      std::this_thread::sleep_for(1ms);
    HCHECK(g_sigusr1_calls.load() == 1, "the program's SIGUSR1 handler ran %d times",
           g_sigusr1_calls.load());

    // Real-time signals queue: a thread that blocks the signal through three aborted
    // cycles gets three late instances when it unblocks, and none may hold it.
    std::atomic<int> phase{0};
    std::thread deaf([&] {
      cmr::Guard<Tracked> g;  // registers (unblocking cmr's signal), then blocks it
      cmr::make<Tracked>(g);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, sig);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      phase = 1;
      while (phase.load() != 2) std::this_thread::sleep_for(1ms);
      sigset_t pending;
      sigpending(&pending);
      HCHECK(sigismember(&pending, sig) == 1, "the aborted cycles' signal is not pending");
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      phase = 3;
    });
    while (phase.load() != 1) std::this_thread::yield();
    const cmr::Stats before = cmr::stats();
    for (int i = 0; i < 3; ++i) HCHECK(!cmr::collect(), "a cycle completed with a deaf thread");
    HCHECK(cmr::stats().cycles_aborted == before.cycles_aborted + 3, "not counted as aborted");
    const int late = make_garbage();
    phase = 2;
    for (int i = 0; i < 3000 && phase.load() != 3; ++i) std::this_thread::sleep_for(1ms);
    HCHECK(phase.load() == 3, "a late signal held the thread");
    deaf.join();
    HCHECK(collect_completing(), "no cycle completed after the late signals");
    HCHECK(destroyed(late) == 1, "garbage destroyed %d times", destroyed(late));
  });
  expect_passed(h.finish(20s));
}

}  // namespace
