// cmr/detail/hooks.hpp: interruption points for the invariant tests.
//
// Compiled into the inline fast paths only when CMR_TEST_HOOKS is defined by the including
// translation unit (the invariant tests do, for types of their own); the library always
// carries the hook table, which costs nothing when no hook is set. Not part of the API.
#pragma once

namespace cmr::detail {

struct TestHooks {
  // Guard::protect, between the first load of the source and the publish in the slot.
  void (*protect_after_load)() = nullptr;
  // make(), between the guard's publish and the commit that makes the slot a candidate.
  void (*make_after_publish)() = nullptr;
  // The collector, while every registered thread is held, after it read the newest Root's
  // value and before the others (allocation-free code only).
  void (*collector_between_roots)() = nullptr;
  // The collector, after snapshot isolation listed the program's mappings and before it
  // marks them; no thread is held yet (the program may still map and unmap).
  void (*collector_before_isolation)() = nullptr;
  // The collector, while every registered thread is held and the child exists.
  void (*collector_paused)() = nullptr;
  // The collector, after the threads were released and before the child's answer is used.
  void (*collector_released)() = nullptr;
  // A thread refilling its cursor took a block off its returned queue and is about to fold
  // its freed bits (src/heap/blocks.cpp).
  void (*heap_dequeued)() = nullptr;
  // The collector ran one garbage object's destructor (src/cycle/reclaim.cpp), outside any lock.
  void (*collector_destroyed_one)() = nullptr;
};
extern TestHooks g_test_hooks;

// Faults injected into the next cycles (tests only).
struct TestFaults {
  int fail_clone = 0;       // the next N process creations fail (as with EAGAIN)
  bool child_crash = false; // the scanner child dies of SIGSEGV before answering
  bool child_hang = false;  // the scanner child sleeps past scan_timeout
  bool child_exit_early = false;  // the child exits 0 without marking its answer complete
  // The handler makes a system call that fails (as a futex wait racing with the release
  // does, setting errno to EAGAIN), so tests can see whether errno is restored.
  bool handler_fails_a_syscall = false;
  // The scanner child reads this address first (program memory it must not see).
  const volatile char* child_reads = nullptr;
  // Every cycle uses a scanner child, however small the heap (tests of the child itself).
  // Any of the child's faults above implies it.
  bool use_child = false;
};
extern TestFaults g_test_faults;

// What the last completed cycle observed, for tests of the runtime's own ordering.
// Written by the collector only.
struct TestProbe {
  long long released_ns = 0;     // CLOCK_MONOTONIC: the collector released the threads
  long long child_began_ns = 0;  // CLOCK_MONOTONIC: the scanner child began its scan
};
extern TestProbe g_test_probe;

}  // namespace cmr::detail

// The library's own hook points (always compiled: a null test costs nothing on the slow
// paths they sit on).
#define CMR_DETAIL_HOOK_IN_LIBRARY(name)                                    \
  do {                                                                      \
    if (auto cmr_hook_ = ::cmr::detail::g_test_hooks.name) cmr_hook_();     \
  } while (0)

#if defined(CMR_TEST_HOOKS)
#define CMR_DETAIL_HOOK(name)                                               \
  do {                                                                      \
    if (auto cmr_hook_ = ::cmr::detail::g_test_hooks.name) cmr_hook_();     \
  } while (0)
#else
#define CMR_DETAIL_HOOK(name) \
  do {                        \
  } while (0)
#endif
