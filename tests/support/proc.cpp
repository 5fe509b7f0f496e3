// tests/support/proc.cpp: /proc readers for the tests (proc.hpp).
#include "support/proc.hpp"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace cmr_test {

std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

std::vector<std::string> stat_fields(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return {};
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const auto paren = line.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream rest(line.substr(paren + 1));
  std::vector<std::string> out;
  for (std::string f; rest >> f;) out.push_back(f);
  return out;
}

char state_of(pid_t pid, pid_t tid) {
  const auto f = stat_fields(tid == 0 ? format("/proc/%d/stat", pid)
                                      : format("/proc/%d/task/%d/stat", pid, tid));
  return f.empty() ? '-' : f[0][0];
}

bool in_syscall(pid_t tid, long nr) {
  std::ifstream in(format("/proc/self/task/%d/syscall", tid));
  long current = -1;
  return static_cast<bool>(in >> current) && current == nr && state_of(getpid(), tid) == 'S';
}

std::vector<pid_t> numeric_entries(const std::string& dir) {
  std::vector<pid_t> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      char* end;
      const long n = std::strtol(e->d_name, &end, 10);
      if (*end == '\0' && n > 0) out.push_back(static_cast<pid_t>(n));
    }
    closedir(d);
  }
  return out;
}

std::size_t threads_in_this_process() { return numeric_entries("/proc/self/task").size(); }

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (pid_t pid : numeric_entries("/proc")) {
    const auto f = stat_fields(format("/proc/%d/stat", pid));
    if (f.size() > 1 && std::atol(f[1].c_str()) == parent) out.push_back(pid);
  }
  return out;
}

std::string describe_processes(const std::vector<pid_t>& pids) {
  std::string s;
  for (pid_t p : pids)
    s += format(" pid %d (%s) state %c;", p, first_line(format("/proc/%d/comm", p)).c_str(),
                state_of(p));
  return s.empty() ? " none" : s;
}

std::string describe_threads(pid_t pid) {
  std::string s;
  for (pid_t tid : numeric_entries(format("/proc/%d/task", pid)))
    s += format(" [tid %d %s state %c wchan %s syscall %s]", tid,
                first_line(format("/proc/%d/task/%d/comm", pid, tid)).c_str(),
                state_of(pid, tid),
                first_line(format("/proc/%d/task/%d/wchan", pid, tid)).c_str(),
                first_line(format("/proc/%d/task/%d/syscall", pid, tid)).c_str());
  return s;
}

bool signal_pending_on(pid_t pid, pid_t tid, int sig) {
  std::ifstream in(format("/proc/%d/task/%d/status", pid, tid));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("SigPnd:", 0) == 0)
      return ((std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1) != 0;
  return false;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return format("exited with %d", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return format("killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return format("wait status %#x", status);
}

std::optional<int> wait_for_exit(pid_t pid, std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG | __WALL);
    if (r == pid) return status;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

SubreaperScope::SubreaperScope() {
  prctl(PR_GET_CHILD_SUBREAPER, &previous_);
  ok_ = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
}

SubreaperScope::~SubreaperScope() {
  for (pid_t p : children_of(getpid())) kill(p, SIGKILL);
  while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
  }
  prctl(PR_SET_CHILD_SUBREAPER, previous_);
}

}  // namespace cmr_test
