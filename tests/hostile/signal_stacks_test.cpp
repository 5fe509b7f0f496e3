// tests/hostile/signal_stacks_test.cpp: the stack cmr's handler runs on.
//
// The handler runs on whatever stack the thread is on when the signal lands. Threads with
// an alternate signal stack of their own (as programs that handle SIGSEGV have), one of
// them inside the program's handler running there, are held by every cycle. On a
// thread's own stack, the handler's use (with the kernel's signal frame) is measured and
// held under the documented minimum, so that a program that sizes its thread stacks by
// the documentation never overflows one in a handshake.
// Each test runs in a fresh process (support/verdict.hpp): the handlers and alternate
// stacks it sets are process-wide.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "hostile/hostile.hpp"
#include "support/verdict.hpp"

namespace {

using namespace cmr_hostile;
using ::testing::ExitedWithCode;
using cmr_test::exit_expecting_success;

class SignalStacks : public cmr_test::InFreshProcess {};

struct StackBlob {
  long words[2] = {};
};

#define SIG_CHECK(cond, ...) CMR_STATEMENT_CHECK(cond, __VA_ARGS__)

// Two of four churning threads run with an alternate signal stack of their own (as
// programs that handle SIGSEGV do), one of them inside a handler of the program's that runs
// there, while cycles hold them.
std::atomic<bool> g_in_program_handler{false};
std::atomic<bool> g_leave_program_handler{false};
std::atomic<long> g_handler_ops{0};
// Runs on the alternate stack (SA_ONSTACK); cmr's handler nests here.
void handler_on_alternate_stack(int) {
  g_in_program_handler = true;
  while (!g_leave_program_handler.load()) g_handler_ops.fetch_add(1, std::memory_order_relaxed);
}

TEST_F(SignalStacks, ThreadsOnAnAlternateSignalStackAreHeldByEveryCycle) {
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                struct sigaction sa {};
                sa.sa_handler = &handler_on_alternate_stack;
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
                      pthread_kill(pthread_self(), SIGUSR2);  // runs handler_on_alternate_stack here
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

// The handler's stack use, kernel signal frame included: a registered thread spins at one
// frame with the stack below it painted, cycles hold it, and the deepest byte written
// below the frame is what a signal took. docs/design.md, pitfalls: the documented minimum free stack.
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

TEST_F(SignalStacks, TheHandlerNeedsLessStackThanDocumented) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the instrumented handler's stack is not the one users get";
#endif
  EXPECT_EXIT(exit_expecting_success([] {
                cmr::init({});
                std::atomic<bool> stop{false}, ready{false};
                std::size_t used = 0;
                std::thread spinner([&] {
                  { cmr::Guard<StackBlob> registration; }
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
