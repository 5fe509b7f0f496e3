// src/cycle/cycle.cpp: one collection cycle.
//
// Claims invariants 3, 6, 16, 32 and 33 of docs/design.md.
//
// A cycle, step by step (each step names the file that does the work):
//
//  1. Trigger. Bytes allocated since the last cycle passed the threshold, the timed trigger
//     fired, a thread at heap_limit asked, or collect() was called (cycle/pacing.cpp,
//     cycle/collector.cpp). Cycles never overlap (cycle_mutex_).
//  2. Prepare, before any thread is held (malloc and locks still allowed): exited threads'
//     records are dropped, buffers are sized, and with a child, the program's mappings are
//     listed for isolation (snapshot/isolation.cpp).
//  3. Handshake. Under the registry lock, every registered thread is signalled and held in
//     the handler (threads/handshake.cpp); one that does not answer in handshake_timeout
//     aborts the cycle, and nothing is freed.
//  4. Roots. Every guard slot and Root value is copied into runtime memory
//     (copy_roots() below), and the number of blocks in use is the cut: what was allocated
//     before it is a candidate (heap/blocks.hpp).
//  5. Snapshot, still in the pause. A small live heap is marked right here, under a
//     deadline (snapshot/scanner.cpp, mark_with); otherwise every mapping the child does
//     not need is marked DONTFORK and a copy-on-write child is created with raw clone
//     (snapshot/spawn.cpp).
//  6. Release. The threads run again; the isolation marks are cleared.
//  7. Mark. The child marks from the copied roots, lists the unreached candidates per
//     bitmap word in a shared answer, sets `complete` and exits (snapshot/scanner.cpp).
//     The collector waits for it, at most scan_timeout.
//  8. Reclaim. Only a complete answer from a child that exited normally (or the in-pause
//     mark's answer) is used: the garbage is destroyed, then its slots are handed back
//     (cycle/reclaim.cpp); the trigger follows the live bytes found (cycle/pacing.cpp).
//
// Every attempt ends in one Outcome, counted and explained by report().
//
// Invariant 3: every registered thread is held from the first root read until the child
// exists, or the in-pause mark ends. Invariant 6: one cycle at a time; only a complete
// answer frees anything; objects allocated after the cut are never garbage of the cycle.
// Between hold_threads() and release_threads() nothing may call malloc or free (a held
// thread may own an arena lock), print, or take any lock a held thread might hold (the
// heap lock included).
#include <signal.h>

#include <algorithm>
#include <cstring>

#include "cmr/detail/duration.hpp"
#include "cycle/collector.hpp"
#include "cycle/pacing.hpp"
#include "cycle/reclaim.hpp"
#include "heap/blocks.hpp"
#include "os/sys.hpp"
#include "runtime/runtime.hpp"
#include "snapshot/spawn.hpp"
#include "testing/test_support.hpp"
#include "threads/handshake.hpp"
#include "threads/registry.hpp"
#include "threads/roots.hpp"

namespace cmr::detail {

namespace {
// Every this many completed cycles, pooled blocks unused since the last time are given
// back to the kernel (about every 0.3 s under the timed trigger).
constexpr std::uint64_t kTrimEvery = 64;
// Between two pauses the program runs at least this many times the last one.
constexpr std::int64_t kSpacing = 4;
// The in-pause mark also sweeps every block's bitmaps: heaps larger than this always use
// a child (64 bitmap words per 64 KiB block; 4096 blocks is a 256 MiB heap, about 0.2 ms).
constexpr std::uint32_t kMaxPauseBlocks = 4096;
}  // namespace

bool Collector::run_cycle() {
  if (pause_budget_ns_ > 0 && !test_support::child_required() &&
      last_mark_ns_ <= pause_budget_ns_ && blocks::carved() <= kMaxPauseBlocks) {
    const Ending end = cycle_in_pause();
    report(end);
    if (end.outcome == Outcome::kCompleted) {
      // relaxed: read by the scheduling loop, on this thread or under cycle_mutex_.
      last_in_pause_.store(true, std::memory_order_relaxed);
      return true;
    }
    if (end.outcome != Outcome::kOverBudget) return false;  // aborted: nothing to retry
    // The heap outgrew the budget: the same cycle, with a child, now.
  }
  last_in_pause_.store(false, std::memory_order_relaxed);  // relaxed: as above
  const Ending end = cycle_with_child();
  report(end);
  return end.outcome == Outcome::kCompleted;
}

void Collector::report(const Ending& end) noexcept {
  // relaxed: statistics, written by the collector only.
  auto count = [](std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); };
  const int sig = handshake::installed_signal();
  switch (end.outcome) {
    case Outcome::kCompleted:
      return;  // counted by finish()
    case Outcome::kOverBudget:
      count(over_budget_);
      return;
    case Outcome::kHandlerReplaced:
      count(aborted_);
      diagnose("cycle aborted, nothing freed: the handler of signal %d (%s) was replaced by "
               "the program after cmr::init; restore it or chain to it, or choose another "
               "signal with cmr::Options::signal",
               sig, strsignal(sig));
      return;
    case Outcome::kUnanswered:
      count(aborted_);
      diagnose("cycle aborted, nothing freed: %zu thread(s) did not answer signal %d within "
               "%lld ms (first: tid %d). Is the signal blocked in that thread, or is it stopped?",
               end.unanswered, sig, static_cast<long long>(options_.handshake_timeout.count()),
               end.detail);
      return;
    case Outcome::kNoRootBuffer:
      count(failed_);
      diagnose("cycle skipped: out of memory for the root buffers");
      return;
    case Outcome::kNoAnswerBuffer:
      count(failed_);
      diagnose("cycle skipped: out of memory for the scanner's answer");
      return;
    case Outcome::kNoRoomForRoots:
      count(failed_);
      diagnose("cycle skipped, nothing freed: out of memory for the roots");
      return;
    case Outcome::kCloneFailed:
      count(failed_);
      count(clone_failures_);
      diagnose("cycle skipped, nothing freed: cannot create the scanner process: %s",
               std::strerror(end.detail));
      return;
    case Outcome::kScannerTimedOut:
      count(failed_);
      count(timeouts_);
      // A timeout shorter than the scan itself frees nothing, ever: say what to change.
      diagnose("cycle failed, nothing freed: the scanner ran past scan_timeout (%lld ms) "
               "and was killed; %u blocks in the heap (the longest completed scan took %lld "
               "ms). If this repeats, raise cmr::Options::scan_timeout",
               static_cast<long long>(options_.scan_timeout.count()), block_count_,
               static_cast<long long>(max_scan_.load(std::memory_order_relaxed) / 1'000'000));
      return;
    case Outcome::kScannerFailed:
      count(failed_);
      count(crashes_);
      diagnose("cycle failed, nothing freed: the scanner %s %d without a complete answer",
               end.detail > 0 && end.detail < 64 ? "ended with status/signal" : "ended with",
               end.detail);
      return;
  }
}

// Steps 2-6 with the mark in the pause: no process to create, no copy-on-write after. The
// mark has a deadline; past it the cycle is abandoned (nothing freed) and run_cycle() runs
// it again with a child.
Collector::Ending Collector::cycle_in_pause() {
  if (!ensure_pause_scratch()) return {Outcome::kOverBudget};
  std::unique_lock<std::mutex> registry_lock;
  Ending why{Outcome::kCompleted};
  if (!hold_threads(registry_lock, false, why)) return why;
  const bool ready = copy_roots();
  const std::uint64_t at_cut = pacing_rules::allocated_at_cut();
  PauseMark marked = PauseMark::kNoRoom;
  std::size_t marked_blocks = 0;
  if (ready) {
    auto* answer = reinterpret_cast<ScanResult*>(pause_answer_.data());
    prepare_plan(blocks::carved(), answer,
                 (pause_answer_.bytes() - sizeof(ScanResult)) / sizeof(GarbageWord));
    MarkScratch scratch{pause_marks_.data(),
                        std::min(pause_marks_.capacity(),
                                 pause_block_marks_.capacity() * kBitmapWords),
                        pause_block_marks_.data(), pause_stack_.data(),
                        pause_stack_.capacity()};
    marked = mark_with(*plan_, scratch, sys::deadline_after(pause_budget_ns_));
    marked_blocks = std::min<std::size_t>(plan_->block_count, scratch.mark_words / kBitmapWords);
    if (marked == PauseMark::kAnswered && g_test_hooks.collector_paused)
      g_test_hooks.collector_paused();
  }
  release_threads(registry_lock);
  // Zeroed for the next in-pause mark, off the pause: only the blocks something was marked in.
  for (std::size_t b = 0; b < marked_blocks; ++b) {
    if (pause_block_marks_[b] == 0) continue;
    std::memset(&pause_marks_[b * kBitmapWords], 0, kBitmapWords * sizeof(std::uint64_t));
    pause_block_marks_[b] = 0;
  }
  if (marked != PauseMark::kAnswered) {
    last_mark_ns_ = INT64_MAX;  // until a child's mark says otherwise
    return {Outcome::kOverBudget};
  }
  if (g_test_hooks.collector_released) g_test_hooks.collector_released();
  marked_in_pause_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  test_support::probe_cycle(pause_start_ns_ + pause_ns_, 0);
  finish(at_cut);
  return {Outcome::kCompleted};
}

// Steps 2-8 with a child.
Collector::Ending Collector::cycle_with_child() {
  if (isolate_) isolation_.prepare();  // reads /proc: before the lock, which Roots need
  if (!ensure_answer_room()) return {Outcome::kNoAnswerBuffer};
  std::unique_lock<std::mutex> registry_lock;
  Ending why{Outcome::kCompleted};
  if (!hold_threads(registry_lock, isolate_, why)) return why;
  const bool ready = copy_roots();
  const std::uint64_t at_cut = pacing_rules::allocated_at_cut();
  block_count_ = blocks::carved();
  int clone_error = 0;
  snapshot::Child child;
  if (ready) {
    prepare_plan(block_count_, result_, result_capacity_);
    clone_error = test_support::fail_this_clone()
                      ? EAGAIN
                      : snapshot::spawn(*plan_, test_support::child_faults(), child);
    if (clone_error == 0 && g_test_hooks.collector_paused) g_test_hooks.collector_paused();
  }
  release_threads(registry_lock);
  if (!ready) return {Outcome::kNoRoomForRoots};
  if (clone_error != 0) return {Outcome::kCloneFailed, clone_error};
  snapshot::start(result_);
  if (g_test_hooks.collector_released) g_test_hooks.collector_released();

  int detail = 0;
  const snapshot::Outcome ended =
      snapshot::wait(child, saturating_ns(options_.scan_timeout), detail);
  if (ended == snapshot::Outcome::kTimedOut) return {Outcome::kScannerTimedOut, detail};
  // acquire: pairs with the child's release store of `complete` (scanner_child_main).
  const bool complete = ended == snapshot::Outcome::kExited &&
                        result_->complete.load(std::memory_order_acquire) == 1 &&
                        result_->cycle == plan_->cycle && result_->count <= result_capacity_;
  if (!complete) return {Outcome::kScannerFailed, detail};
  test_support::probe_cycle(pause_start_ns_ + pause_ns_, result_->began_ns);
  finish(at_cut);
  return {Outcome::kCompleted};
}

// Steps 2 and 3, and step 5's isolation marks (which end in release_threads()).
bool Collector::hold_threads(std::unique_lock<std::mutex>& registry_lock, bool isolate,
                             Ending& why) {
  ThreadRegistry& reg = registry();
  registry_lock = std::unique_lock(reg.mutex);

  // Before the pause (nothing is held yet, so allocating is still allowed).
  drop_dead_records();
  targets_.clear();
  std::size_t slot_estimate = roots().count + 64;
  // relaxed: see thread_tid_.
  const int self = thread_tid_.load(std::memory_order_relaxed);
  for (ThreadRecord* r : reg.records) {
    if (r->presence == ThreadRecord::Presence::kRegistered && r->tid != self)
      targets_.push_back(r);
    // relaxed: the list only grows at its head, and a block published after this count is
    // found by copy_roots() all the same (the buffer then grows, or the cycle gives up).
    for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr; b = b->next)
      slot_estimate += kSlotsPerBlock;
  }
  if (!roots_.reserve(slot_estimate)) {
    registry_lock.unlock();
    why = {Outcome::kNoRootBuffer};
    return false;
  }

  if (isolate && g_test_hooks.collector_before_isolation != nullptr)
    g_test_hooks.collector_before_isolation();
  const auto range = [](const void* p, std::size_t bytes) {
    const auto b = reinterpret_cast<std::uintptr_t>(p);
    return KeepRange{b, b + bytes};
  };
  if (isolate && !isolation_.mark_all_but({range(plan_, sizeof(ScanPlan)),
                                           range(roots_.data(), roots_.bytes())}))
    isolation_.restore();
  // relaxed: a statistic for stats(), written by the collector only.
  isolated_bytes_.store(isolate ? isolation_.marked_bytes() : 0, std::memory_order_relaxed);

  pause_start_ns_ = sys::now_ns();
  const handshake::PauseOutcome held = handshake::pause(
      targets_.data(), targets_.size(), saturating_ns(options_.handshake_timeout));
  if (!held.paused) {
    release_threads(registry_lock);
    why = held.handler_replaced
              ? Ending{Outcome::kHandlerReplaced}
              : Ending{Outcome::kUnanswered, held.unanswered_tid, held.unanswered};
    return false;
  }
  // ---- every registered thread is held: no malloc, no printing, until release ----
  // relaxed: a statistic for stats().
  last_handshake_.store(sys::now_ns() - pause_start_ns_, std::memory_order_relaxed);
  return true;
}

// Step 6.
void Collector::release_threads(std::unique_lock<std::mutex>& registry_lock) noexcept {
  const std::int64_t released = handshake::release();
  pause_ns_ = released - pause_start_ns_;
  next_cycle_ns_ = released + kSpacing * pause_ns_;
  // ---- threads run again ----
  isolation_.restore();
  registry_lock.unlock();
  record_pause(pause_ns_);
  last_roots_.store(roots_.size(), std::memory_order_relaxed);  // relaxed: a statistic
}

// Records of threads that exited are dropped before the pause: their blocks were handed
// on when they unregistered (blocks::thread_exit), and nothing else refers to them.
void Collector::drop_dead_records() noexcept {
  auto& records = registry().records;
  for (std::size_t i = 0; i < records.size();) {
    ThreadRecord* r = records[i];
    if (r->presence != ThreadRecord::Presence::kExited &&
        r->presence != ThreadRecord::Presence::kVanished) {
      ++i;
      continue;
    }
    if (r->owned_head != kNoBlock) blocks::thread_exit(r);  // gone without unregistering
    drop_record(r);
    records[i] = records.back();
    records.pop_back();
  }
}

// Step 4.
bool Collector::copy_roots() noexcept {
  roots_.clear();
  for (ThreadRecord* r : registry().records) {
    // relaxed: the owner is held (or gone); its writes were published by its ack.
    for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr; b = b->next)
      for (auto& slot : b->slots)
        if (void* v = slot.load(std::memory_order_relaxed))
          if (!roots_.push(reinterpret_cast<std::uintptr_t>(v))) return false;
  }
  RootRegistry& list = roots();
  for (RootNode* n = list.sentinel.next; n != &list.sentinel; n = n->next) {
    // relaxed: a Root is written only by registered threads (a write through Root
    // registers its thread), which are all held: their stores were published by their
    // acks, and none changes while the Roots are read one by one.
    auto* cell = static_cast<const std::atomic<std::uintptr_t>*>(n->cell);
    if (std::uintptr_t v = cell->load(std::memory_order_relaxed))
      if (!roots_.push(v)) return false;
    if (n == list.sentinel.next && g_test_hooks.collector_between_roots)
      g_test_hooks.collector_between_roots();
  }
  return true;
}

void Collector::prepare_plan(std::uint32_t block_count, ScanResult* result,
                             std::size_t capacity) noexcept {
  const blocks::HeapRange heap = blocks::range();
  result->complete.store(0, std::memory_order_relaxed);  // relaxed: read after the clone
  result->started.store(0, std::memory_order_relaxed);   // copies it, or by this thread
  result->count = 0;
  result->began_ns = 0;
  *plan_ = ScanPlan{heap.base, heap.table, block_count, roots_.data(), roots_.size(), result,
                    capacity,
                    static_cast<std::uint32_t>(cycles_.load(std::memory_order_relaxed) + 1)};
}

// Step 8, for a complete answer either way.
void Collector::finish(std::uint64_t allocated_at_cut) noexcept {
  ScanResult* answer = plan_->result;  // the child's shared answer, or the in-pause one
  // relaxed: statistics, written by the collector only.
  last_candidates_.store(answer->candidates, std::memory_order_relaxed);
  last_words_.store(answer->words_scanned, std::memory_order_relaxed);
  last_scan_.store(answer->scan_ns, std::memory_order_relaxed);
  if (answer->scan_ns > max_scan_.load(std::memory_order_relaxed))
    max_scan_.store(answer->scan_ns, std::memory_order_relaxed);
  last_mark_ns_ = answer->scan_ns;
  last_reachable_ = answer->reachable;

  reclaim(answer->entries(), answer->count, FreedCounters{objects_freed_, bytes_freed_});
  pacing_rules::cycle_completed(allocated_at_cut, answer->reachable_bytes, options_);
  // Pooled blocks still unused since the last trim give their pages back to the kernel.
  // relaxed: a statistic, written by the collector only.
  if (cycles_.fetch_add(1, std::memory_order_relaxed) % kTrimEvery == kTrimEvery - 1)
    blocks::trim_pool();
}

}  // namespace cmr::detail
