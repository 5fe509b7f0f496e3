// tests/support/ptrace.cpp: stopping one thread of a helper process (ptrace.hpp).
#include "support/ptrace.hpp"

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "support/proc.hpp"

namespace cmr_test {

std::string seize_and_stop(pid_t tid, long options) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(options)) != 0)
    return format("ptrace(PTRACE_SEIZE) is not permitted here: %s", std::strerror(errno));
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
    return format("PTRACE_INTERRUPT: %s", std::strerror(errno));
  for (;;) {
    int status = 0;
    if (waitpid(tid, &status, __WALL) != tid) return format("waitpid: %s", std::strerror(errno));
    if (!WIFSTOPPED(status)) return "the thread ended: " + describe_status(status);
    if ((status >> 16) == PTRACE_EVENT_STOP) return "";
    // A signal-delivery stop came first: deliver the signal; the interrupt stop follows.
    ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(WSTOPSIG(status))));
  }
}

}  // namespace cmr_test
