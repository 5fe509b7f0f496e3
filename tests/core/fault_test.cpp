// Fault tests: cycles that go wrong free nothing, leave no process behind and do not stop
// the next cycle; and the runtime's signal and child process stay out of the program's way
// (its blocking calls, its own children, its fork handlers).
//
// Faults are injected through cmr::detail::g_test_faults (cmr/detail/hooks.hpp). The
// runtime is initialised once, before any test, with short timeouts (so that a hung scanner
// costs 1.5 s), a trigger no test reaches (so that only the tests' own collect() calls run
// cycles and every counter delta is exact) and a sink that records the diagnostics.
#include <gtest/gtest.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>

#include "core/task_state.hpp"
#include "core/tracked_counter.hpp"

namespace {

using namespace std::chrono_literals;

// ---- Runtime set-up and diagnostics ----------------------------------------------------

std::mutex g_diag_mutex;
std::vector<std::string> g_diagnostics;

void record_diagnostic(const char* message) noexcept {
  std::lock_guard lock(g_diag_mutex);
  g_diagnostics.emplace_back(message);
  std::fprintf(stderr, "cmr: %s\n", message);
}

void clear_diagnostics() {
  std::lock_guard lock(g_diag_mutex);
  g_diagnostics.clear();
}

bool diagnosed(const char* needle) {
  std::lock_guard lock(g_diag_mutex);
  return std::any_of(g_diagnostics.begin(), g_diagnostics.end(),
                     [&](const std::string& m) { return m.find(needle) != std::string::npos; });
}

class FaultEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    cmr::init({.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
               .handshake_timeout = 500ms,
               .scan_timeout = 1500ms,
               .diagnostics = &record_diagnostic});
    // These tests are about the scanner child (its faults, its exit, the program's own
    // children beside it): every cycle uses one.
    cmr::detail::g_test_faults.use_child = true;
  }
};
[[maybe_unused]] ::testing::Environment* const g_environment =
    ::testing::AddGlobalTestEnvironment(new FaultEnvironment);

struct FaultReset {
  ~FaultReset() {
    cmr::detail::g_test_faults = {.use_child = true};
  }
};

// ---- Tracked objects with destruction counted by id ------------------------------------

using cmr_test::destroyed;
using cmr_test::make_garbage;
using cmr_test::Tracked;

// ---- Processes -------------------------------------------------------------------------

struct ProcessInfo {
  pid_t pid;
  char state;
};

// Every process whose parent is this process, from /proc/<pid>/stat.
std::vector<ProcessInfo> children_of_this_process() {
  std::vector<ProcessInfo> out;
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    char* end;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;  // exited meanwhile
    const auto paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(line.substr(paren + 1));
    char state = 0;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == self) out.push_back({static_cast<pid_t>(pid), state});
  }
  closedir(proc);
  return out;
}

std::string describe(const std::vector<ProcessInfo>& ps) {
  std::string s;
  for (const auto& p : ps) s += " pid " + std::to_string(p.pid) + " state " + p.state + ";";
  return s;
}

using cmr_test::gettid_now;
using cmr_test::in_syscall;
using cmr_test::task_state;

// ---- Failed cycles ---------------------------------------------------------------------

// Arms a fault, runs one cycle, and checks that it failed the expected way and changed
// nothing; then checks that the next, fault-free cycle frees the garbage exactly once and
// still keeps a rooted object.
void expect_failed_cycle_frees_nothing(void (*arm)(), std::uint64_t cmr::Stats::*counter,
                                       const char* diagnostic) {
  FaultReset reset;
  cmr::Root<Tracked> root;
  int kept;
  {
    cmr::Guard<Tracked> g;
    Tracked* t = cmr::make<Tracked>(g);
    kept = t->id;
    root.store(t);
  }
  const int garbage = make_garbage();
  ASSERT_TRUE(children_of_this_process().empty()) << describe(children_of_this_process());
  clear_diagnostics();
  const cmr::Stats before = cmr::stats();

  arm();
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults = {.use_child = true};
  const cmr::Stats after = cmr::stats();

  EXPECT_EQ(after.*counter, before.*counter + 1);
  EXPECT_EQ(after.cycles_failed, before.cycles_failed + 1);
  // The failure is counted once, under its own cause only.
  EXPECT_EQ(after.clone_failures + after.scanner_crashes + after.scanner_timeouts,
            before.clone_failures + before.scanner_crashes + before.scanner_timeouts + 1);
  EXPECT_EQ(after.cycles_aborted, before.cycles_aborted);
  EXPECT_EQ(after.cycles, before.cycles);
  EXPECT_EQ(after.objects_freed, before.objects_freed);
  EXPECT_EQ(destroyed(garbage), 0) << "a failed cycle freed an object";
  EXPECT_EQ(destroyed(kept), 0);
  const auto children = children_of_this_process();
  EXPECT_TRUE(children.empty()) << "left behind:" << describe(children);
  EXPECT_TRUE(diagnosed(diagnostic)) << "no diagnostic mentioning \"" << diagnostic << "\"";

  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1);
  EXPECT_EQ(destroyed(kept), 0);
  EXPECT_EQ(cmr::stats().cycles, before.cycles + 1);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1) << "freed twice";
  EXPECT_TRUE(children_of_this_process().empty());
  root.store(nullptr);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(kept), 1);
}

TEST(Faults, ScannerCrashFreesNothing) {
  expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_crash = true; },
                                    &cmr::Stats::scanner_crashes, "without a complete answer");
}

TEST(Faults, ScannerThatExitsWithoutAnAnswerFreesNothing) {
  expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_exit_early = true; },
                                    &cmr::Stats::scanner_crashes, "without a complete answer");
}

TEST(Faults, FailedProcessCreationFreesNothing) {
  expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.fail_clone = 1; },
                                    &cmr::Stats::clone_failures,
                                    "cannot create the scanner process");
}

TEST(Faults, HungScannerIsKilledAtScanTimeoutAndFreesNothing) {
  const auto t0 = std::chrono::steady_clock::now();
  expect_failed_cycle_frees_nothing([] { cmr::detail::g_test_faults.child_hang = true; },
                                    &cmr::Stats::scanner_timeouts, "scan_timeout");
  // The cycle waited for scan_timeout (1.5 s), not for ever.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1400ms);
}

TEST(Faults, ConsecutiveFailuresStillFreeNothingUntilACycleCompletes) {
  FaultReset reset;
  const int garbage = make_garbage();
  const cmr::Stats before = cmr::stats();
  cmr::detail::g_test_faults.fail_clone = 2;
  EXPECT_FALSE(cmr::collect());
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults.child_crash = true;
  EXPECT_FALSE(cmr::collect());
  cmr::detail::g_test_faults = {.use_child = true};
  EXPECT_EQ(destroyed(garbage), 0);
  EXPECT_EQ(cmr::stats().cycles_failed, before.cycles_failed + 3);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(garbage), 1);
  EXPECT_TRUE(children_of_this_process().empty());
}

// ---- A thread that blocks the handshake signal -----------------------------------------

TEST(Faults, AThreadBlockingTheSignalAbortsTheCycleUntilItUnblocks) {
  const int garbage = make_garbage();
  std::atomic<int> phase{0};
  std::thread deaf([&] {
    cmr::Guard<Tracked> g;  // registers the thread (which unblocks the signal), then:
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // deaf to the handshake, on purpose
    phase = 1;
    while (phase.load() != 2) std::this_thread::sleep_for(1ms);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // the pending signal arrives: harmless
    phase = 3;
    while (phase.load() != 4) std::this_thread::sleep_for(1ms);
  });
  while (phase.load() != 1) std::this_thread::yield();
  clear_diagnostics();
  const cmr::Stats before = cmr::stats();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cmr::collect());
  const auto waited = std::chrono::steady_clock::now() - t0;
  const cmr::Stats after = cmr::stats();
  EXPECT_EQ(after.cycles_aborted, before.cycles_aborted + 1);
  EXPECT_EQ(after.cycles, before.cycles);
  EXPECT_EQ(after.cycles_failed, before.cycles_failed);
  EXPECT_EQ(after.objects_freed, before.objects_freed);
  EXPECT_EQ(destroyed(garbage), 0);
  EXPECT_GE(waited, 450ms) << "aborted before handshake_timeout";
  EXPECT_LT(waited, 5s);
  EXPECT_TRUE(diagnosed("did not answer")) << "the abort was not reported";
  EXPECT_TRUE(children_of_this_process().empty()) << "an aborted cycle created a child";

  phase = 2;
  while (phase.load() != 3) std::this_thread::yield();
  EXPECT_TRUE(cmr::collect()) << "the thread answers once it unblocks the signal";
  EXPECT_EQ(destroyed(garbage), 1);
  EXPECT_EQ(cmr::stats().cycles_aborted, before.cycles_aborted + 1);
  phase = 4;
  deaf.join();
}

// ---- The program's blocking calls ------------------------------------------------------

TEST(Faults, ABlockingReadNeitherStallsCyclesNorSeesEintr) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::atomic<pid_t> reader_tid{0};
  std::atomic<bool> returned{false};
  ssize_t got = 0;
  int err = 0;
  char byte = 0;
  int guarded_id = -1;
  std::thread reader([&] {
    cmr::Guard<Tracked> g;  // registered, and holds an object across the read
    guarded_id = cmr::make<Tracked>(g)->id;
    reader_tid = gettid_now();
    got = read(fds[0], &byte, 1);
    err = got < 0 ? errno : 0;
    returned = true;
  });
  while (reader_tid.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 10000 && !in_syscall(reader_tid, SYS_read); ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(in_syscall(reader_tid, SYS_read)) << "the reader never blocked in read()";

  const cmr::Stats before = cmr::stats();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(cmr::collect()) << "cycle " << i;
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(cmr::stats().cycles, before.cycles + 20);
  EXPECT_EQ(cmr::stats().cycles_aborted, before.cycles_aborted);
  EXPECT_LT(took, 10s);
  EXPECT_FALSE(returned.load()) << "read() returned early: " << got << ", errno " << err;
  EXPECT_EQ(destroyed(guarded_id), 0);

  ASSERT_EQ(write(fds[1], "x", 1), 1);
  reader.join();
  EXPECT_EQ(got, 1) << "read() failed with errno " << err << " (" << std::strerror(err) << ")";
  EXPECT_EQ(byte, 'x');
  close(fds[0]);
  close(fds[1]);
  EXPECT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(guarded_id), 1);
}

// ---- The program's own children ---------------------------------------------------------

TEST(UserChildren, WaitpidAnyNeverSeesTheScannerAndReapsOnlyTheProgramsChildren) {
  std::atomic<bool> done{false};
  std::set<pid_t> forked, reaped;
  std::vector<std::string> problems;
  int ended_with_echild = 0;
  std::atomic<int> cycles{0};
  std::thread parent([&] {
    cmr::Guard<Tracked> registration;  // this thread is paused by every cycle
    for (int round = 0; round < 25; ++round) {
      // A cycle between rounds, at least: the waits below interleave with scanners.
      while (cycles.load() < round + 1) std::this_thread::yield();
      std::set<pid_t> outstanding;
      for (int k = 0; k < 4; ++k) {
        const pid_t pid = fork();
        if (pid == 0) {
          usleep(200 + 300 * k);
          _exit(7);
        }
        if (pid < 0) {
          problems.push_back(std::string("fork: ") + std::strerror(errno));
          continue;
        }
        forked.insert(pid);
        outstanding.insert(pid);
      }
      while (!outstanding.empty()) {
        int status = 0;
        const pid_t r = waitpid(-1, &status, 0);
        if (r < 0) {
          problems.push_back(std::string("waitpid(-1): ") + std::strerror(errno));
          break;
        }
        if (outstanding.erase(r) == 0) problems.push_back("reaped a pid it never forked: " + std::to_string(r));
        if (!reaped.insert(r).second) problems.push_back("reaped twice: " + std::to_string(r));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
          problems.push_back("pid " + std::to_string(r) + " status " + std::to_string(status));
      }
    }
    int status;
    const pid_t last = waitpid(-1, &status, 0);
    if (last < 0 && errno == ECHILD) ended_with_echild = 1;
    else problems.push_back("final waitpid(-1) returned " + std::to_string(last));
    done = true;
  });
  while (!done.load()) {
    EXPECT_TRUE(cmr::collect());
    cycles.fetch_add(1);
  }
  parent.join();
  for (const auto& p : problems) ADD_FAILURE() << p;
  EXPECT_EQ(reaped, forked);
  EXPECT_EQ(forked.size(), 100u);
  EXPECT_EQ(ended_with_echild, 1);
  EXPECT_GE(cycles.load(), 25);
  EXPECT_TRUE(children_of_this_process().empty());
}

TEST(UserChildren, AChildForkedBeforeFiftyCyclesIsStillReapableAfterwards) {
  const pid_t pid = fork();
  if (pid == 0) _exit(7);
  ASSERT_GT(pid, 0);
  // Wait until it has exited (a zombie): a runtime that reaped anything but its own child
  // would take it during the cycles.
  bool zombie = false;
  for (int i = 0; i < 5000 && !zombie; ++i) {
    for (const auto& c : children_of_this_process())
      if (c.pid == pid && c.state == 'Z') zombie = true;
    if (!zombie) std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(zombie);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(cmr::collect());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, WNOHANG), pid) << "the runtime reaped the program's child";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

std::atomic<int> g_sigchld{0};

TEST(UserChildren, CyclesNeverRaiseSigchld) {
  struct sigaction sa {}, old {};
  sa.sa_handler = [](int) { g_sigchld.fetch_add(1); };
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGCHLD, &sa, &old), 0);
  g_sigchld = 0;
  for (int i = 0; i < 30; ++i) EXPECT_TRUE(cmr::collect());
  // The scanner runs on the collector thread, which blocks every signal: SIGCHLD would stay
  // pending for the process, and any thread that does not block it would take it.
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(g_sigchld.load(), 0) << "the scanner's exit raised SIGCHLD";
  int status;
  errno = 0;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  sigaction(SIGCHLD, &old, nullptr);
}

std::atomic<int> g_atfork_prepare{0}, g_atfork_parent{0};

TEST(UserChildren, CyclesNeverRunTheProgramsForkHandlers) {
  static const int registered = pthread_atfork([] { g_atfork_prepare.fetch_add(1); },
                                               [] { g_atfork_parent.fetch_add(1); }, nullptr);
  ASSERT_EQ(registered, 0);
  // The handlers do run for a real fork(): the test can see them.
  const int prepare0 = g_atfork_prepare.load();
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
  ASSERT_EQ(g_atfork_prepare.load(), prepare0 + 1);

  const int prepare = g_atfork_prepare.load(), parent = g_atfork_parent.load();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_atfork_prepare.load(), prepare) << "a cycle called fork()";
  EXPECT_EQ(g_atfork_parent.load(), parent);
}

}  // namespace
