// tests/hostile/replaced_handler_test.cpp: the program installs its own handler over cmr's.
//
// After cmr::init, the program takes cmr's signal (SIGUSR1) with sigaction. A handler that
// does not chain to cmr's cannot answer the handshake: every cycle must abort, free
// nothing, and say that the handler was replaced, not that a thread did not answer (which
// would send the user looking for a blocked or stopped thread). A handler that chains to
// cmr's, as crash reporters and profilers do, keeps cycles working; so does restoring cmr's.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

std::atomic<int> g_program_handler_calls{0};
struct sigaction g_cmr_action;

void program_handler(int) { g_program_handler_calls.fetch_add(1); }

// Chains to the handler it replaced, as crash reporters and profilers do.
void chaining_handler(int sig) {
  g_program_handler_calls.fetch_add(1);
  g_cmr_action.sa_handler(sig);
}

TEST(ReplacedHandler, AHandlerInstalledOverCmrsAbortsCyclesUnlessItChains) {
  Helper h([] {
    cmr::init(helper_options());
    const int garbage = make_garbage();
    Parked parked;
    struct sigaction mine {};
    mine.sa_handler = &program_handler;
    mine.sa_flags = SA_RESTART;
    sigemptyset(&mine.sa_mask);
    HCHECK(sigaction(SIGUSR1, &mine, &g_cmr_action) == 0, "sigaction");

    clear_diagnostics();
    const cmr::Stats before = cmr::stats();
    HCHECK(!cmr::collect(), "a cycle completed without cmr's handler");
    const cmr::Stats after = cmr::stats();
    HCHECK(after.cycles_aborted == before.cycles_aborted + 1, "not counted as aborted");
    HCHECK(after.cycles == before.cycles && after.objects_freed == before.objects_freed &&
               destroyed(garbage) == 0,
           "a cycle freed objects without having paused the threads");
    HCHECK(diagnosed(format("signal %d", SIGUSR1)), "the signal is not named: %s",
           all_diagnostics().c_str());

    mine.sa_handler = &chaining_handler;
    HCHECK(sigaction(SIGUSR1, &mine, nullptr) == 0, "sigaction");
    g_program_handler_calls = 0;
    HCHECK(collect_completing(), "a cycle failed although the program's handler chains to cmr's");
    HCHECK(g_program_handler_calls.load() >= 1, "the chaining handler never ran");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));

    HCHECK(sigaction(SIGUSR1, &g_cmr_action, nullptr) == 0, "sigaction");
    const int more = make_garbage();
    HCHECK(collect_completing(), "no cycle completed with cmr's handler restored");
    HCHECK(destroyed(more) == 1 && destroyed(parked.object()) == 0,
           "the restored handler's cycle freed the wrong objects");
  });
  expect_passed(h.finish(20s));
}

// The abort must name the replaced handler, not "did not answer ... Is the signal blocked
// in that thread, or is it stopped?", which would send the user looking for the wrong
// cause. The check comes after the timeout, not before signalling: a program handler that
// chains to cmr's (above) keeps cycles working and must not be refused.
TEST(ReplacedHandler, AReplacedHandlerIsReportedAsSuch) {
  Helper h([] {
    cmr::init(helper_options());
    const int garbage = make_garbage();
    Parked parked;
    struct sigaction mine {};
    mine.sa_handler = &program_handler;
    sigemptyset(&mine.sa_mask);
    HCHECK(sigaction(SIGUSR1, &mine, &g_cmr_action) == 0, "sigaction");
    clear_diagnostics();
    const cmr::Stats before = cmr::stats();
    HCHECK(!cmr::collect(), "a cycle completed without cmr's handler");
    HCHECK(cmr::stats().cycles_aborted == before.cycles_aborted + 1, "not counted as aborted");
    HCHECK(destroyed(garbage) == 0, "a cycle freed objects without having paused the threads");
    HCHECK(diagnosed(format("signal %d", SIGUSR1)) && diagnosed("replaced"),
           "not reported as a replaced handler: %s", all_diagnostics().c_str());
  });
  expect_passed(h.finish(20s));
}

}  // namespace
