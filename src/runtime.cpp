// src/runtime.cpp: init, shutdown, collect and stats; option validation; diagnostics.
//
// Initialisation happens once per process, explicitly or on the first use of the API, and
// a second init() with different options is refused, never applied. The runtime state
// outlives static destruction (threads may still unregister then). At exit the collector
// thread is stopped (a cycle in flight completes) but the API stays usable, so static
// destructors that pop from a structure still work; after an explicit shutdown() new
// guards, make() and collect() throw.
#include <pthread.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "blocks.hpp"
#include "cmr/detail/duration.hpp"
#include "collector.hpp"
#include "handshake.hpp"
#include "reclaim.hpp"
#include "scanner.hpp"
#include "state.hpp"
#include "sys.hpp"

namespace cmr {

void stderr_sink(const char* message) noexcept { std::fprintf(stderr, "cmr: %s\n", message); }

namespace detail {

RuntimeState& rt() {
  static RuntimeState* const state = new RuntimeState();
  return *state;
}

void diagnose(const char* fmt, ...) {
  DiagnosticSink sink = rt().options.diagnostics;
  if (sink == nullptr) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  sink(buf);
}

void fatal(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "cmr: fatal: %s\n", buf);
  std::abort();
}

namespace {

void validate(const Options& o) {
  if (o.handshake_timeout.count() <= 0)
    throw Error("cmr: Options::handshake_timeout must be positive");
  if (o.scan_timeout.count() <= 0) throw Error("cmr: Options::scan_timeout must be positive");
  if (o.trigger_interval.count() < 0)
    throw Error("cmr: Options::trigger_interval must not be negative (0: bytes only)");
  if (o.pause_mark_budget.count() < 0)
    throw Error("cmr: Options::pause_mark_budget must not be negative (0: always a child)");
  if (o.limit_wait.count() < 0)
    throw Error("cmr: Options::limit_wait must not be negative (0: do not wait)");
  if (!(o.trigger_ratio >= 0.0) || o.trigger_ratio > 1e6)
    throw Error("cmr: Options::trigger_ratio must be between 0 and 1e6");
  if (o.trigger_bytes == 0) throw Error("cmr: Options::trigger_bytes must be positive");
  if (o.heap_reserve < (std::size_t{256} << 20))
    throw Error("cmr: Options::heap_reserve must be at least 256 MiB");
}

void stop_at_exit() noexcept {
  // The child of a fork() that never rebuilt its runtime has no collector thread, and the
  // old collector's mutexes may describe threads that do not exist there: nothing to stop.
  if (must_rebuild()) return;
  if (Collector* c = rt().collector) c->stop();
}

// The program's fork(): the registry and heap locks are held across it, so that the
// child's copies of the thread list and of the heap's lists are whole, and no pause is in
// progress (a pause holds the registry lock). The child rebuilds its runtime on first use.
void atfork_prepare() noexcept {
  rt().registry_mutex.lock();
  blocks::before_fork();
}
void atfork_parent() noexcept {
  blocks::after_fork_parent();
  rt().registry_mutex.unlock();
}
void atfork_child() noexcept {
  RuntimeState& s = rt();
  blocks::after_fork_child();
  s.registry_mutex.unlock();
  // A thread of the parent may have held it (in init() or shutdown()); none exists here.
  new (&s.init_mutex) std::mutex();
  // acquire: pairs with the release store in init_locked(); nothing to rebuild otherwise.
  if (s.phase.load(std::memory_order_acquire) == Phase::kRunning) {
    s.fork_survivor = tls_record;
    s.needs_rebuild.store(true, std::memory_order_relaxed);  // relaxed: see must_rebuild()
  }
}

void init_locked(const Options& options, bool implicit) {
  RuntimeState& s = rt();
  validate(options);
  blocks::init(options.heap_reserve, options.huge_pages);
  detect_cpu();
  handshake::install(options.signal);
  s.options = options;
  s.implicit_init = implicit;
  s.trigger_threshold.store(options.trigger_bytes, std::memory_order_relaxed);
  // The timed trigger is armed from the start: no cycle ran yet, and the first is cheap.
  // relaxed: published by the release store of `phase` below.
  if (options.trigger_interval.count() > 0)
    s.timed_cycle_ns.store(sys::deadline_after(saturating_ns(options.trigger_interval)),
                           std::memory_order_relaxed);
  auto* collector = new Collector(options);
  s.collector = collector;
  pthread_atfork(&atfork_prepare, &atfork_parent, &atfork_child);
  std::atexit(&stop_at_exit);
  // release: pairs with the acquire load in ensure_running(); the state above is complete.
  s.phase.store(Phase::kRunning, std::memory_order_release);
  if (options.background) collector->start();
}

}  // namespace

void rebuild_after_fork() {
  RuntimeState& s = rt();
  std::lock_guard lock(s.init_mutex);
  if (!must_rebuild()) return;
  {
    std::lock_guard registry(s.registry_mutex);
    ThreadRecord* survivor = s.fork_survivor;
    for (ThreadRecord* r : s.records) {
      if (r == survivor) continue;
      // Its thread does not exist here: its guards are gone, its blocks are handed on.
      blocks::thread_exit(r);
      // relaxed: the child's only thread; its owner's last writes came with the fork.
      s.dead_allocated_objects += r->allocated_objects.load(std::memory_order_relaxed);
      s.dead_allocated_bytes += r->allocated_bytes.load(std::memory_order_relaxed);
      destroy_record(r);
    }
    s.records.clear();
    if (survivor != nullptr) {
      survivor->tid = sys::gettid();
      survivor->alive = true;
      survivor->gone = false;
      survivor->detached = false;
      s.records.push_back(survivor);
    }
  }
  finish_in_flight_after_fork();
  // The parent's collector is never destroyed (its thread is not here to be joined): its
  // statistics carry over, its memory is given back, the object itself is left.
  auto* fresh = new Collector(s.options);
  fresh->carry_over(*s.collector);
  s.collector->abandon_after_fork();
  s.collector = fresh;
  s.fork_survivor = nullptr;
  // relaxed: read by must_rebuild(); the collector pointer is published by init_mutex to
  // the threads that rebuild, and this thread is the only other one.
  s.needs_rebuild.store(false, std::memory_order_relaxed);
  // relaxed: shutdown() in this process would have run on this thread (the only one).
  if (s.options.background && !g_shut_down.load(std::memory_order_relaxed)) fresh->start();
}

void ensure_running() {
  RuntimeState& s = rt();
  if (must_rebuild()) [[unlikely]] rebuild_after_fork();
  // acquire: pairs with the release store in init_locked().
  Phase p = s.phase.load(std::memory_order_acquire);
  if (p == Phase::kRunning) [[likely]] return;
  std::lock_guard lock(s.init_mutex);
  p = s.phase.load(std::memory_order_relaxed);
  if (p == Phase::kShutDown) throw Error("cmr: the runtime was used after cmr::shutdown()");
  if (p == Phase::kUninitialised) init_locked(Options{}, true);
}

}  // namespace detail

void init(const Options& options) {
  using namespace detail;
  RuntimeState& s = rt();
  std::lock_guard lock(s.init_mutex);
  Phase p = s.phase.load(std::memory_order_relaxed);
  if (p == Phase::kShutDown) throw Error("cmr: init() after shutdown() is not supported");
  if (p == Phase::kRunning) {
    if (options == s.options) return;
    throw Error(s.implicit_init
                    ? "cmr: init() with non-default options after the runtime was already "
                      "initialised with defaults by an earlier use of the API; call "
                      "cmr::init() before creating any Guard, Root or object"
                    : "cmr: init() was called a second time with different options");
  }
  init_locked(options, false);
}

void shutdown() {
  using namespace detail;
  RuntimeState& s = rt();
  // Before the lock: a shutdown() on another thread holds it while it joins this thread.
  // acquire: pairs with the release store in init_locked(); the collector pointer is set.
  if (s.phase.load(std::memory_order_acquire) != Phase::kUninitialised &&
      s.collector->is_collector_thread())
    throw Error("cmr: shutdown() was called on the collector's own thread (from a tracked "
                "object's destructor or from the diagnostics sink); call it from a thread "
                "of the program");
  std::lock_guard lock(s.init_mutex);
  if (s.phase.load(std::memory_order_relaxed) != Phase::kRunning) {
    s.phase.store(Phase::kShutDown, std::memory_order_relaxed);
    g_shut_down.store(true, std::memory_order_relaxed);
    return;
  }
  // First refuse new work, then stop: a collect() that passed its check before this waits
  // in Collector::collect and returns false, and no cycle starts after shutdown() returns.
  // relaxed: a one-way flag; see thread_record.hpp.
  g_shut_down.store(true, std::memory_order_relaxed);
  {
    // make()'s inline path checks its own record only: send every thread to the slow path,
    // which refuses. relaxed: a make racing with shutdown() may pass, as documented.
    std::lock_guard registry(s.registry_mutex);
    for (ThreadRecord* r : s.records) r->fast_make.store(false, std::memory_order_relaxed);
  }
  s.phase.store(Phase::kShutDown, std::memory_order_release);
  if (!must_rebuild()) s.collector->stop();
}

bool collect() {
  using namespace detail;
  ensure_running();  // rebuilds the runtime in the child of a fork()
  return rt().collector->collect();
}

Stats stats() {
  using namespace detail;
  Stats out;
  out.allocator = CMR_ALLOCATOR_NAME;
  RuntimeState& s = rt();
  if (s.phase.load(std::memory_order_acquire) == Phase::kUninitialised) return out;
  s.collector->fill(out);
  // relaxed: statistics, as everywhere in stats().
  out.paced_waits = s.paced_waits.load(std::memory_order_relaxed);
  out.limit_failures = s.limit_failures.load(std::memory_order_relaxed);
  std::uint64_t objects = 0, bytes = 0;
  {
    std::lock_guard lock(s.registry_mutex);
    objects = s.dead_allocated_objects;
    bytes = s.dead_allocated_bytes;
    for (ThreadRecord* r : s.records) {
      // relaxed: totals written by their owners; a slightly stale sum is fine for stats.
      objects += r->allocated_objects.load(std::memory_order_relaxed);
      bytes += r->allocated_bytes.load(std::memory_order_relaxed);
      if (r->alive) ++out.threads;
    }
  }
  out.live_objects = objects - std::min(objects, out.objects_freed);
  out.live_bytes = bytes - std::min(bytes, out.bytes_freed);
  return out;
}

}  // namespace cmr
