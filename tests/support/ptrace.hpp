// tests/support/ptrace.hpp: stopping one thread of a helper process, as a debugger does.
//
// SIGSTOP stops a whole process; a tracer can stop one thread and hold it there (a
// registered thread that cannot answer the handshake) or step it to a system call's
// entry (a thread caught on its way into execve()).
#pragma once

#include <sys/types.h>

#include <string>

namespace cmr_test {

// Attaches to thread `tid` (PTRACE_SEIZE with `options`) and stops just that thread.
// Returns "" once the thread is in an interrupt stop, or an error message; one that starts
// with "ptrace(PTRACE_SEIZE)" means this machine does not permit tracing (a test skips).
std::string seize_and_stop(pid_t tid, long options);

// True if seize_and_stop's error says tracing is not permitted here.
inline bool tracing_not_permitted(const std::string& error) {
  return error.rfind("ptrace(PTRACE_SEIZE)", 0) == 0;
}

}  // namespace cmr_test
