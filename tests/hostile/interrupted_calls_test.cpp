// tests/hostile/interrupted_calls_test.cpp: blocking calls that the handshake interrupts.
//
// poll, nanosleep and epoll_wait are never restarted after a signal handler, even with
// SA_RESTART (signal(7)): a registered thread blocked in one of them sees EINTR when a
// cycle signals it, as documented. The cycle itself must complete (the handler answers
// from inside the call), keep what the blocked thread guards, and interrupt the call
// rather than wait for its timeout; std::this_thread::sleep_for retries on EINTR, so it
// sleeps its full time. (read(), which SA_RESTART restarts: invariant 4,
// tests/invariants/signal_safe_state_test.cpp.)
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

// A registered thread, holding a guarded object, blocked in one call.
struct BlockedCall {
  const char* name;
  std::vector<long> syscalls;  // what /proc/<tid>/syscall may show while it blocks
  std::function<long()> call;
  std::atomic<pid_t> tid{0};
  long result = 0;
  int error = 0;
  Clock::duration took{};
  int object = -1;
  std::thread thread;

  BlockedCall(const char* n, std::vector<long> nrs, std::function<long()> c)
      : name(n), syscalls(std::move(nrs)), call(std::move(c)) {}

  void start() {
    thread = std::thread([this] {
      cmr::Guard<Tracked> g;
      object = cmr::make<Tracked>(g)->id;
      const auto t0 = Clock::now();
      tid = gettid_now();
      result = call();
      error = result < 0 ? errno : 0;
      took = Clock::now() - t0;
    });
  }
  bool blocked() const {
    return std::any_of(syscalls.begin(), syscalls.end(),
                       [this](long nr) { return in_syscall(tid, nr); });
  }
};

TEST(InterruptedCalls, CallsThatSignalsInterruptSeeEintrAndCyclesStillComplete) {
  Helper h([] {
    cmr::init(helper_options());
    int fds[2];
    HCHECK(pipe(fds) == 0, "pipe");
    const int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    HCHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) == 0, "epoll_ctl");
    const int garbage = make_garbage();

    std::vector<long> poll_nrs = {SYS_ppoll}, sleep_nrs = {SYS_clock_nanosleep},
                      epoll_nrs = {SYS_epoll_pwait};
#ifdef SYS_poll
    poll_nrs.push_back(SYS_poll);
#endif
#ifdef SYS_nanosleep
    sleep_nrs.push_back(SYS_nanosleep);
#endif
#ifdef SYS_epoll_wait
    epoll_nrs.push_back(SYS_epoll_wait);
#endif
#ifdef SYS_epoll_pwait2
    epoll_nrs.push_back(SYS_epoll_pwait2);
#endif
    // poll, nanosleep and epoll_wait are never restarted after a handler (signal(7)), so
    // SA_RESTART does not hide the handshake from them: the documented EINTR.
    BlockedCall calls[] = {
        {"poll", poll_nrs,
         [&] {
           pollfd p{fds[0], POLLIN, 0};
           return static_cast<long>(::poll(&p, 1, 5000));
         }},
        {"nanosleep", sleep_nrs,
         [] {
           timespec t{5, 0}, rem{};
           return static_cast<long>(::nanosleep(&t, &rem));
         }},
        {"epoll_wait", epoll_nrs,
         [&] {
           epoll_event out{};
           return static_cast<long>(::epoll_wait(ep, &out, 1, 5000));
         }},
        // std::this_thread::sleep_for retries on EINTR: the full duration, cycles or not.
        {"sleep_for", sleep_nrs,
         [] {
           std::this_thread::sleep_for(1200ms);
           return 0L;
         }},
    };
    for (auto& c : calls) c.start();
    for (auto& c : calls) {
      while (c.tid.load() == 0) std::this_thread::yield();
      for (int i = 0; i < 3000 && !c.blocked(); ++i) std::this_thread::sleep_for(1ms);
      HCHECK(c.blocked(), "%s never blocked", c.name);
    }
    const cmr::Stats before = cmr::stats();
    HCHECK(collect_completing(), "the cycle did not complete: %s", all_diagnostics().c_str());
    HCHECK(cmr::stats().cycles == before.cycles + 1, "the cycle was not counted");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    for (auto& c : calls) {
      c.thread.join();
      HCHECK(destroyed(c.object) == 0, "%s: the blocked thread's guarded object was freed",
             c.name);
      if (std::strcmp(c.name, "sleep_for") == 0) {
        HCHECK(c.took >= 1200ms, "sleep_for(1200ms) returned after %lld ms", ms(c.took));
      } else {
        HCHECK(c.result == -1 && c.error == EINTR, "%s returned %ld (%s), not EINTR", c.name,
               c.result, std::strerror(c.error));
        HCHECK(c.took < 4s, "%s was not interrupted by the cycle (%lld ms)", c.name, ms(c.took));
      }
    }
  });
  expect_passed(h.finish(20s));
}

}  // namespace
