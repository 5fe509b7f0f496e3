// src/snapshot/spawn.cpp: the snapshot child's creation, supervision and reaping.
//
// Claims invariants 5 and 17 of docs/design.md.
//
// Invariant 5 (the child never allocates). The child is made with the raw clone system call, not glibc's
// fork(): fork() runs atfork handlers that take malloc's arena locks, which a paused thread
// may hold. The child therefore has a stale thread descriptor and must call nothing that
// relies on it (no malloc, stdio, raise or pthread_*): it runs only scanner_child_main.
// Its exit signal is 0: the program's own wait(-1), waitpid(-1) and SIGCHLD handling never
// see it (they wait for SIGCHLD children only), and the runtime reaps only this pid, with
// __WALL. PR_SET_PDEATHSIG stops a child whose parent died. The child waits on a word of
// the shared answer page until start() says the paused threads are released, so it never
// competes with the collector for a CPU while they are held.
#include "snapshot/spawn.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "os/sys.hpp"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace cmr::detail::snapshot {

namespace {

[[noreturn]] void child_main(const ScanPlan& plan, const ChildFaults& faults,
                             pid_t parent) noexcept {
  ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // The parent may have died before the prctl took effect.
  if (static_cast<pid_t>(::syscall(SYS_getppid)) != parent) sys::exit_group(4);
  // acquire: pairs with the release store in start(); nothing is read before it anyway
  // (the snapshot was taken at the clone), the order only ends the wait.
  while (plan.result->started.load(std::memory_order_acquire) == 0)
    sys::futex_wait_shared(&plan.result->started, 0);
  plan.result->began_ns = sys::now_ns();
  scanner_child_main(plan, faults);
}

int raw_clone(unsigned long flags, int* pidfd) noexcept {
  // Both x86-64 and aarch64 take (flags, stack, parent_tid, ...); with a null stack the
  // child runs on a copy of this stack, like fork. CLONE_PIDFD stores the pidfd through
  // parent_tid.
  return static_cast<int>(::syscall(SYS_clone, flags, nullptr, pidfd, nullptr, 0));
}

}  // namespace

int spawn(const ScanPlan& plan, const ChildFaults& faults, Child& child) noexcept {
  const pid_t parent = ::getpid();
  int pidfd = -1;
  int pid = raw_clone(CLONE_PIDFD, &pidfd);
  if (pid < 0 && errno == EINVAL) {  // kernels before 5.2: no pidfd, poll the pid instead
    pidfd = -1;
    pid = raw_clone(0, nullptr);
  }
  if (pid < 0) return errno;
  if (pid == 0) child_main(plan, faults, parent);
  child.pid = pid;
  child.pidfd = pidfd;
  return 0;
}

void start(ScanResult* result) noexcept {
  // release: pairs with the child's acquire load in child_main.
  result->started.store(1, std::memory_order_release);
  sys::futex_wake_shared(&result->started);
}

Outcome wait(Child& child, std::int64_t timeout_ns, int& detail) noexcept {
  const std::int64_t deadline = sys::deadline_after(timeout_ns);
  bool timed_out = false;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(child.pid, &status, WNOHANG | __WALL);
    if (r == child.pid) break;
    if (r < 0 && errno != EINTR) {  // should not happen: the pid is ours and unreaped
      detail = errno;
      if (child.pidfd >= 0) ::close(child.pidfd);
      child = Child{};
      return Outcome::kCrashed;
    }
    std::int64_t left = deadline - sys::now_ns();
    if (left <= 0 && !timed_out) {
      ::kill(child.pid, SIGKILL);  // safe: an unreaped pid cannot be reused
      timed_out = true;
      continue;
    }
    if (child.pidfd >= 0 && !timed_out) {
      pollfd p{child.pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 1000)));
    } else {
      ::usleep(200);
    }
  }
  if (child.pidfd >= 0) ::close(child.pidfd);
  child = Child{};
  if (timed_out) {
    detail = SIGKILL;
    return Outcome::kTimedOut;
  }
  if (WIFEXITED(status)) {
    detail = WEXITSTATUS(status);
    return detail == 0 ? Outcome::kExited : Outcome::kCrashed;
  }
  detail = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
  return Outcome::kCrashed;
}

}  // namespace cmr::detail::snapshot
