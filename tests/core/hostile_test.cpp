// Hostile-environment tests: what the runtime does when the program, the system or another
// process gets in its way. A registered thread stopped by a tracer, or the whole process
// stopped by job control; blocking calls that the handshake signal interrupts; a process
// limit that makes the scanner's creation fail; the program killed while its scanner runs;
// SIGCHLD ignored; the program's own fork() and exec(); the program taking over cmr's
// signal after init; a real-time handshake signal. fault_test.cpp covers injected faults,
// a thread that blocks the signal, blocking read() and the program's waitpid(-1).
//
// Each case needs runtime options of its own, and some stop or kill the process, so each
// runs in a helper process forked from this one. This process never uses cmr itself: it
// stays single-threaded, so a fork gives the helper a fresh, uninitialised runtime. It
// drives the helper through a socket, plays the hostile party (ptrace, SIGSTOP, SIGKILL),
// and turns the helper's report messages into test failures.
#include <gtest/gtest.h>

#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>

#include "core/tracked_counter.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

pid_t gettid_now() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

long long ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// ---- /proc ---------------------------------------------------------------------------

// The fields of a /proc stat file after the command name: [0] is the state (field 3 of
// proc(5)), [1] the parent's pid. Empty once the process is gone.
std::vector<std::string> stat_fields(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return {};
  const auto paren = line.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream rest(line.substr(paren + 1));
  std::vector<std::string> out;
  for (std::string f; rest >> f;) out.push_back(f);
  return out;
}

// A process's (or, with tid, one thread's) state letter; '-' once it no longer exists.
char state_of(pid_t pid, pid_t tid = 0) {
  const auto f = stat_fields(tid == 0 ? format("/proc/%d/stat", pid)
                                      : format("/proc/%d/task/%d/stat", pid, tid));
  return f.empty() ? '-' : f[0][0];
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
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

// Every process whose parent is `parent`.
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

// What each thread of `pid` is blocked in: evidence for a hang.
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

// True if `sig` is pending on that one thread (SigPnd in /proc/<pid>/task/<tid>/status).
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

// Waits for `pid` (a child of the caller) to end; nullopt if it has not by the deadline.
std::optional<int> wait_for_exit(pid_t pid, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG | __WALL);
    if (r == pid) return status;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
}

// ---- Helper side: runs in the forked helper process ------------------------------------

constexpr int kSkipCode = 77;
constexpr unsigned kHelperAlarmSeconds = 40;  // a hung helper dies of SIGALRM

int g_socket = -1;  // SOCK_SEQPACKET: one message per report line or command
std::atomic<int> g_failures{0};

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!send(g_socket, buf, std::min<std::size_t>(n, sizeof buf - 1), MSG_NOSIGNAL);
}

void fail_at(int line, const char* condition, const std::string& message) {
  g_failures.fetch_add(1);
  say("FAIL line %d: %s: %s", line, condition, message.c_str());
}

// The helper's EXPECT: a failed check is reported to the test and fails the helper's exit.
#define HCHECK(cond, ...)                                      \
  do {                                                         \
    if (!(cond)) fail_at(__LINE__, #cond, format(__VA_ARGS__)); \
  } while (0)

[[noreturn]] void skip(const std::string& reason) {
  say("SKIP %s", reason.c_str());
  _exit(kSkipCode);
}

// The next command from the test; 0 if the test went away.
char await_command() {
  char c = 0;
  for (;;) {
    const ssize_t n = recv(g_socket, &c, 1, 0);
    if (n == 1) return c;
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

std::mutex g_diag_mutex;
std::vector<std::string> g_diagnostics;

void record_diagnostic(const char* message) noexcept {
  {
    std::lock_guard lock(g_diag_mutex);
    g_diagnostics.emplace_back(message);
  }
  std::fprintf(stderr, "cmr [helper %d]: %s\n", static_cast<int>(getpid()), message);
}

void clear_diagnostics() {
  std::lock_guard lock(g_diag_mutex);
  g_diagnostics.clear();
}

bool diagnosed(const std::string& needle) {
  std::lock_guard lock(g_diag_mutex);
  return std::any_of(g_diagnostics.begin(), g_diagnostics.end(),
                     [&](const std::string& m) { return m.find(needle) != std::string::npos; });
}

std::string all_diagnostics() {
  std::lock_guard lock(g_diag_mutex);
  std::string s;
  for (const auto& m : g_diagnostics) s += "[" + m + "] ";
  return s.empty() ? "(none)" : s;
}

// A trigger no test reaches, so that only explicit collect() calls run cycles and every
// counter delta is exact. The handshake timeout is what an expected abort costs; shorter
// ones make a loaded machine (sanitizers, parallel ctest) abort cycles that should complete.
constexpr auto kHandshakeTimeout = 1000ms;

cmr::Options helper_options() {
  return {.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
          .handshake_timeout = kHandshakeTimeout,
          .scan_timeout = 10s,
          .diagnostics = &record_diagnostic};
}

using cmr_test::destroyed;
using cmr_test::make_garbage;
using cmr_test::Tracked;

int make_rooted(cmr::Root<Tracked>& root) {
  cmr::Guard<Tracked> g;
  Tracked* t = cmr::make<Tracked>(g);
  root.store(t);
  return t->id;
}

// collect(), retried while cycles abort: a loaded machine (sanitizers, parallel ctest) may
// not schedule a thread within the handshake timeout. A failed cycle is not retried.
bool collect_completing() {
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t aborted = cmr::stats().cycles_aborted;
    if (cmr::collect()) return true;
    if (cmr::stats().cycles_aborted == aborted) return false;
  }
  return false;
}

// A registered thread that holds one guarded object until it is destroyed: a thread every
// cycle must pause, and an object every cycle must keep.
class Parked {
 public:
  Parked()
      : thread_([this] {
          cmr::Guard<Tracked> g;
          object_ = cmr::make<Tracked>(g)->id;
          tid_ = gettid_now();
          while (!stop_.load()) std::this_thread::sleep_for(1ms);
        }) {
    while (tid_.load() == 0) std::this_thread::yield();
  }
  ~Parked() {
    stop_ = true;
    thread_.join();
  }
  pid_t tid() const { return tid_.load(); }
  int object() const { return object_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<pid_t> tid_{0};
  int object_ = -1;
  std::thread thread_;
};

// ---- Test side: the helper process and its report ----------------------------------

std::size_t threads_in_this_process() { return numeric_entries("/proc/self/task").size(); }

class Helper {
 public:
  template <class Body>
  explicit Helper(Body body) {
    // A fork of a multi-threaded process could inherit a lock some other thread held.
    EXPECT_EQ(threads_in_this_process(), 1u) << "the test process must stay single-threaded";
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return;
    }
    std::fflush(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      close(sv[0]);
      g_socket = sv[1];
      alarm(kHelperAlarmSeconds);
      // Every condition here is about the scanner child (its creation, exit and reaping)
      // or the handshake, which both kinds of cycle share: every cycle uses the child.
      cmr::detail::g_test_faults.use_child = true;
      try {
        body();
      } catch (const std::exception& e) {
        say("FAIL uncaught exception: %s", e.what());
        _exit(3);
      }
      _exit(g_failures.load() == 0 ? 0 : 1);
    }
    close(sv[1]);
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      close(sv[0]);
      return;
    }
    socket_ = sv[0];
    name_ = pid_;
  }
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;

  ~Helper() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, __WALL);
    }
    if (socket_ >= 0) close(socket_);
  }

  pid_t pid() const { return pid_; }
  const std::string& skip_reason() const { return skip_reason_; }

  void send_command(char c) {
    if (socket_ >= 0 && ::send(socket_, &c, 1, MSG_NOSIGNAL) != 1)
      ADD_FAILURE() << "cannot send '" << c << "' to the helper: " << std::strerror(errno);
  }

  // The rest of the next report message that starts with `key`; nullopt (and a test
  // failure) if none came within `timeout`.
  std::optional<std::string> await(const std::string& key, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      for (auto it = messages_.begin(); it != messages_.end(); ++it) {
        if (it->compare(0, key.size(), key) == 0 &&
            (it->size() == key.size() || (*it)[key.size()] == ' ')) {
          std::string rest = it->size() > key.size() ? it->substr(key.size() + 1) : "";
          messages_.erase(it);
          return rest;
        }
      }
      if (!receive(deadline)) {
        ADD_FAILURE() << "the helper did not report \"" << key << "\" within " << ms(timeout)
                      << " ms; its threads:" << describe_threads(pid_);
        return std::nullopt;
      }
    }
  }

  // Kills the helper now and reaps it.
  void kill_now() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, __WALL);
    pid_ = -1;
  }

  // Waits for the helper to end (killing it at the deadline, which fails the test) and
  // reports every message it sent; returns its wait status.
  int finish(Clock::duration timeout) {
    if (socket_ >= 0) shutdown(socket_, SHUT_WR);  // its await_command() returns 0
    const auto deadline = Clock::now() + timeout;
    int status = -1;
    while (pid_ > 0) {
      const pid_t r = waitpid(pid_, &status, WNOHANG | __WALL);
      if (r == pid_) break;
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "the helper did not end within " << ms(timeout)
                      << " ms; its threads:" << describe_threads(pid_);
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, __WALL);
        break;
      }
      receive(Clock::now() + 10ms);
    }
    pid_ = -1;
    // What it sent before it ended is still queued (a scanner it left may hold the socket
    // open, so do not wait for end-of-file).
    while (receive(Clock::now())) {
    }
    return status;
  }

 private:
  // Receives one message (reporting it if it is a failure); false at the deadline or end.
  bool receive(Clock::time_point deadline) {
    if (socket_ < 0 || eof_) return false;
    pollfd p{socket_, POLLIN, 0};
    const auto left = std::max<long long>(0, ms(deadline - Clock::now()));
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    const ssize_t n = recv(socket_, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) eof_ = true;
    if (n <= 0) return false;
    std::string m(buf, static_cast<std::size_t>(n));
    if (m.compare(0, 4, "FAIL") == 0)
      ADD_FAILURE() << "[helper " << name_ << "] " << m;
    else if (m.compare(0, 5, "SKIP ") == 0)
      skip_reason_ = m.substr(5);
    else
      messages_.push_back(std::move(m));
    return true;
  }

  pid_t pid_ = -1;   // -1 once reaped
  pid_t name_ = -1;  // the pid, for messages after that
  int socket_ = -1;
  bool eof_ = false;
  std::deque<std::string> messages_;
  std::string skip_reason_;
};

void expect_passed(int status) {
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the helper " << describe_status(status);
}

// Makes this process the reaper of its orphaned descendants, so that a test can see how a
// scanner whose program died ended; on exit, kills and reaps whatever is left.
class SubreaperScope {
 public:
  SubreaperScope() {
    prctl(PR_GET_CHILD_SUBREAPER, &previous_);
    ok_ = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  }
  ~SubreaperScope() {
    for (pid_t p : children_of(getpid())) kill(p, SIGKILL);
    while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
    }
    prctl(PR_SET_CHILD_SUBREAPER, previous_);
  }
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = false;
};

// Attaches to one thread of the helper and stops just that thread (SIGSTOP would stop the
// whole process). Returns an error message, or "" once the thread is in an interrupt stop.
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

// ---- 1. A thread that does not answer -----------------------------------------------

TEST(Hostile, AThreadStoppedByATracerAbortsCyclesUntilItRunsAgain) {
  Helper h([] {
    cmr::init(helper_options());
    cmr::Root<Tracked> root;
    const int kept = make_rooted(root);
    const int garbage = make_garbage();
    Parked parked;
    say("tid %d", parked.tid());
    if (await_command() != 's') return;  // the test cannot trace: it skips

    clear_diagnostics();
    const cmr::Stats before = cmr::stats();
    const auto t0 = Clock::now();
    HCHECK(!cmr::collect(), "a cycle completed while a registered thread was stopped");
    const auto waited = Clock::now() - t0;
    const cmr::Stats after = cmr::stats();
    HCHECK(after.cycles_aborted == before.cycles_aborted + 1, "aborted %llu -> %llu",
           (unsigned long long)before.cycles_aborted, (unsigned long long)after.cycles_aborted);
    HCHECK(after.cycles == before.cycles && after.cycles_failed == before.cycles_failed,
           "the abort was counted as something else");
    HCHECK(after.objects_freed == before.objects_freed, "an aborted cycle freed objects");
    HCHECK(destroyed(garbage) == 0, "an aborted cycle freed garbage");
    HCHECK(waited >= kHandshakeTimeout - 50ms && waited < kHandshakeTimeout + 5s,
           "aborted after %lld ms; handshake_timeout is %lld", ms(waited),
           ms(kHandshakeTimeout));
    HCHECK(diagnosed("did not answer") && diagnosed(format("tid %d", parked.tid())),
           "the stopped thread is not named: %s", all_diagnostics().c_str());
    say("aborted");

    HCHECK(await_command() == 'c', "no command to go on");
    HCHECK(collect_completing(), "no cycle completed once the thread ran again");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    HCHECK(destroyed(kept) == 0 && destroyed(parked.object()) == 0, "a reachable object was freed");
  });
  const auto tid_message = h.await("tid", 10s);
  ASSERT_TRUE(tid_message);
  const pid_t tid = std::atoi(tid_message->c_str());
  const std::string trace_error = seize_and_stop(tid, 0);
  if (trace_error.rfind("ptrace(PTRACE_SEIZE)", 0) == 0) {
    h.send_command('q');
    h.finish(10s);
    GTEST_SKIP() << trace_error;
  }
  ASSERT_EQ(trace_error, "");
  EXPECT_EQ(state_of(h.pid(), tid), 't');
  h.send_command('s');
  EXPECT_TRUE(h.await("aborted", 10s));
  // The signal of the aborted cycle is still pending: it arrives once the thread runs, and
  // the handler must return at once (that cycle is over).
  EXPECT_EQ(ptrace(PTRACE_DETACH, tid, nullptr, nullptr), 0) << std::strerror(errno);
  h.send_command('c');
  expect_passed(h.finish(15s));
}

TEST(Hostile, AProcessStoppedAndContinuedByJobControlKeepsCollecting) {
  Helper h([] {
    cmr::init(helper_options());
    const int garbage = make_garbage();
    Parked parked;
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0};
    std::thread cycler([&] {
      while (!stop.load())
        if (cmr::collect()) completed.fetch_add(1);
    });
    say("running");
    HCHECK(await_command() == 'c', "no command to go on");
    const int at_continue = completed.load();
    for (int i = 0; i < 5000 && completed.load() < at_continue + 5; ++i)
      std::this_thread::sleep_for(1ms);
    stop = true;
    cycler.join();
    HCHECK(completed.load() >= at_continue + 5, "cycles did not resume after SIGCONT (%d)",
           completed.load() - at_continue);
    const cmr::Stats s = cmr::stats();
    // The stop may abort a handshake (its deadline passes meanwhile); it must never lose a
    // scanner or its answer.
    HCHECK(s.cycles_failed == 0, "%llu failed cycles", (unsigned long long)s.cycles_failed);
    HCHECK(destroyed(parked.object()) == 0, "a guarded object was freed");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
  });
  ASSERT_TRUE(h.await("running", 10s));
  std::this_thread::sleep_for(20ms);  // let cycles run, so that the stop lands in one
  ASSERT_EQ(kill(h.pid(), SIGSTOP), 0);
  for (int i = 0; i < 2000 && state_of(h.pid()) != 'T'; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(state_of(h.pid()), 'T');
  std::this_thread::sleep_for(kHandshakeTimeout + 200ms);  // a handshake's deadline passes
  ASSERT_EQ(kill(h.pid(), SIGCONT), 0);
  h.send_command('c');
  expect_passed(h.finish(20s));
}

// ---- 2. Blocking calls the signal interrupts -----------------------------------------

// A registered thread, holding a guarded object, blocked in one call.
struct BlockedCall {
  const char* name;
  std::vector<long> syscalls;  // what /proc/<tid>/syscall may show while it blocks
  std::function<long()> call;
  std::atomic<pid_t> tid{0};
  long result = 0;
  int error = 0;
  Clock::duration took{};
  int object = -1;
  std::thread thread;

  BlockedCall(const char* n, std::vector<long> nrs, std::function<long()> c)
      : name(n), syscalls(std::move(nrs)), call(std::move(c)) {}

  void start() {
    thread = std::thread([this] {
      cmr::Guard<Tracked> g;
      object = cmr::make<Tracked>(g)->id;
      const auto t0 = Clock::now();
      tid = gettid_now();
      result = call();
      error = result < 0 ? errno : 0;
      took = Clock::now() - t0;
    });
  }
  bool blocked() const {
    if (state_of(getpid(), tid) != 'S') return false;
    const long nr = std::atol(first_line(format("/proc/self/task/%d/syscall", tid.load())).c_str());
    return std::find(syscalls.begin(), syscalls.end(), nr) != syscalls.end();
  }
};

TEST(Hostile, CallsThatSignalsInterruptSeeEintrAndCyclesStillComplete) {
  Helper h([] {
    cmr::init(helper_options());
    int fds[2];
    HCHECK(pipe(fds) == 0, "pipe");
    const int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    HCHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) == 0, "epoll_ctl");
    const int garbage = make_garbage();

    std::vector<long> poll_nrs = {SYS_ppoll}, sleep_nrs = {SYS_clock_nanosleep},
                      epoll_nrs = {SYS_epoll_pwait};
#ifdef SYS_poll
    poll_nrs.push_back(SYS_poll);
#endif
#ifdef SYS_nanosleep
    sleep_nrs.push_back(SYS_nanosleep);
#endif
#ifdef SYS_epoll_wait
    epoll_nrs.push_back(SYS_epoll_wait);
#endif
#ifdef SYS_epoll_pwait2
    epoll_nrs.push_back(SYS_epoll_pwait2);
#endif
    // poll, nanosleep and epoll_wait are never restarted after a handler (signal(7)), so
    // SA_RESTART does not hide the handshake from them: the documented EINTR.
    BlockedCall calls[] = {
        {"poll", poll_nrs,
         [&] {
           pollfd p{fds[0], POLLIN, 0};
           return static_cast<long>(::poll(&p, 1, 5000));
         }},
        {"nanosleep", sleep_nrs,
         [] {
           timespec t{5, 0}, rem{};
           return static_cast<long>(::nanosleep(&t, &rem));
         }},
        {"epoll_wait", epoll_nrs,
         [&] {
           epoll_event out{};
           return static_cast<long>(::epoll_wait(ep, &out, 1, 5000));
         }},
        // std::this_thread::sleep_for retries on EINTR: the full duration, cycles or not.
        {"sleep_for", sleep_nrs,
         [] {
           std::this_thread::sleep_for(1200ms);
           return 0L;
         }},
    };
    for (auto& c : calls) c.start();
    for (auto& c : calls) {
      while (c.tid.load() == 0) std::this_thread::yield();
      for (int i = 0; i < 3000 && !c.blocked(); ++i) std::this_thread::sleep_for(1ms);
      HCHECK(c.blocked(), "%s never blocked", c.name);
    }
    const cmr::Stats before = cmr::stats();
    HCHECK(collect_completing(), "the cycle did not complete: %s", all_diagnostics().c_str());
    HCHECK(cmr::stats().cycles == before.cycles + 1, "the cycle was not counted");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    for (auto& c : calls) {
      c.thread.join();
      HCHECK(destroyed(c.object) == 0, "%s: the blocked thread's guarded object was freed",
             c.name);
      if (std::strcmp(c.name, "sleep_for") == 0) {
        HCHECK(c.took >= 1200ms, "sleep_for(1200ms) returned after %lld ms", ms(c.took));
      } else {
        HCHECK(c.result == -1 && c.error == EINTR, "%s returned %ld (%s), not EINTR", c.name,
               c.result, std::strerror(c.error));
        HCHECK(c.took < 4s, "%s was not interrupted by the cycle (%lld ms)", c.name, ms(c.took));
      }
    }
  });
  expect_passed(h.finish(20s));
}

// ---- 3. A process limit -----------------------------------------------------------

TEST(Hostile, AProcessLimitMakesCyclesFailUntilItIsRaised) {
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

// ---- 4. The program dies while its scanner runs --------------------------------------

TEST(Hostile, KillingTheProgramKillsItsScanner) {
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
  // check of its parent right after asking (exit status 4, src/snapshot.cpp).
  EXPECT_TRUE((WIFSIGNALED(*ended) && WTERMSIG(*ended) == SIGKILL) ||
              (WIFEXITED(*ended) && WEXITSTATUS(*ended) == 4))
      << "the scanner " << describe_status(*ended);
}

// ---- 5. SIGCHLD ignored ----------------------------------------------------------

// Children with the usual exit signal are reaped by the kernel then; a runtime that waited
// for its scanner as such a child would find it gone.
void cycles_with_children_reaped_by_the_kernel(bool ignore) {
  cmr::init(helper_options());
  if (ignore) {
    signal(SIGCHLD, SIG_IGN);
  } else {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sa.sa_flags = SA_NOCLDWAIT | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, nullptr);
  }
  Parked parked;
  std::atomic<bool> done{false};
  std::string fork_error;
  std::thread forker([&] {
    cmr::Guard<Tracked> registration;  // paused by every cycle, like any program thread
    for (int i = 0; i < 40; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        usleep(100 + 100 * (i % 5));
        _exit(0);
      }
      if (pid < 0) {
        fork_error = std::strerror(errno);
        break;
      }
      usleep(300);
    }
    done = true;
  });
  std::vector<int> garbage;
  while (!done.load() || garbage.size() < 2) {
    garbage.push_back(make_garbage());
    cmr::collect();
  }
  forker.join();
  HCHECK(fork_error.empty(), "fork: %s", fork_error.c_str());
  HCHECK(cmr::stats().cycles_failed == 0 && cmr::stats().cycles > 0,
         "%llu of %zu cycles failed: %s", (unsigned long long)cmr::stats().cycles_failed,
         garbage.size(), all_diagnostics().c_str());
  // wait() blocks until every child has ended, then fails with ECHILD: none is left.
  errno = 0;
  HCHECK(wait(nullptr) == -1 && errno == ECHILD, "wait(): %s", std::strerror(errno));
  HCHECK(children_of(getpid()).empty(), "children left:%s",
         describe_processes(children_of(getpid())).c_str());
  HCHECK(collect_completing(), "the last cycle did not complete");
  for (int id : garbage)
    HCHECK(destroyed(id) == 1, "garbage %d destroyed %d times", id, destroyed(id));
  HCHECK(cmr::stats().cycles_failed == 0, "a cycle lost its scanner");
  HCHECK(destroyed(parked.object()) == 0, "a guarded object was freed");
}

TEST(Hostile, WithSigchldIgnoredCyclesCompleteAndTheProgramsChildrenAreAutoReaped) {
  Helper h([] { cycles_with_children_reaped_by_the_kernel(/*ignore=*/true); });
  expect_passed(h.finish(30s));
}

TEST(Hostile, WithSaNocldwaitCyclesCompleteAndTheProgramsChildrenAreAutoReaped) {
  Helper h([] { cycles_with_children_reaped_by_the_kernel(/*ignore=*/false); });
  expect_passed(h.finish(30s));
}

// ---- 6. The program's own fork() -------------------------------------------------

struct Blob {
  std::uint64_t words[30] = {};
};

// In the child of the program's fork(): what must and must not work there.
void check_forked_child(int round, Tracked* held, cmr::Root<Tracked>& root) {
  alarm(20);
  // The runtime rebuilds itself here: a collector of its own, cycles that complete.
  const int garbage = make_garbage();
  HCHECK(cmr::collect(), "round %d: no cycle completed in the child of fork(): %s", round,
         all_diagnostics().c_str());
  HCHECK(destroyed(garbage) == 1, "round %d: the child's garbage destroyed %d times", round,
         destroyed(garbage));
  HCHECK(held->payload[0] == static_cast<std::uint64_t>(round) + 1,
         "round %d: the object guarded across fork() changed", round);
  {
    cmr::Guard<Tracked> g;
    Tracked* kept = g.protect(root);
    HCHECK(kept != nullptr && kept->payload[0] == 42, "round %d: the root's object is lost", round);
    Tracked* fresh = cmr::make<Tracked>(g);
    fresh->payload[1] = 7;
    HCHECK(g.get() == fresh && fresh->payload[1] == 7, "round %d: make() failed", round);
  }
  // Past the trigger: automatic cycles in the child.
  for (int i = 0; i < 4096; ++i) {
    cmr::Guard<Blob> g;
    cmr::make<Blob>(g);
  }
  std::thread([round] {
    cmr::Guard<Tracked> g;  // a thread of the child registers and allocates
    HCHECK(cmr::make<Tracked>(g) != nullptr, "round %d: make() on a new thread failed", round);
  }).join();
}

void expect_child_ends(pid_t pid, int round, Clock::duration timeout) {
  const auto status = wait_for_exit(pid, timeout);
  if (!status) {
    HCHECK(false, "round %d: the forked child hung:%s", round, describe_threads(pid).c_str());
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return;
  }
  HCHECK(WIFEXITED(*status) && WEXITSTATUS(*status) == 0, "round %d: the forked child %s", round,
         describe_status(*status).c_str());
}

#if defined(__SANITIZE_ADDRESS__)
// GCC 12's AddressSanitizer allocator is not fork-safe (LLVM added its atfork locking in
// llvm/llvm-project#75290): a child forked while another thread is inside malloc can
// deadlock in its own first malloc. Under ASan the program's threads rest at each fork.
constexpr bool kQuietForks = true;
#else
constexpr bool kQuietForks = false;
#endif

// The children end with _exit so that this test checks fork alone; exit() in a forked
// child has its own test below.
TEST(Hostile, TheProgramsForkLeavesAChildThatAllocatesAndCollects) {
  Helper h([] {
    cmr::init({.trigger_bytes = 64 << 10,  // the mutator triggers background cycles too
               .handshake_timeout = kHandshakeTimeout,
               .diagnostics = &record_diagnostic});
    cmr::Root<Tracked> root;
    make_rooted(root);
    {
      cmr::Guard<Tracked> g;
      g.protect(root)->payload[0] = 42;
    }
    const int garbage = make_garbage();
    std::atomic<bool> stop{false}, quiet{false};
    std::atomic<int> resting{0}, completed{0};
    auto rest_while_quiet = [&] {
      if (!quiet.load()) return;
      resting.fetch_add(1);
      while (quiet.load()) std::this_thread::sleep_for(100us);
      resting.fetch_sub(1);
    };
    std::atomic<bool> registered{false};
    std::thread mutator([&] {
      while (!stop.load()) {
        rest_while_quiet();
        cmr::Guard<Blob> g;
        cmr::make<Blob>(g);
        registered = true;
      }
    });
    // Registered before the first explicit cycle: a thread that registers just as a cycle
    // starts can miss its signal (registry.cpp lists the record before the handler can find
    // it through tls_record) and abort that cycle.
    while (!registered.load()) std::this_thread::yield();
    std::thread cycler([&] {
      while (!stop.load()) {
        rest_while_quiet();
        if (cmr::collect()) completed.fetch_add(1);
      }
    });
    const cmr::Stats before = cmr::stats();
    for (int round = 0; round < 12; ++round) {
      cmr::Guard<Tracked> g;
      Tracked* held = cmr::make<Tracked>(g);
      held->payload[0] = static_cast<std::uint64_t>(round) + 1;
      if (kQuietForks) {
        quiet = true;
        while (resting.load() != 2) std::this_thread::sleep_for(100us);
        cmr::collect();  // the collector thread's last cycle, frees included, is over
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(round % 3));
      }
      const pid_t pid = fork();
      if (pid == 0) {
        g_failures = 0;
        check_forked_child(round, held, root);
        _exit(g_failures.load() == 0 ? 0 : 1);
      }
      HCHECK(pid > 0, "fork: %s", std::strerror(errno));
      if (pid > 0) expect_child_ends(pid, round, 10s);
      quiet = false;
    }
    for (int i = 0; i < 5000 && completed.load() == 0; ++i) std::this_thread::sleep_for(1ms);
    stop = true;
    cycler.join();
    mutator.join();
    const cmr::Stats after = cmr::stats();
    // Aborted cycles are tolerated: a loaded machine may not schedule a thread in time.
    HCHECK(completed.load() > 0 && after.cycles_failed == before.cycles_failed,
           "cycles alongside fork(): %d completed, %llu failed: %s", completed.load(),
           (unsigned long long)(after.cycles_failed - before.cycles_failed),
           all_diagnostics().c_str());
    HCHECK(collect_completing(), "no cycle completed after the forks");
    HCHECK(destroyed(garbage) == 1, "garbage destroyed %d times", destroyed(garbage));
    cmr::Guard<Tracked> g;
    HCHECK(g.protect(root)->payload[0] == 42, "the rooted object was freed or changed");
  });
  expect_passed(h.finish(60s));
}

// A child forked while the program collects hangs in exit() about once in a hundred forks
// here: the runtime's atexit handler (Collector::stop) runs in a child that has no collector
// thread, locks the collector's request mutex (held at the fork by a thread the child does
// not have) and broadcasts its condition variable (glibc waits there for waiters the child
// does not have). Meaningful in a Release build: under GCC 12's ASan the child's exit can
// also deadlock in the sanitizer's own allocator.
TEST(Hostile, AChildForkedWhileCollectRunsExitsNormally) {
  // exit() in the child frees memory; with threads allocating at the fork, GCC 12's libasan
  // allocator can be left locked in the child (not fork-safe; fixed upstream in
  // llvm/llvm-project#75290), so the child hangs in ASan, not in cmr (seen in CI: the
  // child waits on a futex in the sanitizer allocator's own state). The Release run holds.
  if (kQuietForks) GTEST_SKIP() << "libasan's allocator is not fork-safe with threads running";
  Helper h([] {
    cmr::init({.trigger_bytes = 64 << 10, .diagnostics = &record_diagnostic});
    std::atomic<bool> stop{false};
    auto collect_loop = [&] {
      while (!stop.load()) cmr::collect();
    };
    std::thread c1(collect_loop), c2(collect_loop);
    // 400 forks, or as many as 20 s allow on a loaded machine (at least 50).
    const auto until = Clock::now() + 20s;
    int round = 0;
    for (; round < 400 && g_failures.load() == 0 && (round < 50 || Clock::now() < until); ++round) {
      const pid_t pid = fork();
      if (pid == 0) {
        alarm(20);
        std::exit(0);
      }
      if (pid > 0) expect_child_ends(pid, round, 10s);
    }
    HCHECK(round >= 50 || g_failures.load() != 0, "only %d forks", round);
    stop = true;
    c1.join();
    c2.join();
  });
  expect_passed(h.finish(40s));
}

// ---- 7. exec() ----------------------------------------------------------------------

// exec() keeps the signals pending on the thread that calls it and resets cmr's handler to
// the default action, which for SIGUSR1 ends the process: a cycle that signalled that
// thread just before its exec would kill the new program (one exec in fifteen, before
// src/exec_guard.cpp took the thread out of the handshake first; see the test below). cmr::shutdown() first stops the collector thread, after which no cycle
// signals anyone, even with another thread inside collect() (see
// NoCycleRunsAfterShutdownReturns).
void exec_true_while_cycles_run(int delay_us, bool shut_down_first) {
  cmr::Options options = helper_options();
  options.trigger_bytes = 16 << 10;  // the mutator alone keeps background cycles going
  cmr::init(options);
  std::atomic<bool> stop{false};
  std::thread cycler([&] {
    if (!shut_down_first)
      while (!stop.load()) cmr::collect();
  });
  std::thread mutator([&] {
    try {
      while (!stop.load()) make_garbage();
    } catch (const cmr::Error&) {  // make() after shutdown()
    }
  });
  std::thread execer([&] {
    cmr::Guard<Tracked> g;  // a registered thread, paused by the cycles
    cmr::make<Tracked>(g);
    for (int i = 0; i < 5000 && cmr::stats().cycles == 0; ++i) usleep(1000);
    HCHECK(cmr::stats().cycles > 0, "no cycle ran before the exec");
    usleep(delay_us);
    if (shut_down_first) cmr::shutdown();
    execl("/bin/true", "true", static_cast<char*>(nullptr));
    HCHECK(false, "execl: %s", std::strerror(errno));
    _exit(9);
  });
  execer.join();
}

void expect_execs_succeed(bool shut_down_first, int rounds) {
  SubreaperScope reaper;  // a scanner that outlives the exec comes here
  ASSERT_TRUE(reaper.ok());
  ASSERT_EQ(access("/bin/true", X_OK), 0) << "/bin/true is missing";
  for (int round = 0; round < rounds; ++round) {
    const int delay_us = (round * 1237) % 5000;
    SCOPED_TRACE(format("exec after %d us", delay_us));
    Helper h([=] { exec_true_while_cycles_run(delay_us, shut_down_first); });
    expect_passed(h.finish(10s));
  }
  // A scanner in flight at an exec dies with the collector thread (PR_SET_PDEATHSIG): none
  // may be left running. Zombies are fine; the reaper collects them.
  auto all_ended = [] {
    for (pid_t p : children_of(getpid()))
      if (state_of(p) != 'Z') return false;
    return true;
  };
  for (int i = 0; i < 5000 && !all_ended(); ++i) std::this_thread::sleep_for(1ms);
  for (pid_t p : children_of(getpid()))
    EXPECT_EQ(state_of(p), 'Z') << "still running after its program exec'd:"
                                << describe_processes({p});
}

TEST(Hostile, ExecAfterShutdownWhileBackgroundCyclesRunSucceeds) {
  expect_execs_succeed(/*shut_down_first=*/true, 10);
}

// Deterministic form of the race above: a tracer holds the thread at the entry of the
// execve() system call while another thread collects. Before src/exec_guard.cpp the cycle
// signalled it, the signal was pending when the exec completed, and the new program died of
// SIGUSR1 (13 of 200 execs in the wild). Now the thread left the handshake in the exec
// wrapper: the cycle completes without it, nothing is pending, and the exec succeeds.
TEST(Hostile, ASignalPendingAtExecDoesNotKillTheNewProgram) {
  ASSERT_EQ(access("/bin/true", X_OK), 0) << "/bin/true is missing";
  Helper h([] {
    cmr::init(helper_options());
    std::atomic<int> go{0};
    std::atomic<pid_t> tid{0};
    std::thread execer([&] {
      cmr::Guard<Tracked> g;  // registered: every cycle signals it
      cmr::make<Tracked>(g);
      tid = gettid_now();
      while (go.load() == 0) usleep(1000);
      execl("/bin/true", "true", static_cast<char*>(nullptr));
      HCHECK(false, "execl: %s", std::strerror(errno));
      _exit(9);
    });
    while (tid.load() == 0) std::this_thread::yield();
    say("tid %d", tid.load());
    if (await_command() != 'x') _exit(0);
    go = 1;
    HCHECK(await_command() == 'c', "no command to collect");
    HCHECK(cmr::collect(), "a cycle waited for a thread that was inside exec()");
    say("collected");
    execer.join();  // the exec ends this process
  });
  const auto tid_message = h.await("tid", 10s);
  ASSERT_TRUE(tid_message);
  const pid_t tid = std::atoi(tid_message->c_str());
  const std::string trace_error = seize_and_stop(tid, PTRACE_O_TRACESYSGOOD);
  if (trace_error.rfind("ptrace(PTRACE_SEIZE)", 0) == 0) GTEST_SKIP() << trace_error;
  ASSERT_EQ(trace_error, "");
  h.send_command('x');
  bool at_execve = false;
  for (int i = 0; i < 100000 && !at_execve; ++i) {
    ASSERT_EQ(ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(waitpid(tid, &status, __WALL), tid) << std::strerror(errno);
    ASSERT_TRUE(WIFSTOPPED(status)) << describe_status(status);
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) continue;  // not a system-call stop
    __ptrace_syscall_info info{};
    ASSERT_GT(ptrace(PTRACE_GET_SYSCALL_INFO, tid, reinterpret_cast<void*>(sizeof info), &info), 0);
    at_execve = info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr == SYS_execve;
  }
  ASSERT_TRUE(at_execve) << "the thread never reached execve()";
  h.send_command('c');
  ASSERT_TRUE(h.await("collected", 10s));
  EXPECT_FALSE(signal_pending_on(h.pid(), tid, SIGUSR1))
      << "a handshake signal waits on a thread that is entering execve()";
  EXPECT_EQ(ptrace(PTRACE_DETACH, tid, nullptr, nullptr), 0) << std::strerror(errno);
  expect_passed(h.finish(10s));
}

// shutdown() stops the collector thread, but a collect() that passed its running check just
// before then runs a cycle on its caller's thread (Collector::collect falls back to a
// foreground cycle once the thread is not joinable), after shutdown() returned.
TEST(Hostile, NoCycleRunsAfterShutdownReturns) {
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE(format("round %d", round));
    Helper h([round] {
      cmr::init(helper_options());
      std::atomic<bool> stop{false};
      auto collect_loop = [&] {
        try {
          while (!stop.load()) cmr::collect();
        } catch (const cmr::Error&) {  // collect() after shutdown()
        }
      };
      std::thread c1(collect_loop), c2(collect_loop);
      Parked parked;
      usleep(1000 + 300 * round);
      cmr::shutdown();
      const cmr::Stats at_shutdown = cmr::stats();
      usleep(20000);
      const cmr::Stats later = cmr::stats();
      HCHECK(later.cycles == at_shutdown.cycles &&
                 later.cycles_aborted == at_shutdown.cycles_aborted,
             "cycles after shutdown() returned: %llu -> %llu",
             (unsigned long long)at_shutdown.cycles, (unsigned long long)later.cycles);
      stop = true;
      c1.join();
      c2.join();
    });
    expect_passed(h.finish(10s));
    if (HasFailure()) break;
  }
}

TEST(Hostile, AnExecKillsTheScannerInFlight) {
  SubreaperScope reaper;
  ASSERT_TRUE(reaper.ok());
  if (access("/bin/sleep", X_OK) != 0) GTEST_SKIP() << "/bin/sleep is missing";
  Helper h([] {
    cmr::init({.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
               .scan_timeout = 30s,  // longer than the test: only the exec can end it
               .diagnostics = &record_diagnostic});
    for (int i = 0; i < 20; ++i) {
      make_garbage();
      HCHECK(collect_completing(), "cycle %d", i);
    }
    std::atomic<int> go{0};
    std::thread execer([&] {
      cmr::Guard<Tracked> g;
      cmr::make<Tracked>(g);
      while (go.load() == 0) std::this_thread::sleep_for(1ms);
      execl("/bin/sleep", "sleep", "1", static_cast<char*>(nullptr));
      HCHECK(false, "execl: %s", std::strerror(errno));
      _exit(9);
    });
    cmr::detail::g_test_faults.child_hang = true;
    std::thread([] { cmr::collect(); }).detach();
    pid_t scanner = 0;
    for (int i = 0; i < 5000 && scanner == 0; ++i) {
      const auto c = children_of(getpid());
      if (!c.empty()) scanner = c.front();
      else std::this_thread::sleep_for(1ms);
    }
    HCHECK(scanner != 0, "no scanner process appeared");
    say("scanner %d", scanner);
    go = 1;
    execer.join();
  });
  const auto scanner_message = h.await("scanner", 10s);
  ASSERT_TRUE(scanner_message);
  const pid_t scanner = std::atoi(scanner_message->c_str());
  for (int i = 0; i < 3000 && first_line(format("/proc/%d/comm", h.pid())) != "sleep"; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(first_line(format("/proc/%d/comm", h.pid())), "sleep") << "the exec did not happen";
  // The program (now sleep) still lives: only the collector thread's death can end the scan.
  for (int i = 0; i < 5000 && state_of(scanner) != 'Z' && state_of(scanner) != '-'; ++i)
    std::this_thread::sleep_for(1ms);
  const char scanner_state = state_of(scanner);
  EXPECT_TRUE(scanner_state == 'Z' || scanner_state == '-')
      << "the scanner still runs after its program exec'd:" << describe_processes({scanner});
  expect_passed(h.finish(10s));
}

// ---- 8. The program takes cmr's signal after init ------------------------------------

std::atomic<int> g_program_handler_calls{0};
struct sigaction g_cmr_action;

void program_handler(int) { g_program_handler_calls.fetch_add(1); }

// Chains to the handler it replaced, as crash reporters and profilers do.
void chaining_handler(int sig) {
  g_program_handler_calls.fetch_add(1);
  g_cmr_action.sa_handler(sig);
}

TEST(Hostile, AHandlerInstalledOverCmrsAbortsCyclesUnlessItChains) {
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
TEST(Hostile, AReplacedHandlerIsReportedAsSuch) {
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

// ---- 9. A real-time signal ----------------------------------------------------------

TEST(Hostile, ARealTimeSignalCarriesCyclesAndLeavesSigusr1ToTheProgram) {
  Helper h([] {
    const int sig = SIGRTMIN + 3;
    cmr::Options options = helper_options();
    options.signal = sig;
    cmr::init(options);
    struct sigaction mine {};
    mine.sa_handler = &program_handler;
    sigemptyset(&mine.sa_mask);
    HCHECK(sigaction(SIGUSR1, &mine, nullptr) == 0, "SIGUSR1 is not free for the program");
    cmr::Root<Tracked> root;
    const int kept = make_rooted(root);
    Parked a, b;
    std::vector<int> garbage;
    for (int i = 0; i < 20; ++i) {
      garbage.push_back(make_garbage());
      HCHECK(collect_completing(), "cycle %d: %s", i, all_diagnostics().c_str());
    }
    for (int id : garbage) HCHECK(destroyed(id) == 1, "garbage destroyed %d times", destroyed(id));
    HCHECK(destroyed(kept) == 0 && destroyed(a.object()) == 0 && destroyed(b.object()) == 0,
           "a reachable object was freed");
    HCHECK(g_program_handler_calls.load() == 0, "cycles sent SIGUSR1");
    HCHECK(syscall(SYS_tgkill, getpid(), a.tid(), SIGUSR1) == 0, "tgkill");
    for (int i = 0; i < 2000 && g_program_handler_calls.load() == 0; ++i)
      std::this_thread::sleep_for(1ms);
    HCHECK(g_program_handler_calls.load() == 1, "the program's SIGUSR1 handler ran %d times",
           g_program_handler_calls.load());

    // Real-time signals queue: a thread that blocks the signal through three aborted
    // cycles gets three late instances when it unblocks, and none may hold it.
    std::atomic<int> phase{0};
    std::thread deaf([&] {
      cmr::Guard<Tracked> g;  // registers (unblocking cmr's signal), then blocks it
      cmr::make<Tracked>(g);
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, sig);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);
      phase = 1;
      while (phase.load() != 2) std::this_thread::sleep_for(1ms);
      sigset_t pending;
      sigpending(&pending);
      HCHECK(sigismember(&pending, sig) == 1, "the aborted cycles' signal is not pending");
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      phase = 3;
    });
    while (phase.load() != 1) std::this_thread::yield();
    const cmr::Stats before = cmr::stats();
    for (int i = 0; i < 3; ++i) HCHECK(!cmr::collect(), "a cycle completed with a deaf thread");
    HCHECK(cmr::stats().cycles_aborted == before.cycles_aborted + 3, "not counted as aborted");
    const int late = make_garbage();
    phase = 2;
    for (int i = 0; i < 3000 && phase.load() != 3; ++i) std::this_thread::sleep_for(1ms);
    HCHECK(phase.load() == 3, "a late signal held the thread");
    deaf.join();
    HCHECK(collect_completing(), "no cycle completed after the late signals");
    HCHECK(destroyed(late) == 1, "garbage destroyed %d times", destroyed(late));
  });
  expect_passed(h.finish(20s));
}

}  // namespace
