// src/collector.cpp: one collection cycle, and the background thread that runs them.
//
// A cycle: take the registry lock; signal every registered thread and wait until all are
// held in the handler (or abort on timeout, freeing nothing); copy the roots (guard slots,
// Root values) into runtime memory; note how many blocks the heap has; create the
// snapshot child; release the threads. Then, off the critical path: wait for the child's
// answer and reclaim exactly the garbage it listed (reclaim.cpp).
//
// Invariants kept: 3 (threads are held from the first root read until the child exists),
// 6 (one cycle at a time; only a complete answer from a child that exited normally frees
// anything; the child lists each garbage slot once; slots that were not candidates at the
// cut are never listed).
// Must never, between pause() and release(): call malloc/free (a held thread may own an
// arena lock), print, or take any lock a held thread might hold (the heap lock included).
#include "collector.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "blocks.hpp"
#include "cmr/detail/duration.hpp"
#include "handshake.hpp"
#include "reclaim.hpp"
#include "snapshot.hpp"
#include "state.hpp"
#include "sys.hpp"

namespace cmr::detail {

namespace {
// Bytes of the in-pause answer faulted in ahead of use (one entry per 16 bytes).
constexpr std::size_t kAnswerPrefault = std::size_t{16} << 10;
// Every this many completed cycles, pooled blocks unused since the last time are given
// back to the kernel (about every 0.3 s under the timed trigger).
constexpr std::uint64_t kTrimEvery = 64;
// Between two pauses the program runs at least this many times the last one.
constexpr std::int64_t kSpacing = 4;
// The in-pause mark also sweeps every block's bitmaps: heaps larger than this always use
// a child (64 bitmap words per 64 KiB block; 4096 blocks is a 256 MiB heap, about 0.2 ms).
constexpr std::uint32_t kMaxPauseBlocks = 4096;
// The collector's own thread runs destructors of garbage and the diagnostics sink; a cycle
// requested from there would wait for itself.
constexpr const char* kCollectOnCollector =
    "cmr: collect() was called on the collector's own thread (from a tracked object's "
    "destructor or from the diagnostics sink)";
}  // namespace

TestHooks g_test_hooks;
TestFaults g_test_faults;
TestProbe g_test_probe;

template <class T>
bool Collector::MappedBuffer<T>::reserve(std::size_t n) noexcept {
  if (n <= capacity) return true;
  // Fenced: the roots buffer is kept for the scanner child, so it must never merge with a
  // program mapping (which would then be kept too).
  T* fresh = static_cast<T*>(sys::map_fenced(n * sizeof(T)));
  if (fresh == nullptr) return false;
  if (size != 0) std::memcpy(static_cast<void*>(fresh), data, size * sizeof(T));
  sys::unmap_fenced(data, capacity * sizeof(T));
  data = fresh;
  capacity = sys::page_round(n * sizeof(T)) / sizeof(T);
  return true;
}

template <class T>
void Collector::MappedBuffer<T>::release() noexcept {
  sys::unmap_fenced(data, capacity * sizeof(T));
  data = nullptr;
  capacity = size = 0;
}

namespace {
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
  keep_.release();
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
  return thread_tid_.load(std::memory_order_relaxed) == sys::gettid();
}

bool Collector::run_cycle_and_announce() {
  const bool ok = run_spaced_cycle();
  const std::int64_t end = sys::now_ns();
  // relaxed: read by this thread's loop, and by allocating threads as a deadline only.
  last_end_ns_.store(end, std::memory_order_relaxed);
  rt().timed_cycle_ns.store(interval_ns_ > 0 && last_in_pause_.load(std::memory_order_relaxed)
                                ? end + interval_ns_
                                : INT64_MAX,
                            std::memory_order_relaxed);
  return ok;
}

bool Collector::run_spaced_cycle() {
  // The program runs for at least kSpacing times the last pause between two pauses, so
  // that cycles requested back to back (a collect() loop, or allocation far ahead of the
  // trigger) cannot hold it more than a fifth of the time: an in-pause cycle is over so
  // fast that the next signal would otherwise reach the threads before they ran at all.
  const std::int64_t wait = next_cycle_ns_ - sys::now_ns();
  if (wait > 0) sys::sleep_ns(wait);
  bool ok = run_cycle();
  RuntimeState& s = rt();
  s.survivor_bytes.store(survivor_bytes_, std::memory_order_relaxed);  // read with the seq below
  // release: pairs with the acquire loads of waiting allocators (heap.cpp); they see the
  // new survivor_bytes and allocated_since_cycle.
  s.cycle_seq.fetch_add(1, std::memory_order_release);
  sys::futex_wake_all(&s.cycle_seq);
  return ok;
}

bool Collector::collect() {
  // acquire: pairs with start()'s release store and stop()'s exchange.
  if (!options_.background || !running_.load(std::memory_order_acquire)) {
    if (sys::gettid() == thread_tid_) throw Error(kCollectOnCollector);
    std::lock_guard lock(cycle_mutex_);
    // relaxed: cycle_mutex_ orders it; shutdown() stores it before stop() takes that mutex,
    // so a shutdown() that got the mutex first is seen here (and one that did not waits).
    if (g_shut_down.load(std::memory_order_relaxed)) return false;  // shutdown() won the race
    // This thread is the collector now: it must never hold itself in the handler.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, handshake::installed_signal());
    pthread_sigmask(SIG_BLOCK, &block, &old);
    thread_tid_ = sys::gettid();
    bool ok = run_cycle_and_announce();
    thread_tid_ = 0;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return ok;
  }
  if (sys::gettid() == thread_tid_) throw Error(kCollectOnCollector);
  std::unique_lock lock(request_mutex_);
  const std::uint64_t ticket = ++requested_;
  wake();
  done_cv_.wait(lock, [&] { return completed_ >= ticket || stopping_.load(); });
  return completed_ >= ticket && last_ok_;
}

void Collector::thread_main() noexcept {
  // The collector never runs program signal handlers and is never held by its own
  // handshake; its scanner child inherits this mask.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "cmr-collector");
  thread_tid_ = sys::gettid();
  RuntimeState& s = rt();
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
    const std::uint64_t allocated = s.allocated_since_cycle.load(std::memory_order_relaxed);
    // The timed trigger: only after a cheap cycle (one marked in the pause), and only for
    // allocation since then (a quiet program is left alone).
    const bool timed_candidate = interval_ns_ > 0 && allocated != 0 &&
                                 last_in_pause_.load(std::memory_order_relaxed);
    const std::int64_t now = sys::now_ns();
    const std::int64_t timed_at = last_end_ns_.load(std::memory_order_relaxed) + interval_ns_;
    const bool automatic =
        automatic_requested_.exchange(false, std::memory_order_relaxed) ||
        forced_requested_.exchange(false, std::memory_order_relaxed) ||
        allocated >= s.trigger_threshold.load(std::memory_order_relaxed) ||
        (timed_candidate && now >= timed_at);
    if (!explicit_request && !automatic) {
      sys::futex_wait(&wake_seq_, seq, timed_candidate ? timed_at - now : 250'000'000);
      continue;
    }
    bool ok;
    {
      std::lock_guard lock(cycle_mutex_);
      ok = run_cycle_and_announce();
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

bool Collector::copy_roots() noexcept {
  RuntimeState& s = rt();
  roots_.size = 0;
  for (ThreadRecord* r : s.records) {
    // relaxed: the owner is held (or gone); its writes were published by its ack.
    for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr; b = b->next)
      for (auto& slot : b->slots)
        if (void* v = slot.load(std::memory_order_relaxed))
          if (!roots_.push(reinterpret_cast<std::uintptr_t>(v))) return false;
  }
  for (RootNode* n = s.roots.next; n != &s.roots; n = n->next) {
    // relaxed: a Root is written only by registered threads (a write through Root
    // registers its thread), which are all held: their stores were published by their
    // acks, and none changes while the Roots are read one by one.
    auto* cell = static_cast<const std::atomic<std::uintptr_t>*>(n->cell);
    if (std::uintptr_t v = cell->load(std::memory_order_relaxed))
      if (!roots_.push(v)) return false;
    if (n == s.roots.next && g_test_hooks.collector_between_roots)
      g_test_hooks.collector_between_roots();
  }
  return true;
}

// Records of threads that exited are dropped before the pause: their blocks were handed
// on when they unregistered (blocks::thread_exit), and nothing else refers to them.
void Collector::drop_dead_records() noexcept {
  RuntimeState& s = rt();
  auto& records = s.records;
  for (std::size_t i = 0; i < records.size();) {
    ThreadRecord* r = records[i];
    if (r->gone) r->alive = false;
    if (r->alive) {
      ++i;
      continue;
    }
    if (r->owned_head != kNoBlock) blocks::thread_exit(r);  // gone without unregistering
    s.dead_allocated_objects += r->allocated_objects.load(std::memory_order_relaxed);
    s.dead_allocated_bytes += r->allocated_bytes.load(std::memory_order_relaxed);
    destroy_record(r);
    records[i] = records.back();
    records.pop_back();
  }
}

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

// Lists what the child reads (sorted, merged) and marks everything else DONTFORK.
// Called with the registry lock held, before the handshake.
bool Collector::mark_isolation() noexcept {
  keep_.size = 0;
  auto add = [&](const void* p, std::size_t bytes) {
    auto b = reinterpret_cast<std::uintptr_t>(p);
    return p == nullptr || keep_.push(KeepRange{b, b + std::max<std::size_t>(bytes, 1)});
  };
  const blocks::HeapRange heap = blocks::range();
  int on_stack = 0;  // the child runs on a copy of this thread's stack
  const bool ok = add(reinterpret_cast<void*>(heap.base), heap.size) &&
                  add(heap.table, heap.table_bytes) && add(plan_, sizeof(ScanPlan)) &&
                  add(&on_stack, sizeof on_stack) &&
                  add(__builtin_thread_pointer(), 1) &&  // errno and the stack guard live there
                  add(roots_.data, roots_.capacity * sizeof(std::uintptr_t));
  if (!ok) return false;
  std::sort(keep_.data, keep_.data + keep_.size,
            [](const KeepRange& a, const KeepRange& b) { return a.begin < b.begin; });
  std::size_t merged = 0;
  for (std::size_t i = 0; i < keep_.size; ++i) {
    if (merged != 0 && keep_.data[i].begin <= keep_.data[merged - 1].end)
      keep_.data[merged - 1].end = std::max(keep_.data[merged - 1].end, keep_.data[i].end);
    else
      keep_.data[merged++] = keep_.data[i];
  }
  isolation_.mark(keep_.data, merged);
  return true;
}

void Collector::record_pause(std::int64_t ns) noexcept {
  // relaxed: statistics only; the collector is their single writer.
  last_pause_.store(ns, std::memory_order_relaxed);
  total_pause_.store(total_pause_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  if (ns > max_pause_.load(std::memory_order_relaxed)) max_pause_.store(ns, std::memory_order_relaxed);
}

bool Collector::run_cycle() {
  const TestFaults& f = g_test_faults;
  const bool child_only = f.use_child || f.child_crash || f.child_hang || f.child_exit_early ||
                          f.child_reads != nullptr || f.fail_clone > 0;
  if (pause_budget_ns_ > 0 && !child_only && last_mark_ns_ <= pause_budget_ns_ &&
      blocks::carved() <= kMaxPauseBlocks) {
    switch (cycle_in_pause()) {
      case Outcome::kCompleted:
        last_in_pause_.store(true, std::memory_order_relaxed);  // relaxed: see thread_main
        return true;
      case Outcome::kAborted:
      case Outcome::kFailed:
        return false;
      case Outcome::kOverBudget:
        break;  // the heap outgrew the budget: the same cycle, with a child, now
    }
  }
  last_in_pause_.store(false, std::memory_order_relaxed);  // relaxed: see thread_main
  return cycle_with_child() == Outcome::kCompleted;
}

bool Collector::ensure_pause_scratch() noexcept {
  const std::size_t blocks = std::size_t{blocks::carved()} + 64;
  // The answer's room: one entry per bitmap word of every block, the most it can need
  // (1 KiB per 64 KiB block).
  const std::size_t entries = blocks * kBitmapWords;
  const std::size_t answer_words = (ScanResult::bytes_for(entries) + 7) / 8;
  const std::size_t had_marks = pause_marks_.capacity, had_answer = pause_answer_.capacity;
  const std::size_t had_counts = pause_block_marks_.capacity;
  if (!pause_marks_.reserve(blocks * kBitmapWords) || !pause_block_marks_.reserve(blocks) ||
      !pause_stack_.reserve(std::max<std::size_t>(last_reachable_ * 2, 4096)) ||
      !pause_answer_.reserve(answer_words))
    return false;
  // Fresh pages are zero and cost a fault on first use. The marks' pages are touched only
  // for blocks something is marked in (a handful for a small live heap); the answer's first
  // pages are touched now, not inside the pause (a fresh answer once faulted so often there
  // that it pushed a 10^6-object cycle past its budget), and the rest only by an answer that
  // large, whose sweep is long anyway: resident memory stays proportional to use.
  (void)had_marks;
  (void)had_counts;
  if (pause_answer_.capacity != had_answer)
    std::memset(pause_answer_.data, 0,
                std::min<std::size_t>(pause_answer_.capacity, kAnswerPrefault / 8) * 8);
  return true;
}

bool Collector::hold_threads(std::unique_lock<std::mutex>& registry, std::int64_t& t0,
                             bool isolate) {
  RuntimeState& s = rt();
  registry = std::unique_lock(s.registry_mutex);

  // Before the pause (nothing is held yet, so allocating is still allowed).
  drop_dead_records();
  targets_.clear();
  std::size_t slot_estimate = s.root_count + 64;
  for (ThreadRecord* r : s.records) {
    if (!r->detached && r->tid != thread_tid_) targets_.push_back(r);
    for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr; b = b->next)
      slot_estimate += kSlotsPerBlock;
  }
  if (!roots_.reserve(slot_estimate)) {
    registry.unlock();
    failed_.fetch_add(1, std::memory_order_relaxed);
    diagnose("cycle skipped: out of memory for the root buffers");
    return false;
  }

  // Marks end in isolation_.restore() before the registry lock is released, on every path.
  if (isolate && g_test_hooks.collector_before_isolation != nullptr)
    g_test_hooks.collector_before_isolation();
  if (isolate && !mark_isolation()) isolation_.restore();
  // relaxed: a statistic for stats(), written by the collector only.
  isolated_bytes_.store(isolate ? isolation_.marked_bytes() : 0, std::memory_order_relaxed);

  t0 = sys::now_ns();
  handshake::PauseOutcome held = handshake::pause(targets_.data(), targets_.size(),
                                                  saturating_ns(options_.handshake_timeout));
  if (!held.paused) {
    release_threads(registry, t0);
    aborted_.fetch_add(1, std::memory_order_relaxed);
    if (held.handler_replaced)
      diagnose("cycle aborted, nothing freed: the handler of signal %d (%s) was replaced by "
               "the program after cmr::init; restore it or chain to it, or choose another "
               "signal with cmr::Options::signal",
               handshake::installed_signal(), strsignal(handshake::installed_signal()));
    else
      diagnose("cycle aborted, nothing freed: %zu thread(s) did not answer signal %d within "
               "%lld ms (first: tid %d). Is the signal blocked in that thread, or is it stopped?",
               held.unanswered, handshake::installed_signal(),
               static_cast<long long>(options_.handshake_timeout.count()), held.unanswered_tid);
    return false;
  }
  // ---- every registered thread is held: no malloc, no printing, until release ----
  last_handshake_.store(sys::now_ns() - t0, std::memory_order_relaxed);  // relaxed: stats
  return true;
}

void Collector::release_threads(std::unique_lock<std::mutex>& registry, std::int64_t t0) noexcept {
  const std::int64_t released = handshake::release();
  pause_ns_ = released - t0;
  next_cycle_ns_ = released + kSpacing * pause_ns_;
  // ---- threads run again ----
  isolation_.restore();
  registry.unlock();
  record_pause(pause_ns_);
}

void Collector::prepare_plan(std::uint32_t block_count, ScanResult* result,
                             std::size_t capacity) noexcept {
  const blocks::HeapRange heap = blocks::range();
  result->complete.store(0, std::memory_order_relaxed);  // relaxed: read after the clone
  result->started.store(0, std::memory_order_relaxed);   // copies it, or by this thread
  result->count = 0;
  result->began_ns = 0;
  *plan_ = ScanPlan{heap.base, heap.table, block_count, roots_.data, roots_.size, result,
                    capacity,
                    static_cast<std::uint32_t>(cycles_.load(std::memory_order_relaxed) + 1),
                    ChildFaults{g_test_faults.child_crash, g_test_faults.child_hang,
                                g_test_faults.child_exit_early, g_test_faults.child_reads}};
}

// A small live heap, marked on this thread while every thread is held: no process to
// create, no copy-on-write afterwards. The mark has a deadline; past it the cycle is
// abandoned (nothing freed) and the caller runs it again with a child.
Collector::Outcome Collector::cycle_in_pause() {
  RuntimeState& s = rt();
  if (!ensure_pause_scratch()) return Outcome::kOverBudget;
  std::unique_lock<std::mutex> registry;
  std::int64_t t0;
  if (!hold_threads(registry, t0, false)) return Outcome::kAborted;
  const bool ready = copy_roots();
  const std::uint64_t allocated_at_cut = s.allocated_since_cycle.load(std::memory_order_relaxed);
  PauseMark marked = PauseMark::kNoRoom;
  std::size_t marked_blocks = 0;
  if (ready) {
    auto* answer = reinterpret_cast<ScanResult*>(pause_answer_.data);
    prepare_plan(blocks::carved(), answer,
                 (pause_answer_.capacity * sizeof(std::uint64_t) - sizeof(ScanResult)) /
                     sizeof(GarbageWord));
    MarkScratch scratch{pause_marks_.data,
                        std::min(pause_marks_.capacity, pause_block_marks_.capacity * kBitmapWords),
                        pause_block_marks_.data, pause_stack_.data, pause_stack_.capacity};
    marked = mark_with(*plan_, scratch, sys::deadline_after(pause_budget_ns_));
    marked_blocks = std::min<std::size_t>(plan_->block_count, scratch.mark_words / kBitmapWords);
    if (marked == PauseMark::kAnswered && g_test_hooks.collector_paused)
      g_test_hooks.collector_paused();
  }
  release_threads(registry, t0);
  last_roots_.store(roots_.size, std::memory_order_relaxed);  // relaxed: stats
  // Zeroed for the next in-pause mark, off the pause: only the blocks something was marked in.
  for (std::size_t b = 0; b < marked_blocks; ++b) {
    if (pause_block_marks_.data[b] == 0) continue;
    std::memset(&pause_marks_.data[b * kBitmapWords], 0, kBitmapWords * sizeof(std::uint64_t));
    pause_block_marks_.data[b] = 0;
  }
  if (marked != PauseMark::kAnswered) {
    over_budget_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    last_mark_ns_ = INT64_MAX;  // until a child's mark says otherwise
    return Outcome::kOverBudget;
  }
  if (g_test_hooks.collector_released) g_test_hooks.collector_released();
  marked_in_pause_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  g_test_probe.released_ns = t0 + pause_ns_;
  g_test_probe.child_began_ns = 0;
  return finish(t0, allocated_at_cut);
}

Collector::Outcome Collector::cycle_with_child() {
  RuntimeState& s = rt();
  if (isolate_) isolation_.prepare();  // reads /proc: before the lock, which Roots need
  if (!ensure_answer_room()) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    diagnose("cycle skipped: out of memory for the scanner's answer");
    return Outcome::kFailed;
  }
  std::unique_lock<std::mutex> registry;
  std::int64_t t0;
  if (!hold_threads(registry, t0, isolate_)) return Outcome::kAborted;
  const bool ready = copy_roots();
  // Read while every allocating thread is held, so the bytes subtracted after the cycle
  // are those of this cycle's candidates.
  const std::uint64_t allocated_at_cut = s.allocated_since_cycle.load(std::memory_order_relaxed);
  const std::uint32_t block_count = blocks::carved();
  int clone_error = ENOMEM;
  snapshot::Child child;
  if (ready) {
    prepare_plan(block_count, result_, result_capacity_);
    if (g_test_faults.fail_clone > 0) {
      --g_test_faults.fail_clone;
      clone_error = EAGAIN;
    } else {
      clone_error = snapshot::spawn(*plan_, child);
    }
  }
  if (clone_error == 0 && g_test_hooks.collector_paused) g_test_hooks.collector_paused();
  release_threads(registry, t0);
  last_roots_.store(roots_.size, std::memory_order_relaxed);  // relaxed: stats

  if (clone_error != 0) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (ready) clone_failures_.fetch_add(1, std::memory_order_relaxed);
    if (!ready)  // no process creation was tried: runtime buffers were short
      diagnose("cycle skipped, nothing freed: out of memory for the roots");
    else
      diagnose("cycle skipped, nothing freed: cannot create the scanner process: %s",
               std::strerror(clone_error));
    return Outcome::kFailed;
  }
  snapshot::start(result_);
  if (g_test_hooks.collector_released) g_test_hooks.collector_released();

  int detail = 0;
  snapshot::Outcome outcome = snapshot::wait(child, saturating_ns(options_.scan_timeout), detail);
  // acquire: pairs with the child's release store of `complete`.
  const bool complete = outcome == snapshot::Outcome::kExited &&
                        result_->complete.load(std::memory_order_acquire) == 1 &&
                        result_->epoch == plan_->epoch && result_->count <= result_capacity_;
  if (!complete) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (outcome == snapshot::Outcome::kTimedOut) {
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      // A timeout shorter than the scan itself frees nothing, ever: say what to change.
      diagnose("cycle failed, nothing freed: the scanner ran past scan_timeout (%lld ms) "
               "and was killed; %u blocks in the heap (the longest completed scan took %lld "
               "ms). If this repeats, raise cmr::Options::scan_timeout",
               static_cast<long long>(options_.scan_timeout.count()), block_count,
               // relaxed: the collector is max_scan_'s only writer.
               static_cast<long long>(max_scan_.load(std::memory_order_relaxed) / 1'000'000));
    } else {
      crashes_.fetch_add(1, std::memory_order_relaxed);
      diagnose("cycle failed, nothing freed: the scanner %s %d without a complete answer",
               outcome == snapshot::Outcome::kCrashed && detail > 0 && detail < 64
                   ? "ended with status/signal" : "ended with", detail);
    }
    return Outcome::kFailed;
  }
  g_test_probe.released_ns = t0 + pause_ns_;
  g_test_probe.child_began_ns = result_->began_ns;
  return finish(t0, allocated_at_cut);
}

// A complete answer, either way: reclaim, then the counters and the next trigger.
Collector::Outcome Collector::finish(const std::int64_t, std::uint64_t allocated_at_cut) noexcept {
  RuntimeState& s = rt();
  ScanResult* answer = plan_->result;  // the child's shared answer, or the in-pause one
  last_garbage_words_ = answer->count;
  // relaxed: statistics, written by the collector only.
  last_candidates_.store(answer->candidates, std::memory_order_relaxed);
  last_words_.store(answer->words_scanned, std::memory_order_relaxed);
  last_scan_.store(answer->scan_ns, std::memory_order_relaxed);
  if (answer->scan_ns > max_scan_.load(std::memory_order_relaxed))
    max_scan_.store(answer->scan_ns, std::memory_order_relaxed);
  last_mark_ns_ = answer->scan_ns;
  last_reachable_ = answer->reachable;

  reclaim(answer->entries(), answer->count, FreedCounters{objects_freed_, bytes_freed_});
  survivor_bytes_ = answer->reachable_bytes;

  // relaxed: counters; see heap.cpp.
  s.allocated_since_cycle.fetch_sub(std::min(allocated_at_cut,
                                             s.allocated_since_cycle.load(std::memory_order_relaxed)),
                                    std::memory_order_relaxed);
  const auto by_ratio = static_cast<std::uint64_t>(static_cast<double>(survivor_bytes_) * options_.trigger_ratio);
  s.trigger_threshold.store(std::max<std::uint64_t>(options_.trigger_bytes, by_ratio),
                            std::memory_order_relaxed);
  // Pooled blocks still unused since the last trim give their pages back to the kernel.
  // relaxed: a statistic, written by the collector only.
  if (cycles_.fetch_add(1, std::memory_order_relaxed) % kTrimEvery == kTrimEvery - 1)
    blocks::trim_pool();
  return Outcome::kCompleted;
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
  survivor_bytes_ = e.survivor_bytes_;
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

}  // namespace cmr::detail
