// tests/hostile/process_limit_test.cpp: no new process can be created (RLIMIT_NPROC).
//
// A user at its process limit: the scanner's clone fails with EAGAIN. Each such cycle must
// fail, be counted as a clone failure and as nothing else, free nothing and say why; once
// the limit is raised, cycles complete and free the garbage exactly once.
#include <gtest/gtest.h>

#include <grp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hostile/hostile.hpp"

namespace {

using namespace cmr_hostile;
using namespace cmr_test;

TEST(ProcessLimit, AProcessLimitMakesCyclesFailUntilItIsRaised) {
  Helper h([] {
    // Root is exempt from RLIMIT_NPROC; nobody is not.
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
      skip(format("running as root and cannot become uid 65534: %s", std::strerror(errno)));
    cmr::init(helper_options());
    cmr::Root<Tracked> root;
    const int kept = make_rooted(root);
    const int garbage = make_garbage();
    Parked parked;  // every thread exists before the limit

    rlimit old{};
    HCHECK(getrlimit(RLIMIT_NPROC, &old) == 0, "getrlimit");
    rlimit tight = old;
    tight.rlim_cur = 1;  // fewer than this user's tasks: no new process or thread
    HCHECK(setrlimit(RLIMIT_NPROC, &tight) == 0, "setrlimit: %s", std::strerror(errno));
    const pid_t probe = fork();
    if (probe == 0) _exit(0);
    if (probe > 0) {
      waitpid(probe, nullptr, 0);
      skip("RLIMIT_NPROC is not enforced for this user (CAP_SYS_RESOURCE or CAP_SYS_ADMIN)");
    }
    HCHECK(errno == EAGAIN, "fork under the limit failed with %s", std::strerror(errno));

    clear_diagnostics();
    const cmr::Stats before = cmr::stats();
    HCHECK(!cmr::collect(), "a cycle completed although no process can be created");
    HCHECK(!cmr::collect(), "a second cycle completed although no process can be created");
    const cmr::Stats after = cmr::stats();
    HCHECK(after.clone_failures == before.clone_failures + 2, "clone_failures %llu -> %llu",
           (unsigned long long)before.clone_failures, (unsigned long long)after.clone_failures);
    HCHECK(after.cycles_failed == before.cycles_failed + 2, "not counted as failed cycles");
    HCHECK(after.cycles == before.cycles && after.cycles_aborted == before.cycles_aborted,
           "a clone failure was counted as something else");
    HCHECK(after.objects_freed == before.objects_freed && destroyed(garbage) == 0,
           "a cycle without a scanner freed objects");
    HCHECK(diagnosed("cannot create the scanner process") && diagnosed(std::strerror(EAGAIN)),
           "diagnostics: %s", all_diagnostics().c_str());

    HCHECK(setrlimit(RLIMIT_NPROC, &old) == 0, "setrlimit: %s", std::strerror(errno));
    HCHECK(collect_completing(), "no cycle completed after the limit was raised");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    HCHECK(destroyed(kept) == 0 && destroyed(parked.object()) == 0, "a reachable object was freed");
  });
  const int status = h.finish(15s);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kSkipCode) GTEST_SKIP() << h.skip_reason();
  expect_passed(status);
}

}  // namespace
