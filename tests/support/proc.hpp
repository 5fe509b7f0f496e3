// tests/support/proc.hpp: what the kernel says about processes and threads, from /proc.
//
// Tests that claim "while a thread is blocked in read()" or "once the scanner has ended"
// wait until /proc says so instead of sleeping and hoping, and a test that fails on a hang
// names what each thread was blocked in.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace cmr_test {

// The kernel's id of the calling thread (what tgkill and /proc/<pid>/task use).
inline pid_t gettid_now() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// printf into a std::string (up to 1 KiB).
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// The first line of a file; empty if it cannot be read.
std::string first_line(const std::string& path);

// The fields of a /proc stat file after the command name: [0] is the state (field 3 of
// proc(5)), [1] the parent's pid. Empty once the process is gone.
std::vector<std::string> stat_fields(const std::string& path);

// A process's (or, with tid, one thread's) state letter ('R', 'S', 'T', 't', 'Z', ...);
// '-' once it no longer exists.
char state_of(pid_t pid, pid_t tid = 0);

// True once thread `tid` of this process sleeps in system call `nr` (per
// /proc/self/task/<tid>/syscall).
bool in_syscall(pid_t tid, long nr);

// The numeric entries of a /proc directory (pids, or a process's thread ids).
std::vector<pid_t> numeric_entries(const std::string& dir);

// How many threads this process has.
std::size_t threads_in_this_process();

// Every process whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);

// " pid 12 (comm) state S; ..." for a failure message; " none" for an empty list.
std::string describe_processes(const std::vector<pid_t>& pids);

// What each thread of `pid` is blocked in: evidence for a hang.
std::string describe_threads(pid_t pid);

// True if `sig` is pending on that one thread (SigPnd in /proc/<pid>/task/<tid>/status).
bool signal_pending_on(pid_t pid, pid_t tid, int sig);

// "exited with 3", "killed by signal 9 (Killed)".
std::string describe_status(int status);

// Waits for `pid` (a child of the caller) to end; nullopt if it has not by the deadline.
std::optional<int> wait_for_exit(pid_t pid, std::chrono::steady_clock::duration timeout);

// Makes this process the reaper of its orphaned descendants, so that a test can see how a
// scanner whose program died ended; on exit, kills and reaps whatever is left.
class SubreaperScope {
 public:
  SubreaperScope();
  ~SubreaperScope();
  SubreaperScope(const SubreaperScope&) = delete;
  SubreaperScope& operator=(const SubreaperScope&) = delete;
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = false;
};

}  // namespace cmr_test
