// compare/child_run.cpp: fork + exec of one configuration, and the report wire format.
#include "child_run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

namespace cmr::bench {
namespace {

constexpr int kResultFd = 3;

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::vector<std::string> child_args(const RunConfig& c) {
  std::vector<std::string> a = {"cmr_compare",
                                "--child",
                                "--result-fd",
                                std::to_string(kResultFd),
                                "--impl",
                                c.impl,
                                "--workload",
                                std::string(workload_name(c.workload)),
                                "--mix",
                                mix_name(c.mix),
                                "--keys",
                                std::to_string(c.keys),
                                "--threads",
                                std::to_string(c.threads),
                                "--seconds",
                                format_double(c.seconds),
                                "--sample-ms",
                                std::to_string(c.sample_ms),
                                "--timeline-ms",
                                std::to_string(c.timeline_ms),
                                "--seed",
                                std::to_string(c.seed)};
  if (c.stall) a.emplace_back("--stall");
  if (c.pin) a.emplace_back("--pin");
  return a;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  return std::strtoull(std::string(s).c_str(), nullptr, 10);
}

RunReport parse_report(std::string_view text) {
  RunReport r;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "timeline") {
      // t_ms,rss_kib,unreclaimed (the last may be empty)
      auto c1 = value.find(','), c2 = value.rfind(',');
      if (c1 == std::string_view::npos || c2 == c1) continue;
      r.timeline.push_back({parse_u64(value.substr(0, c1)).value_or(0),
                            parse_u64(value.substr(c1 + 1, c2 - c1 - 1)).value_or(0),
                            parse_u64(value.substr(c2 + 1))});
    } else {
      r.columns.set(key, std::string(value));
    }
  }
  return r;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by SIG" + std::string(name != nullptr ? name : std::to_string(sig).c_str());
  }
  return "status " + std::to_string(status);
}

}  // namespace

void write_report(int fd, const RunReport& report) {
  std::string out;
  for (const auto& [k, v] : report.columns.entries()) {
    out += k;
    out += '=';
    for (char ch : v) out += (ch == '\n' ? ' ' : ch);
    out += '\n';
  }
  for (const auto& p : report.timeline) {
    out += "timeline=" + std::to_string(p.t_ms) + "," + std::to_string(p.rss_kib) + "," +
           (p.unreclaimed ? std::to_string(*p.unreclaimed) : std::string()) + "\n";
  }
  const char* data = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

ChildOutcome run_in_child(const RunConfig& cfg, double timeout_s) {
  ChildOutcome outcome;
  std::vector<std::string> args = child_args(cfg);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    outcome.failure = std::string("pipe: ") + std::strerror(errno);
    return outcome;
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    outcome.failure = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return outcome;
  }
  if (pid == 0) {
    // dup2 clears close-on-exec on the new descriptors.
    ::dup2(fds[1], kResultFd);
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    ::execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "cmr_compare: exec /proc/self/exe: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);

  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child closed its end (exited)
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }

  outcome.report = parse_report(text);
  if (timed_out)
    outcome.failure = "timed out after " + format_double(timeout_s) + " s";
  else if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    outcome.failure = describe_status(status);
  else if (!outcome.report.columns.has("mops"))
    outcome.failure = "no report";
  return outcome;
}

}  // namespace cmr::bench
