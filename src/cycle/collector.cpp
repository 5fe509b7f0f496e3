// src/cycle/collector.cpp: when cycles run: the background thread, the automatic and
// explicit requests, the spacing between pauses, and the buffers cycles keep. What a cycle
// does is cycle.cpp.
//
// Claims invariant 24 of docs/design.md.
//
// Invariants: one cycle at a time (cycle_mutex_, docs/design.md invariant 6); the thread
// that runs cycles never takes cmr's signal (the collector thread blocks every signal, an
// inline collect() blocks cmr's while it runs one), so it is never held by its own
// handshake; a collect() returns only after a cycle whose snapshot followed the call, or
// with false once the collector stops.
#include "cycle/collector.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <string>

#include <algorithm>

#include "cmr/detail/duration.hpp"
#include "cycle/pacing.hpp"
#include "heap/blocks.hpp"
#include "os/sys.hpp"
#include "runtime/runtime.hpp"
#include "threads/handshake.hpp"

namespace cmr::detail {

namespace {
// Bytes of the in-pause answer faulted in ahead of use (one entry per 16 bytes).
constexpr std::size_t kAnswerPrefault = std::size_t{16} << 10;
// The collector's own thread runs destructors of garbage and the diagnostics sink; a cycle
// requested from there would wait for itself.
constexpr const char* kCollectOnCollector =
    "cmr: collect() was called on the collector's own thread (from a tracked object's "
    "destructor or from the diagnostics sink)";
// Snapshot isolation marks every mapping the child does not need DONTFORK; under
// AddressSanitizer the child also needs the shadow memory of everything it reads, so the
// sanitizer build runs without it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
}  // namespace

Collector::Collector(const Options& options)
    : options_(options),
      isolate_(options.isolate_snapshot && !kSanitized),
      pause_budget_ns_(saturating_ns(options.pause_mark_budget)),
      interval_ns_(saturating_ns(options.trigger_interval)) {
  void* p = sys::map_fenced(sizeof(ScanPlan));  // kept for the child: never merged
  if (p == nullptr) throw std::bad_alloc();
  plan_ = new (p) ScanPlan{};
  // The collector thread then allocates nothing until the program has more threads: a
  // program's fork() never finds it inside malloc (a malloc without fork handlers, such as
  // AddressSanitizer's, would stay locked in the child).
  targets_.reserve(kReservedTargets);
}

Collector::~Collector() {
  stop();
  release_memory();
}

void Collector::abandon_after_fork() noexcept { release_memory(); }

void Collector::release_memory() noexcept {
  roots_.release();
  pause_marks_.release();
  pause_block_marks_.release();
  pause_stack_.release();
  pause_answer_.release();
  if (result_ != nullptr) sys::unmap(result_, ScanResult::bytes_for(result_capacity_));
  if (plan_ != nullptr) sys::unmap_fenced(plan_, sizeof(ScanPlan));
  result_ = nullptr;
  plan_ = nullptr;
  sys::unmap_fenced(stack_, kStackBytes);  // the thread was joined, or is not in this process
  stack_ = nullptr;
}

void* Collector::thread_entry(void* self) noexcept {
  static_cast<Collector*>(self)->thread_main();
  return nullptr;
}

void Collector::start() {
  // The scanner child runs on a copy of this thread's stack and reads its TLS, so snapshot
  // isolation keeps that mapping whole. A stack of glibc's is an ordinary anonymous mapping
  // that merges with a program mapping of the same flags next to it (since Linux 6.7
  // MAP_STACK also means NOHUGEPAGE: a program's NOHUGEPAGE mapping just above the stack
  // became part of it, and was copied into every child); a fenced mapping never merges.
  if (stack_ == nullptr) stack_ = sys::map_fenced(kStackBytes);
  if (stack_ == nullptr) throw Error("cmr: cannot map the collector thread's stack");
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack_, kStackBytes);
  // Created with every signal blocked (it inherits the mask), so no signal of the program
  // is ever delivered to it, not even before thread_main() runs.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  const int error = pthread_create(&thread_, &attr, &Collector::thread_entry, this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (error != 0)
    throw Error(std::string("cmr: cannot start the collector thread: ") + std::strerror(error));
  // release: pairs with the acquire loads in request_*() and collect(); the thread exists.
  running_.store(true, std::memory_order_release);
}

void Collector::stop() noexcept {
  // Other threads test running_, never thread_ itself, which join() writes.
  // acq_rel: pairs with start()'s release store; only one stop() joins the thread.
  if (running_.exchange(false, std::memory_order_acq_rel)) {
    // relaxed: thread_main reads it after the acquire load of wake_seq_ that wake() bumps.
    stopping_.store(true, std::memory_order_relaxed);
    wake();
    pthread_join(thread_, nullptr);
    std::lock_guard lock(request_mutex_);
    done_cv_.notify_all();
  }
  // A foreground cycle in flight (a collect() that found the thread stopped) ends first.
  std::lock_guard cycle(cycle_mutex_);
}

void Collector::wake() noexcept {
  // release: pairs with the acquire load in thread_main before it sleeps, so a request
  // made before the increment is seen after the wake-up.
  wake_seq_.fetch_add(1, std::memory_order_release);
  sys::futex_wake_all(&wake_seq_);
}

void Collector::request_automatic_cycle() noexcept {
  // relaxed exchange: only de-duplicates wake-ups; the futex carries the ordering.
  // acquire (running_): pairs with start()'s release store; the thread exists to be woken.
  if (!automatic_requested_.exchange(true, std::memory_order_relaxed) &&
      running_.load(std::memory_order_acquire))
    wake();
}

void Collector::request_cycle() noexcept {
  // relaxed: see request_automatic_cycle().
  forced_requested_.store(true, std::memory_order_relaxed);
  if (running_.load(std::memory_order_acquire)) wake();  // acquire: as in request_automatic_cycle()
}

bool Collector::is_collector_thread() const noexcept {
  // relaxed: see thread_tid_.
  return thread_tid_.load(std::memory_order_relaxed) == sys::gettid();
}

bool Collector::run_spaced_cycle() {
  // The program runs for at least kSpacing times the last pause between two pauses (see
  // release_threads() in cycle.cpp), so
  // that cycles requested back to back (a collect() loop, or allocation far ahead of the
  // trigger) cannot hold it more than a fifth of the time: an in-pause cycle is over so
  // fast that the next signal would otherwise reach the threads before they ran at all.
  const std::int64_t wait = next_cycle_ns_ - sys::now_ns();
  if (wait > 0) sys::sleep_ns(wait);
  const bool ok = run_cycle();
  const std::int64_t end = sys::now_ns();
  // relaxed: read by this thread's loop only.
  last_end_ns_.store(end, std::memory_order_relaxed);
  pacing_rules::cycle_ended(end, interval_ns_, last_in_pause_.load(std::memory_order_relaxed));
  return ok;
}

bool Collector::collect() {
  if (is_collector_thread()) throw Error(kCollectOnCollector);
  // acquire: pairs with start()'s release store and stop()'s exchange.
  if (!options_.background || !running_.load(std::memory_order_acquire)) {
    std::lock_guard lock(cycle_mutex_);
    // relaxed: cycle_mutex_ orders it; shutdown() stores it before stop() takes that mutex,
    // so a shutdown() that got the mutex first is seen here (and one that did not waits).
    if (g_shut_down.load(std::memory_order_relaxed)) return false;  // shutdown() won the race
    // This thread is the collector now: it must never hold itself in the handler.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, handshake::installed_signal());
    pthread_sigmask(SIG_BLOCK, &block, &old);
    thread_tid_.store(sys::gettid(), std::memory_order_relaxed);  // relaxed: see thread_tid_
    const bool ok = run_spaced_cycle();
    thread_tid_.store(0, std::memory_order_relaxed);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return ok;
  }
  std::unique_lock lock(request_mutex_);
  const std::uint64_t ticket = ++requested_;
  wake();
  // relaxed (stopping_): stop() notifies done_cv_ under request_mutex_ after storing it.
  done_cv_.wait(lock, [&] {
    return completed_ >= ticket || stopping_.load(std::memory_order_relaxed);
  });
  return completed_ >= ticket && last_ok_;
}

void Collector::thread_main() noexcept {
  // The collector never runs program signal handlers and is never held by its own
  // handshake; its scanner child inherits this mask.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "cmr-collector");
  thread_tid_.store(sys::gettid(), std::memory_order_relaxed);  // relaxed: see thread_tid_
  Pacing& p = pacing();
  for (;;) {
    // acquire: pairs with wake().
    const std::uint32_t seq = wake_seq_.load(std::memory_order_acquire);
    if (stopping_.load(std::memory_order_relaxed)) break;
    std::uint64_t serving;
    {
      std::lock_guard lock(request_mutex_);
      serving = requested_;
    }
    const bool explicit_request = serving > completed_;
    // relaxed: counters compared with thresholds; a wake-up carries what must be seen.
    const std::uint64_t allocated = p.allocated_since_cycle.load(std::memory_order_relaxed);
    // The timed trigger: only after a cheap cycle (one marked in the pause), and only for
    // allocation since then (a quiet program is left alone).
    const bool timed_candidate = interval_ns_ > 0 && allocated != 0 &&
                                 last_in_pause_.load(std::memory_order_relaxed);
    const std::int64_t now = sys::now_ns();
    const std::int64_t timed_at = last_end_ns_.load(std::memory_order_relaxed) + interval_ns_;
    const bool automatic =
        automatic_requested_.exchange(false, std::memory_order_relaxed) ||
        forced_requested_.exchange(false, std::memory_order_relaxed) ||
        allocated >= p.trigger_threshold.load(std::memory_order_relaxed) ||
        (timed_candidate && now >= timed_at);
    if (!explicit_request && !automatic) {
      sys::futex_wait(&wake_seq_, seq, timed_candidate ? timed_at - now : 250'000'000);
      continue;
    }
    bool ok;
    {
      std::lock_guard lock(cycle_mutex_);
      ok = run_spaced_cycle();
    }
    {
      std::lock_guard lock(request_mutex_);
      if (serving > completed_) {
        completed_ = serving;
        last_ok_ = ok;
      }
    }
    done_cv_.notify_all();
  }
}

void Collector::carry_over(const Collector& e) noexcept {
  // relaxed: statistics; `e` has no thread left that could change them.
  auto copy = [](auto& to, const auto& from) {
    to.store(from.load(std::memory_order_relaxed), std::memory_order_relaxed);
  };
  copy(cycles_, e.cycles_);
  copy(aborted_, e.aborted_);
  copy(failed_, e.failed_);
  copy(clone_failures_, e.clone_failures_);
  copy(crashes_, e.crashes_);
  copy(timeouts_, e.timeouts_);
  copy(objects_freed_, e.objects_freed_);
  copy(bytes_freed_, e.bytes_freed_);
  copy(marked_in_pause_, e.marked_in_pause_);
  copy(over_budget_, e.over_budget_);
  copy(max_pause_, e.max_pause_);
  copy(total_pause_, e.total_pause_);
  copy(max_scan_, e.max_scan_);
  last_mark_ns_ = e.last_mark_ns_;
  last_reachable_ = e.last_reachable_;
}

void Collector::fill(Stats& out) const noexcept {
  auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  auto ns = [](const std::atomic<std::int64_t>& a) {
    return std::chrono::nanoseconds(a.load(std::memory_order_relaxed));
  };
  out.cycles = r(cycles_);
  out.cycles_aborted = r(aborted_);
  out.cycles_failed = r(failed_);
  out.clone_failures = r(clone_failures_);
  out.scanner_crashes = r(crashes_);
  out.scanner_timeouts = r(timeouts_);
  out.objects_freed = r(objects_freed_);
  out.bytes_freed = r(bytes_freed_);
  out.last_candidates = r(last_candidates_);
  out.last_roots = r(last_roots_);
  out.last_words_scanned = r(last_words_);
  out.dense_scans = r(cycles_);  // every cycle looks words up through the block table
  out.marked_in_pause = r(marked_in_pause_);
  out.pause_marks_over_budget = r(over_budget_);
  out.snapshot_isolated = isolate_;
  out.last_isolated_bytes = r(isolated_bytes_);
  out.last_pause = ns(last_pause_);
  out.last_handshake = ns(last_handshake_);
  out.max_pause = ns(max_pause_);
  out.total_pause = ns(total_pause_);
  out.last_scan = ns(last_scan_);
  out.max_scan = ns(max_scan_);
}

// ---- memory the cycles keep from one to the next ----

// The answer has at most one entry per bitmap word of each block in use; the mapping is
// sized for the blocks carved so far plus room for growth during the cycle, and kept, so
// that its pages are not faulted in again every cycle.
bool Collector::ensure_answer_room() noexcept {
  const std::size_t need = (std::size_t{blocks::carved()} + 1024) * kBitmapWords;
  if (need <= result_capacity_) return true;
  const std::size_t capacity = need * 2;
  void* fresh = sys::map_shared(ScanResult::bytes_for(capacity));
  if (fresh == nullptr) return false;
  sys::unmap(result_, ScanResult::bytes_for(result_capacity_));
  result_ = static_cast<ScanResult*>(fresh);
  result_capacity_ = capacity;
  return true;
}

bool Collector::ensure_pause_scratch() noexcept {
  const std::size_t blocks = std::size_t{blocks::carved()} + 64;
  // The answer's room: one entry per bitmap word of every block, the most it can need
  // (1 KiB per 64 KiB block).
  const std::size_t entries = blocks * kBitmapWords;
  const std::size_t answer_words = (ScanResult::bytes_for(entries) + 7) / 8;
  const std::size_t had_answer = pause_answer_.capacity();
  if (!pause_marks_.reserve(blocks * kBitmapWords) || !pause_block_marks_.reserve(blocks) ||
      !pause_stack_.reserve(std::max<std::size_t>(last_reachable_ * 2, 4096)) ||
      !pause_answer_.reserve(answer_words))
    return false;
  // Fresh pages are zero and cost a fault on first use. The marks' pages are touched only
  // for blocks something is marked in (a handful for a small live heap); the answer's first
  // pages are touched now, not inside the pause (a fresh answer once faulted so often there
  // that it pushed a 10^6-object cycle past its budget), and the rest only by an answer that
  // large, whose sweep is long anyway: resident memory stays proportional to use.
  if (pause_answer_.capacity() != had_answer)
    std::memset(pause_answer_.data(), 0,
                std::min<std::size_t>(pause_answer_.capacity(), kAnswerPrefault / 8) * 8);
  return true;
}

void Collector::record_pause(std::int64_t ns) noexcept {
  // relaxed: statistics only; the collector is their single writer.
  last_pause_.store(ns, std::memory_order_relaxed);
  total_pause_.store(total_pause_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  if (ns > max_pause_.load(std::memory_order_relaxed)) max_pause_.store(ns, std::memory_order_relaxed);
}

}  // namespace cmr::detail
