// src/runtime/runtime.hpp: the runtime's life: initialisation, shutdown, the fork rebuild,
// and the diagnostics every part reports through.
//
// One Runtime exists per process, created on first use and never destroyed (threads may
// still unregister while static destructors run at exit). `phase` moves one way:
// uninitialised -> running -> shut down; options never change once it runs.
#pragma once

#include <atomic>
#include <mutex>

#include "cmr/detail/thread_record.hpp"
#include "cmr/runtime.hpp"

namespace cmr::detail {

class Collector;

enum class Phase : int { kUninitialised, kRunning, kShutDown };

struct Runtime {
  std::mutex init_mutex;
  std::atomic<Phase> phase{Phase::kUninitialised};
  bool implicit_init = false;
  Options options;
  // In the child of a program's fork(), until the runtime rebuilt itself there (on first
  // use: see rebuild_after_fork): the parent's collector thread and other threads are
  // gone. Set by the atfork child handler, cleared under init_mutex.
  std::atomic<bool> needs_rebuild{false};
  ThreadRecord* fork_survivor = nullptr;  // the forking thread's record (may be null)
  Collector* collector = nullptr;
};

Runtime& rt();

// Initialises with default options if nothing did yet; throws Error after shutdown().
// In the child of a program's fork(), rebuilds the runtime first.
void ensure_running();

// In the child of a program's fork(): the forking thread stays registered, the records of
// the threads that did not survive are dropped (their blocks handed on), what the parent's
// collector was destroying is settled, and a new collector starts. Idempotent; called by
// ensure_running(), collect() and the allocation slow paths. May throw (thread creation).
// (runtime/fork.cpp)
void rebuild_after_fork();
inline bool must_rebuild() noexcept {
  // relaxed: set before anything else runs in the child (the atfork handler), and the
  // rebuild itself synchronises under init_mutex.
  return rt().needs_rebuild.load(std::memory_order_relaxed);
}
// Installs the program-fork handlers (once, at init).
void install_fork_handlers();

// Reports a runtime event through Options::diagnostics (printf-style). Never call while
// threads are paused: formatting may allocate.
void diagnose(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Ends the process with a message: for misuse that cannot be reported by an exception
// (in a destructor or noexcept path).
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace cmr::detail
