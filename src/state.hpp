// src/state.hpp: the process-wide runtime state shared by the src/ parts.
//
// One RuntimeState exists per process, created on first use and never destroyed (threads
// may still unregister while static destructors run at exit). The registry lock guards the
// thread list and the root list; the collector holds it for the whole pause, so neither
// list changes while roots are copied (DESIGN invariant 3 and pitfall "threads registering
// during a handshake").
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "cmr/atomic.hpp"
#include "cmr/detail/thread_record.hpp"
#include "cmr/runtime.hpp"

namespace cmr::detail {

class Collector;

enum class Phase : int { kUninitialised, kRunning, kShutDown };

struct RuntimeState {
  std::mutex init_mutex;
  std::atomic<Phase> phase{Phase::kUninitialised};
  bool implicit_init = false;
  Options options;
  // In the child of a program's fork(), until the runtime rebuilt itself there (on first
  // use: see rebuild_after_fork): the parent's collector thread and other threads are
  // gone. Set by the atfork child handler, cleared under init_mutex.
  std::atomic<bool> needs_rebuild{false};
  ThreadRecord* fork_survivor = nullptr;  // the forking thread's record (may be null)

  // ---- registry (under registry_mutex) ----
  std::mutex registry_mutex;
  std::vector<ThreadRecord*> records;  // alive, plus dead ones not yet dropped by a cycle
  RootNode roots;                      // sentinel of the circular root list
  std::size_t root_count = 0;
  std::uint64_t dead_allocated_objects = 0;  // totals of freed records
  std::uint64_t dead_allocated_bytes = 0;

  // ---- triggering ----
  // Bytes allocated since the last completed cycle (flushed from threads in batches).
  std::atomic<std::uint64_t> allocated_since_cycle{0};
  std::atomic<std::uint64_t> trigger_threshold{256u << 10};
  // Live bytes found by the last completed cycle; with allocated_since_cycle, an upper
  // bound on the live tracked heap (for Options::heap_limit).
  std::atomic<std::uint64_t> survivor_bytes{0};
  // Bumped (and futex-woken) after every cycle attempt: allocations waiting for memory or
  // for the collector to catch up sleep on it.
  std::atomic<std::uint32_t> cycle_seq{0};
  // CLOCK_MONOTONIC after which any allocation starts a cycle (Options::trigger_interval,
  // after a cheap cycle); INT64_MAX when the timed trigger is off. Written by the collector.
  std::atomic<std::int64_t> timed_cycle_ns{INT64_MAX};
  std::atomic<std::uint64_t> paced_waits{0}, limit_failures{0};

  Collector* collector = nullptr;

  RuntimeState() { roots.prev = roots.next = &roots; }
};

RuntimeState& rt();

// Initialises with default options if nothing did yet; throws Error after shutdown().
// In the child of a program's fork(), rebuilds the runtime first.
void ensure_running();

// In the child of a program's fork(): the forking thread stays registered, the records of
// the threads that did not survive are dropped (their blocks handed on), what the parent's
// collector was destroying is settled, and a new collector starts. Idempotent; called by
// ensure_running(), collect() and the allocation slow paths. May throw (thread creation).
void rebuild_after_fork();
inline bool must_rebuild() noexcept {
  // relaxed: set before anything else runs in the child (the atfork handler), and the
  // rebuild itself synchronises under init_mutex.
  return rt().needs_rebuild.load(std::memory_order_relaxed);
}

// Reports a runtime event through Options::diagnostics (printf-style). Never call while
// threads are paused: formatting may allocate.
void diagnose(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Ends the process with a message: for misuse that cannot be reported by an exception
// (in a destructor or noexcept path).
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Registers the calling thread if it is not yet (src/registry.cpp).
ThreadRecord* current_record();

// Frees a thread record and everything it owns; the caller holds the registry lock, and
// the record's blocks were handed on (blocks::thread_exit).
void destroy_record(ThreadRecord* r) noexcept;

}  // namespace cmr::detail
