// tests/hostile/program_children_test.cpp: the program has children of its own.
//
// The scanner is a child process too, created with exit signal 0: the program's
// waitpid(-1) must never see it (nor reap it from under cmr), cmr must never reap the
// program's children (a zombie stays there for the program to wait for), no cycle may
// raise SIGCHLD, and with SIGCHLD ignored or SA_NOCLDWAIT (the kernel then reaps children
// that exit with SIGCHLD) cycles must still find their scanner and complete.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

// Children with the usual exit signal are reaped by the kernel then; a runtime that waited
// for its scanner as such a child would find it gone.
void cycles_with_children_reaped_by_the_kernel(bool ignore) {
  cmr::init(helper_options());
  if (ignore) {
    signal(SIGCHLD, SIG_IGN);
  } else {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sa.sa_flags = SA_NOCLDWAIT | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, nullptr);
  }
  Parked parked;
  std::atomic<bool> done{false};
  std::string fork_error;
  std::thread forker([&] {
    cmr::Guard<Tracked> registration;  // paused by every cycle, like any program thread
    for (int i = 0; i < 40; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        usleep(100 + 100 * (i % 5));
        _exit(0);
      }
      if (pid < 0) {
        fork_error = std::strerror(errno);
        break;
      }
      usleep(300);
    }
    done = true;
  });
  std::vector<int> garbage;
  while (!done.load() || garbage.size() < 2) {
    garbage.push_back(make_garbage());
    cmr::collect();
  }
  forker.join();
  HCHECK(fork_error.empty(), "fork: %s", fork_error.c_str());
  HCHECK(cmr::stats().cycles_failed == 0 && cmr::stats().cycles > 0,
         "%llu of %zu cycles failed: %s", (unsigned long long)cmr::stats().cycles_failed,
         garbage.size(), all_diagnostics().c_str());
  // wait() blocks until every child has ended, then fails with ECHILD: none is left.
  errno = 0;
  HCHECK(wait(nullptr) == -1 && errno == ECHILD, "wait(): %s", std::strerror(errno));
  HCHECK(children_of(getpid()).empty(), "children left:%s",
         describe_processes(children_of(getpid())).c_str());
  HCHECK(collect_completing(), "the last cycle did not complete");
  for (int id : garbage)
    HCHECK(destroyed(id) == 1, "garbage %d destroyed %d times", id, destroyed(id));
  HCHECK(cmr::stats().cycles_failed == 0, "a cycle lost its scanner");
  HCHECK(destroyed(parked.object()) == 0, "a guarded object was freed");
}

TEST(ProgramChildren, WithSigchldIgnoredCyclesCompleteAndTheProgramsChildrenAreAutoReaped) {
  Helper h([] { cycles_with_children_reaped_by_the_kernel(/*ignore=*/true); });
  expect_passed(h.finish(30s));
}

TEST(ProgramChildren, WithSaNocldwaitCyclesCompleteAndTheProgramsChildrenAreAutoReaped) {
  Helper h([] { cycles_with_children_reaped_by_the_kernel(/*ignore=*/false); });
  expect_passed(h.finish(30s));
}

TEST(ProgramChildren, WaitpidAnyNeverSeesTheScannerAndReapsOnlyTheProgramsChildren) {
  run_in_helper([] {
    cmr::init(helper_options());
    std::atomic<bool> done{false};
    std::set<pid_t> forked, reaped;
    std::vector<std::string> problems;
    int ended_with_echild = 0;
    std::atomic<int> cycles{0};
    std::thread parent([&] {
      cmr::Guard<Tracked> registration;  // this thread is paused by every cycle
      for (int round = 0; round < 25; ++round) {
        // A cycle between rounds, at least: the waits below interleave with scanners.
        while (cycles.load() < round + 1) std::this_thread::yield();
        std::set<pid_t> outstanding;
        for (int k = 0; k < 4; ++k) {
          const pid_t pid = fork();
          if (pid == 0) {
            usleep(200 + 300 * k);
            _exit(7);
          }
          if (pid < 0) {
            problems.push_back(std::string("fork: ") + std::strerror(errno));
            continue;
          }
          forked.insert(pid);
          outstanding.insert(pid);
        }
        while (!outstanding.empty()) {
          int status = 0;
          const pid_t r = waitpid(-1, &status, 0);
          if (r < 0) {
            problems.push_back(std::string("waitpid(-1): ") + std::strerror(errno));
            break;
          }
          if (outstanding.erase(r) == 0)
            problems.push_back("reaped a pid it never forked: " + std::to_string(r));
          if (!reaped.insert(r).second) problems.push_back("reaped twice: " + std::to_string(r));
          if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
            problems.push_back("pid " + std::to_string(r) + " status " + std::to_string(status));
        }
      }
      int status;
      const pid_t last = waitpid(-1, &status, 0);
      if (last < 0 && errno == ECHILD) ended_with_echild = 1;
      else problems.push_back("final waitpid(-1) returned " + std::to_string(last));
      done = true;
    });
    while (!done.load()) {
      EXPECT_TRUE(cmr::collect());
      cycles.fetch_add(1);
    }
    parent.join();
    for (const auto& p : problems) ADD_FAILURE() << p;
    EXPECT_EQ(reaped, forked);
    EXPECT_EQ(forked.size(), 100u);
    EXPECT_EQ(ended_with_echild, 1);
    EXPECT_GE(cycles.load(), 25);
    EXPECT_TRUE(children_of(getpid()).empty()) << describe_processes(children_of(getpid()));
  });
}

TEST(ProgramChildren, AChildForkedBeforeFiftyCyclesIsStillReapableAfterwards) {
  run_in_helper([] {
    cmr::init(helper_options());
    const pid_t pid = fork();
    if (pid == 0) _exit(7);
    ASSERT_GT(pid, 0);
    // Wait until it has exited (a zombie): a runtime that reaped anything but its own child
    // would take it during the cycles.
    for (int i = 0; i < 5000 && state_of(pid) != 'Z'; ++i) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(state_of(pid), 'Z');
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(cmr::collect());
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, WNOHANG), pid) << "the runtime reaped the program's child";
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 7);
  });
}

std::atomic<int> g_sigchld{0};

TEST(ProgramChildren, CyclesNeverRaiseSigchld) {
  run_in_helper([] {
    cmr::init(helper_options());
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_sigchld.fetch_add(1); };
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGCHLD, &sa, nullptr), 0);
    for (int i = 0; i < 30; ++i) EXPECT_TRUE(cmr::collect());
    // The scanner runs on the collector thread, which blocks every signal: SIGCHLD would
    // stay pending for the process, and any thread that does not block it would take it.
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(g_sigchld.load(), 0) << "the scanner's exit raised SIGCHLD";
    int status;
    errno = 0;
    EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
  });
}

}  // namespace
