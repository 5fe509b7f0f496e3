// tests/core/signal_test.cpp: cmr lives beside a program's own signal handling.
//
// cmr's threads block every signal, so a process-directed signal goes to a program thread
// that accepts it, or stays pending for a signalfd: a program that blocks SIGTERM, SIGINT
// and SIGHUP everywhere and reads them from a signalfd gets every one while cycles run, and
// cmr's scanner children raise no SIGCHLD. Threads with an alternate signal stack, and
// threads that block and unblock signals in a hot loop, are held by every cycle. A thread
// that blocks cmr's signal for longer than handshake_timeout is named, and the cycles
// after it unblocks succeed. The handler runs on the thread's own stack: its use (with the
// kernel's signal frame) is measured and held under the documented minimum.
// Each test runs in a fresh process (core/verdict.hpp): the masks and dispositions it sets
// are process-wide.
#include <gtest/gtest.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "core/verdict.hpp"

namespace {

using namespace std::chrono_literals;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_success;

class Signals : public cmr_test::InFreshProcess {};

struct Blob {
  long words[2] = {};
};

#define SIG_CHECK(cond, ...) CMR_STATEMENT_CHECK(cond, __VA_ARGS__)

// A registered thread that churns a Treiber stack until `stop`, counting its operations.
void churn(cmr::ds::TreiberStack<long>& stack, const std::atomic<bool>& stop, std::atomic<long>& ops) {
  for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
    stack.push(i);
    stack.try_pop();
    ops.fetch_add(1, std::memory_order_relaxed);
  }
}

TEST_F(Signals, ASignalfdReadsEveryTerminationSignalWhileCyclesRun) {
  EXPECT_EXIT(exit_expecting_success([] {
                // cmr starts first, with nothing blocked; then the program blocks the signals
                // in main, before its own threads exist, so every program thread has them
                // blocked. A cmr thread that left them open would receive them (and die of
                // SIGTERM's default action).
                cmr::init({});
                SIG_CHECK(cmr::collect(), "the first cycle");  // the collector thread exists
                sigset_t set;
                sigemptyset(&set);
                for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
                SIG_CHECK(pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0, "pthread_sigmask");
                const int fd = signalfd(-1, &set, SFD_CLOEXEC);
                SIG_CHECK(fd >= 0, "signalfd: %s", std::strerror(errno));
                cmr::detail::g_test_faults.use_child = true;  // scanner children too
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<long> ops{0}, cycles{0};
                std::thread worker([&] { churn(stack, stop, ops); });
                std::thread cycler([&] {
                  while (!stop.load()) cycles.fetch_add(cmr::collect() ? 1 : 0);
                });
                // One signal at a time (standard signals coalesce), each read before the next;
                // at least 300 signals and at least 100 cycles during them.
                int sent = 0;
                const int kinds[] = {SIGTERM, SIGINT, SIGHUP};
                while (sent < 300 || cycles.load() < 100) {
                  const int sig = kinds[sent % 3];
                  SIG_CHECK(kill(getpid(), sig) == 0, "kill");
                  pollfd p{fd, POLLIN, 0};
                  SIG_CHECK(poll(&p, 1, 10000) == 1, "signal %d (%d sent) never reached the signalfd", sig, sent);
                  signalfd_siginfo info{};
                  SIG_CHECK(read(fd, &info, sizeof info) == sizeof info, "read");
                  SIG_CHECK(static_cast<int>(info.ssi_signo) == sig, "read %u, sent %d", info.ssi_signo, sig);
                  ++sent;
                }
                stop = true;
                worker.join();
                cycler.join();
                // The program has no child process: a SIGCHLD could only be a scanner's.
                sigset_t pending;
                sigpending(&pending);
                SIG_CHECK(!sigismember(&pending, SIGCHLD), "a scanner child raised SIGCHLD in the program");
                const cmr::Stats s = cmr::stats();
                SIG_CHECK(s.cycles_aborted == 0 && s.cycles_failed == 0, "%llu aborted, %llu failed",
                          (unsigned long long)s.cycles_aborted, (unsigned long long)s.cycles_failed);
              }),
              ExitedWithCode(0), "");
}

// Two of four churning threads run with an alternate signal stack of their own (as
// programs that handle SIGSEGV do), one of them inside a handler of the program's that runs
// there, while cycles hold them.
std::atomic<bool> g_in_program_handler{false};
std::atomic<bool> g_leave_program_handler{false};
std::atomic<long> g_handler_ops{0};
void program_handler(int) {  // on the alternate stack (SA_ONSTACK); cmr's handler nests here
  g_in_program_handler = true;
  while (!g_leave_program_handler.load()) g_handler_ops.fetch_add(1, std::memory_order_relaxed);
}

TEST_F(Signals, ThreadsOnAnAlternateSignalStackAreHeldByEveryCycle) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                struct sigaction sa {};
                sa.sa_handler = &program_handler;
                sa.sa_flags = SA_ONSTACK;
                sigemptyset(&sa.sa_mask);
                SIG_CHECK(sigaction(SIGUSR2, &sa, nullptr) == 0, "sigaction");
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<long> ops{0};
                std::atomic<int> started{0};  // threads 1-3, registered and about to churn
                std::vector<std::thread> threads;
                for (int t = 0; t < 4; ++t)
                  threads.emplace_back([&, t] {
                    std::vector<char> alt(64 << 10);
                    if (t < 2) {
                      stack_t ss{};
                      ss.ss_sp = alt.data();
                      ss.ss_size = alt.size();
                      SIG_CHECK(sigaltstack(&ss, nullptr) == 0, "sigaltstack");
                    }
                    if (t == 0) {
                      stack.push(-1);  // registers this thread
                      pthread_kill(pthread_self(), SIGUSR2);  // runs program_handler here
                    }
                    stack.push(t);  // registered
                    started.fetch_add(1);
                    churn(stack, stop, ops);
                    stack_t off{};
                    off.ss_flags = SS_DISABLE;
                    sigaltstack(&off, nullptr);
                  });
                // Every thread at work (thread 0 inside the program's handler, on its
                // alternate stack), then 50 cycles with it there.
                while (!g_in_program_handler.load() || started.load() < 3) std::this_thread::sleep_for(1ms);
                for (int i = 0; i < 50; ++i) SIG_CHECK(cmr::collect(), "cycle %d with a thread on its alternate stack", i);
                g_leave_program_handler = true;
                for (int i = 0; i < 50; ++i) SIG_CHECK(cmr::collect(), "cycle %d", i);
                stop = true;
                for (auto& t : threads) t.join();
                SIG_CHECK(g_handler_ops.load() > 0 && ops.load() > 0, "no work done");
                SIG_CHECK(cmr::stats().cycles_aborted == 0, "aborted cycles");
              }),
              ExitedWithCode(0), "");
}

TEST_F(Signals, AThreadTogglingItsMaskInAHotLoopIsHeldByEveryCycle) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                cmr::ds::TreiberStack<long> stack;
                std::atomic<bool> stop{false};
                std::atomic<long> ops{0}, toggles{0};
                std::thread toggler([&] {
                  sigset_t all, old;
                  sigfillset(&all);
                  for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
                    pthread_sigmask(SIG_BLOCK, &all, &old);  // a critical section, signals off
                    stack.push(i);
                    stack.try_pop();
                    pthread_sigmask(SIG_SETMASK, &old, nullptr);
                    toggles.fetch_add(1, std::memory_order_relaxed);
                  }
                });
                std::thread worker([&] { churn(stack, stop, ops); });
                // Both threads at work first; then at least 200 cycles, and at least 1000
                // toggles during them, however the machine schedules the threads.
                while (toggles.load() == 0 || ops.load() == 0) std::this_thread::sleep_for(1ms);
                const long toggles_before = toggles.load();
                for (int i = 0; i < 200 || toggles.load() < toggles_before + 1000; ++i)
                  SIG_CHECK(cmr::collect(), "cycle %d", i);
                stop = true;
                toggler.join();
                worker.join();
                SIG_CHECK(toggles.load() > 0, "the toggling thread did nothing");
                SIG_CHECK(cmr::stats().cycles_aborted == 0, "%llu cycles aborted",
                          (unsigned long long)cmr::stats().cycles_aborted);
              }),
              ExitedWithCode(0), "");
}

// A thread that allocates past the pacing point with cmr's signal blocked must not wait
// for a cycle: the cycle cannot hold it until it unblocks, so the wait would only end by
// timing out (and the cycle it waited for would stall every other thread meanwhile).
TEST_F(Signals, AThreadWithTheSignalBlockedIsNeverHeldBackByPacing) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({.trigger_bytes = 16 << 10});
                { cmr::Guard<Blob> registration; }
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGUSR1);  // cmr's signal (Options::signal's default)
                // A reference: with the signal open, allocation is paced within n objects.
                auto allocate = [](long n) {
                  for (long i = 0; i < n; ++i) {
                    cmr::Guard<Blob> g;
                    cmr::make<Blob>(g);
                  }
                };
                const std::uint64_t open_before = cmr::stats().paced_waits;
                long n = 0;
                while (cmr::stats().paced_waits == open_before && n < 10'000'000) {
                  allocate(1000);
                  n += 1000;
                }
                SIG_CHECK(cmr::stats().paced_waits > open_before,
                          "never paced with the signal open: the test proves nothing");
                pthread_sigmask(SIG_BLOCK, &set, nullptr);
                const std::uint64_t before = cmr::stats().paced_waits;
                allocate(4 * n);
                const std::uint64_t after = cmr::stats().paced_waits;
                pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
                SIG_CHECK(after == before, "waited %llu times for a cycle that could not hold it",
                          (unsigned long long)(after - before));
                SIG_CHECK(cmr::collect(), "the cycle after");
              }),
              ExitedWithCode(0), "");
}

std::mutex g_diag_mutex;
std::string g_diagnostics;
void record(const char* message) {
  std::lock_guard lock(g_diag_mutex);
  g_diagnostics += message;
  g_diagnostics += '\n';
}

TEST_F(Signals, AThreadBlockingTheSignalPastTheTimeoutIsNamedAndLaterCyclesSucceed) {
  EXPECT_EXIT(exit_expecting_success([] {
                // 2 s: long enough that no cycle after the unblock times out on a loaded
                // machine; the one expected abort costs that much.
                cmr::init({.handshake_timeout = 2000ms, .diagnostics = &record});
                std::atomic<pid_t> tid{0};
                std::atomic<bool> blocked{false}, unblock{false}, unblocked{false};
                std::thread blocker([&] {
                  { cmr::Guard<Blob> registration; }
                  tid = static_cast<pid_t>(syscall(SYS_gettid));
                  sigset_t set;
                  sigemptyset(&set);
                  sigaddset(&set, SIGUSR1);  // cmr's signal (Options::signal's default)
                  pthread_sigmask(SIG_BLOCK, &set, nullptr);
                  blocked = true;
                  while (!unblock.load()) std::this_thread::sleep_for(1ms);
                  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // the pending signal runs now
                  unblocked = true;
                  while (unblock.load()) std::this_thread::sleep_for(1ms);  // registered, idle
                });
                while (!blocked.load()) std::this_thread::sleep_for(1ms);
                SIG_CHECK(!cmr::collect(), "a cycle completed while a thread blocked its signal");
                {
                  std::lock_guard lock(g_diag_mutex);
                  const std::string named = "tid " + std::to_string(tid.load());
                  SIG_CHECK(g_diagnostics.find(named) != std::string::npos &&
                                g_diagnostics.find("blocked") != std::string::npos,
                            "the diagnostic does not name the thread (%s): %s", named.c_str(),
                            g_diagnostics.c_str());
                }
                unblock = true;
                while (!unblocked.load()) std::this_thread::sleep_for(1ms);
                for (int i = 0; i < 20; ++i) SIG_CHECK(cmr::collect(), "cycle %d after the thread unblocked", i);
                unblock = false;
                blocker.join();
              }),
              ExitedWithCode(0), "");
}

// The handler's stack use, kernel signal frame included: a registered thread spins at one
// frame with the stack below it painted, cycles hold it, and the deepest byte written
// below the frame is what a signal took. DESIGN: the documented minimum free stack.
constexpr std::size_t kDocumentedHandlerStack = 16 << 10;  // README, "Signals and stacks"
constexpr std::size_t kPainted = 64 << 10;
constexpr unsigned char kPaint = 0xa5;

// The unused stack below the frame is addressed from the thread's stack bounds (not from
// a local's address, whose object is one byte).
__attribute__((noinline)) std::size_t spin_painted_and_measure(const std::atomic<bool>& stop,
                                                               std::atomic<bool>& ready) {
  pthread_attr_t attr;
  void* low = nullptr;
  std::size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) {
    ready = true;
    return 0;
  }
  pthread_attr_getstack(&attr, &low, &size);
  pthread_attr_destroy(&attr);
  volatile char frame = 0;
  const auto frame_at = reinterpret_cast<std::uintptr_t>(&frame);
  const std::size_t top_offset = frame_at - 1024 - reinterpret_cast<std::uintptr_t>(low);
  if (top_offset < kPainted + 4096) {  // no room below this frame
    ready = true;
    return 0;
  }
  unsigned char* stack = static_cast<unsigned char*>(low);
  unsigned char* top = stack + top_offset;  // clear of this frame and its callees
  unsigned char* bottom = top - kPainted;
  std::memset(bottom, kPaint, kPainted);
  ready = true;
  while (!stop.load(std::memory_order_relaxed)) {
  }
  unsigned char* lowest = top;
  for (unsigned char* p = bottom; p < top; ++p)
    if (*static_cast<volatile unsigned char*>(p) != kPaint) {
      lowest = p;
      break;
    }
  return frame_at - reinterpret_cast<std::uintptr_t>(lowest);
}

TEST_F(Signals, TheHandlerNeedsLessStackThanDocumented) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the instrumented handler's stack is not the one users get";
#endif
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                std::atomic<bool> stop{false}, ready{false};
                std::size_t used = 0;
                std::thread spinner([&] {
                  { cmr::Guard<Blob> registration; }
                  used = spin_painted_and_measure(stop, ready);
                });
                while (!ready.load()) std::this_thread::sleep_for(1ms);
                for (int i = 0; i < 50; ++i) SIG_CHECK(cmr::collect(), "cycle %d", i);
                stop = true;
                spinner.join();
                std::fprintf(stderr, "handler stack use: %zu bytes\n", used);
                SIG_CHECK(used > 1024, "no signal frame seen below the spinning frame: nothing measured");
                SIG_CHECK(used <= kDocumentedHandlerStack, "the handler used %zu bytes of stack, more than the "
                          "documented %zu", used, kDocumentedHandlerStack);
              }),
              ExitedWithCode(0), "");
}

}  // namespace
