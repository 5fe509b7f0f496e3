// tests/hostile/killed_program_test.cpp: the program is killed while its scanner runs.
//
// SIGKILL leaves no time for cleanup, and nobody is left to enforce scan_timeout: the
// scanner child must die with its program (PR_SET_PDEATHSIG, or its own check of its
// parent when the program died first), instead of scanning, here hanging, for ever.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <cmr/detail/hooks.hpp>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

TEST(KilledProgram, KillingTheProgramKillsItsScanner) {
  SubreaperScope reaper;  // the orphaned scanner comes here, so its end can be seen
  ASSERT_TRUE(reaper.ok()) << std::strerror(errno);
  Helper h([] {
    cmr::init({.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
               .scan_timeout = 30s,  // longer than the test: only the parent's death ends it
               .diagnostics = &record_diagnostic});
    make_garbage();
    cmr::detail::g_test_faults.child_hang = true;
    std::thread([] { cmr::collect(); }).detach();
    say("collecting");
    for (;;) pause();
  });
  ASSERT_TRUE(h.await("collecting", 10s));
  pid_t scanner = 0;
  for (int i = 0; i < 5000 && scanner == 0; ++i) {
    const auto c = children_of(h.pid());
    if (!c.empty()) scanner = c.front();
    else std::this_thread::sleep_for(1ms);
  }
  ASSERT_NE(scanner, 0) << "no scanner process appeared";
  ASSERT_NE(state_of(scanner), 'Z');
  h.kill_now();
  // PR_SET_PDEATHSIG: the scanner dies with its program instead of scanning (here: hanging)
  // until scan_timeout, which nobody is left to enforce.
  const auto ended = wait_for_exit(scanner, 5s);
  ASSERT_TRUE(ended) << "the scanner outlived its program by 5 s:" << describe_processes({scanner});
  // Killed by the parent-death signal, or, when the program died before the child had
  // asked for that signal (a loaded machine may schedule it that late), ended by its own
  // check of its parent right after asking (exit status 4, src/snapshot/spawn.cpp).
  EXPECT_TRUE((WIFSIGNALED(*ended) && WTERMSIG(*ended) == SIGKILL) ||
              (WIFEXITED(*ended) && WEXITSTATUS(*ended) == 4))
      << "the scanner " << describe_status(*ended);
}

}  // namespace
