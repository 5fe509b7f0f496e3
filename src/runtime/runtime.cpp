// src/runtime/runtime.cpp: init, shutdown, collect and stats; option validation; diagnostics.
//
// Claims invariant 31 of docs/design.md.
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

#include "runtime/runtime.hpp"

#include "cmr/detail/duration.hpp"
#include "cycle/collector.hpp"
#include "cycle/pacing.hpp"
#include "heap/blocks.hpp"
#include "os/sys.hpp"
#include "snapshot/scanner.hpp"
#include "threads/handshake.hpp"
#include "threads/registry.hpp"

namespace cmr {

void stderr_sink(const char* message) noexcept { std::fprintf(stderr, "cmr: %s\n", message); }

namespace detail {

Runtime& rt() {
  static Runtime* const state = new Runtime();
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

void init_locked(const Options& options, bool implicit) {
  Runtime& s = rt();
  validate(options);
  blocks::init(options.heap_reserve, options.huge_pages);
  detect_cpu();
  handshake::install(options.signal);
  s.options = options;
  s.implicit_init = implicit;
  pacing_rules::arm(options);
  auto* collector = new Collector(options);
  s.collector = collector;
  install_fork_handlers();
  std::atexit(&stop_at_exit);
  // release: pairs with the acquire load in ensure_running(); the state above is complete.
  s.phase.store(Phase::kRunning, std::memory_order_release);
  if (options.background) collector->start();
}

}  // namespace

void ensure_running() {
  Runtime& s = rt();
  if (must_rebuild()) [[unlikely]] rebuild_after_fork();
  // acquire: pairs with the release store of `phase` in init_locked().
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
  Runtime& s = rt();
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
  Runtime& s = rt();
  // Before the lock: a shutdown() on another thread holds it while it joins this thread.
  // acquire: pairs with the release store of `phase` in init_locked(); the collector pointer is set.
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
    std::lock_guard lock(registry().mutex);
    for (ThreadRecord* r : registry().records) r->fast_make.store(false, std::memory_order_relaxed);
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
  Runtime& s = rt();
  if (s.phase.load(std::memory_order_acquire) == Phase::kUninitialised) return out;
  s.collector->fill(out);
  // relaxed: statistics, as everywhere in stats().
  out.paced_waits = pacing().paced_waits.load(std::memory_order_relaxed);
  out.limit_failures = pacing().limit_failures.load(std::memory_order_relaxed);
  std::uint64_t objects = 0, bytes = 0;
  {
    ThreadRegistry& reg = registry();
    std::lock_guard lock(reg.mutex);
    objects = reg.dead_allocated_objects;
    bytes = reg.dead_allocated_bytes;
    for (ThreadRecord* r : reg.records) {
      // relaxed: totals written by their owners; a slightly stale sum is fine for stats.
      objects += r->allocated_objects.load(std::memory_order_relaxed);
      bytes += r->allocated_bytes.load(std::memory_order_relaxed);
      if (r->presence == ThreadRecord::Presence::kRegistered ||
          r->presence == ThreadRecord::Presence::kInExec)
        ++out.threads;
    }
  }
  out.live_objects = objects - std::min(objects, out.objects_freed);
  out.live_bytes = bytes - std::min(bytes, out.bytes_freed);
  return out;
}

}  // namespace cmr
