// tests/core/task_state.hpp: what a thread of this process is doing, from /proc.
//
// Tests that claim "while a thread is blocked in read()" wait until /proc says so instead
// of sleeping and hoping: the thread's state (S: sleeping) and the system call it is in.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace cmr_test {

inline pid_t gettid_now() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// The state letter of /proc/self/task/<tid>/stat ('R', 'S', 'T', ...), '?' if unreadable.
inline char task_state(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return '?';
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
}

// True once the thread is blocked in system call `nr` (per /proc/<tid>/syscall).
inline bool in_syscall(pid_t tid, long nr) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long current = -1;
  return static_cast<bool>(in >> current) && current == nr && task_state(tid) == 'S';
}

}  // namespace cmr_test
