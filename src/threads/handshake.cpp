// src/threads/handshake.cpp: the signal handshake that holds every registered thread while the
// collector copies the roots and creates the snapshot child.
//
// Claims invariant 4 of docs/design.md.
//
// Invariant 4 (signal-safe state), and holds the threads as
// invariant 3 (claimed by cycle/cycle.cpp) needs. The handler is async-signal-safe: it saves and restores
// errno, reads only the initial-exec TLS record pointer (never allocating TLS) and global
// atomics, and blocks in futex waits, never spinning (two cores: a spinning handler would
// steal the collector's CPU). It is installed with SA_RESTART so blocking calls such as
// read() resume instead of failing with EINTR.
//
// Protocol (one cycle at a time, driven by the collector under the registry lock):
//   collector: g_round = e (1) ; tgkill each target ; wait until every acked_round == e (3)
//   handler:   e = g_round (2) ; if g_released != e: acked_round = e (4) ; wait until
//              g_released == e (6)
//   collector: ... copy roots, clone ... ; g_released = e (5)
// A handler that runs when no cycle holds (g_released == g_round) returns at once, so a
// stray or late signal is harmless; one that runs for a later cycle holds for that cycle,
// which is a genuine pause.
#include "threads/handshake.hpp"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "cmr/detail/hooks.hpp"
#include "cmr/runtime.hpp"
#include "os/sys.hpp"
#include "testing/test_support.hpp"

namespace cmr::detail::handshake {

namespace {

std::atomic<std::uint32_t> g_round{0};
std::atomic<std::uint32_t> g_released{0};
std::atomic<std::uint32_t> g_acks{0};  // futex word the collector sleeps on
int g_signal = 0;

void on_signal(int) {
  const int saved_errno = errno;
  ThreadRecord* r = tls_record;
  // (2) acquire: pairs with (1); a handler that sees round e also sees that e is new.
  const std::uint32_t e = g_round.load(std::memory_order_acquire);
  // acquire: pairs with (5) of the previous cycle.
  if (r != nullptr && g_released.load(std::memory_order_acquire) != e &&
      r->acked_round.load(std::memory_order_relaxed) != e) {
    // (4) release: pairs with (3). Everything this thread wrote before the interrupted
    // instruction (guard slots, alloc bits, slot blocks) is visible to the collector once
    // it sees the ack. This is what lets the fast paths publish without fences.
    r->acked_round.store(e, std::memory_order_release);
    if (test_support::handler_fails_a_syscall())
      sys::futex_wait(&g_acks, ~g_acks.load(std::memory_order_relaxed), 0);
    // release: pairs with the collector's acquire load of g_acks before it sleeps.
    g_acks.fetch_add(1, std::memory_order_release);
    sys::futex_wake_all(&g_acks);
    for (;;) {
      // (6) acquire: pairs with (5); the collector is done with our state.
      std::uint32_t released = g_released.load(std::memory_order_acquire);
      if (released == e) break;
      sys::futex_wait(&g_released, released);
    }
  }
  errno = saved_errno;
}

bool unsuitable(int sig) {
  switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL:
    case SIGABRT: case SIGCHLD: case SIGTRAP: case SIGSYS: case SIGCONT: case SIGTSTP:
    case SIGTTIN: case SIGTTOU: case SIGPIPE: case SIGINT: case SIGTERM: case SIGQUIT:
    case SIGHUP:
      return true;
    default:
      return sig <= 0 || sig > SIGRTMAX;
  }
}

}  // namespace

void install(int sig) {
  if (sig >= 32 && sig < SIGRTMIN)
    throw Error("cmr: signal " + std::to_string(sig) +
                " is reserved by the C library for its threads; use SIGUSR1, SIGUSR2, "
                "SIGPWR, SIGXCPU or a real-time signal (SIGRTMIN + n, " +
                std::to_string(SIGRTMIN) + " to " + std::to_string(SIGRTMAX) + ")");
  if (unsuitable(sig))
    throw Error("cmr: signal " + std::to_string(sig) +
                " cannot carry the handshake; use SIGUSR1, SIGUSR2, SIGPWR, SIGXCPU or a "
                "real-time signal (SIGRTMIN + n, " + std::to_string(SIGRTMIN) + " to " +
                std::to_string(SIGRTMAX) + ")");
  struct sigaction old;
  std::memset(&old, 0, sizeof old);
  if (sigaction(sig, nullptr, &old) != 0)
    throw Error(std::string("cmr: cannot query signal handler: ") + std::strerror(errno));
  if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL)
    throw Error("cmr: signal " + std::to_string(sig) + " (" + strsignal(sig) +
                ") already has a handler or is ignored in this program; choose another "
                "with cmr::Options::signal");
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = &on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, nullptr) != 0)
    throw Error(std::string("cmr: cannot install the handshake handler: ") + std::strerror(errno));
  g_signal = sig;
}

int installed_signal() noexcept { return g_signal; }

bool blocked_in_this_thread() noexcept {
  sigset_t current;
  if (pthread_sigmask(SIG_BLOCK, nullptr, &current) != 0) return false;
  return g_signal != 0 && sigismember(&current, g_signal) == 1;
}

PauseOutcome pause(ThreadRecord* const* targets, std::size_t count,
                   std::int64_t timeout_ns) noexcept {
  PauseOutcome out;
  const std::uint32_t e = g_round.load(std::memory_order_relaxed) + 1;
  // (1) release: pairs with (2).
  g_round.store(e, std::memory_order_release);
  for (std::size_t i = 0; i < count; ++i) {
    if (sys::tgkill(targets[i]->tid, g_signal) == ESRCH)
      targets[i]->presence = ThreadRecord::Presence::kVanished;
  }
  const std::int64_t deadline = sys::deadline_after(timeout_ns);
  for (;;) {
    // acquire: pairs with the handlers' release increment, so a wake-up between this load
    // and the futex wait is not lost (the word changed).
    std::uint32_t seen = g_acks.load(std::memory_order_acquire);
    std::size_t missing = 0;
    int first_missing = 0;
    for (std::size_t i = 0; i < count; ++i) {
      ThreadRecord* t = targets[i];
      // (3) acquire: pairs with (4).
      if (t->presence == ThreadRecord::Presence::kVanished ||
          t->acked_round.load(std::memory_order_acquire) == e)
        continue;
      if (missing++ == 0) first_missing = t->tid;
    }
    if (missing == 0) {
      out.paused = true;
      return out;
    }
    std::int64_t left = deadline - sys::now_ns();
    if (left <= 0) {
      out.unanswered = missing;
      out.unanswered_tid = first_missing;
      // A program handler that chains to ours answers; one that does not is the likely
      // cause, and worth naming. sigaction() is async-signal-safe and allocation-free.
      struct sigaction current;
      out.handler_replaced = sigaction(g_signal, nullptr, &current) == 0 &&
                             ((current.sa_flags & SA_SIGINFO) != 0 ||
                              current.sa_handler != &on_signal);
      return out;
    }
    sys::futex_wait(&g_acks, seen, left);
  }
}

std::int64_t release() noexcept {
  // (5) release: pairs with (6): handlers return only after the collector is done.
  g_released.store(g_round.load(std::memory_order_relaxed), std::memory_order_release);
  const std::int64_t released_at = sys::now_ns();
  sys::futex_wake_all(&g_released);
  return released_at;
}

}  // namespace cmr::detail::handshake
