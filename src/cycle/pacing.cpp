// src/cycle/pacing.cpp: the trigger, pacing and admission (see pacing.hpp).
//
// Claims invariants 28 and 29 of docs/design.md.
//
// Invariant: a thread waits only when a cycle could hold it and someone else can run it:
// never on the collector's own thread (it would wait for itself), never with cmr's signal
// blocked (the cycle could not hold it and would wait for it until the handshake timeout),
// never in a fork's child before its runtime is rebuilt; and never longer than
// kPaceWaitNs per flush, or the caller's own deadline under heap_limit.
#include "cycle/pacing.hpp"

#include <algorithm>

#include "cycle/collector.hpp"
#include "cmr/detail/duration.hpp"
#include "os/sys.hpp"
#include "runtime/runtime.hpp"
#include "threads/handshake.hpp"

namespace cmr::detail {

Pacing& pacing() {
  static Pacing* const state = new Pacing();
  return *state;
}

namespace {

// Fine enough for the collector's timed trigger to see a slowly allocating thread's bytes;
// one shared atomic add per 16 KiB costs nothing measurable.
constexpr std::uint64_t kFlushBytes = 16 * 1024;
constexpr std::uint64_t kPaceFactor = 4;
constexpr std::int64_t kPaceWaitNs = 100'000'000;  // never stall a thread longer per flush

// Sleeps until a cycle attempt after `seq` ends, or `deadline_ns` passes.
void wait_for_cycle(std::uint32_t seq, std::int64_t deadline_ns) {
  Pacing& p = pacing();
  const std::int64_t left = deadline_ns - sys::now_ns();
  // acquire: pairs with the release increment in cycle_ended(); its counters are visible.
  if (left > 0 && p.cycle_seq.load(std::memory_order_acquire) == seq)
    sys::futex_wait(&p.cycle_seq, seq, left);
}

bool may_wait() {
  Runtime& s = rt();
  return s.collector != nullptr && !must_rebuild() && !s.collector->is_collector_thread() &&
         !handshake::blocked_in_this_thread();
}

void pace() {
  Runtime& s = rt();
  Pacing& p = pacing();
  if (!s.options.background) return;
  // acquire: pairs with the release increment in cycle_ended().
  const std::uint32_t seq = p.cycle_seq.load(std::memory_order_acquire);
  // relaxed: counters compared with a threshold, as in flush_allocation_count().
  if (p.allocated_since_cycle.load(std::memory_order_relaxed) <
      kPaceFactor * p.trigger_threshold.load(std::memory_order_relaxed))
    return;
  if (!may_wait()) return;  // last: it asks the kernel for this thread's signal mask
  p.paced_waits.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  s.collector->request_automatic_cycle();
  wait_for_cycle(seq, sys::now_ns() + kPaceWaitNs);
}

std::uint64_t unflushed(const ThreadRecord* r) {
  // relaxed: this thread is the only writer of its own total.
  return r->allocated_bytes.load(std::memory_order_relaxed) - r->flushed_bytes;
}

std::uint64_t live_estimate(const ThreadRecord* r) {
  Pacing& p = pacing();
  // relaxed: an estimate; the limit is documented as approximate by the flush batch.
  return p.survivor_bytes.load(std::memory_order_relaxed) +
         p.allocated_since_cycle.load(std::memory_order_relaxed) + unflushed(r);
}

// Adds this thread's unflushed bytes to the shared count. Returns the new shared count.
std::uint64_t flush_batch(ThreadRecord* r) noexcept {
  const std::uint64_t total = r->allocated_bytes.load(std::memory_order_relaxed);
  const std::uint64_t batch = total - r->flushed_bytes;
  r->flushed_bytes = total;
  r->flush_at = total + kFlushBytes;
  // relaxed: a counter compared against a threshold; the collector's wake-up futex
  // carries the ordering that matters.
  return pacing().allocated_since_cycle.fetch_add(batch, std::memory_order_relaxed) + batch;
}

}  // namespace

// make()'s inline path calls this when its thread's batch is full (cmr/make.hpp).
void flush_allocation_count(ThreadRecord* r) {
  Runtime& s = rt();
  Pacing& p = pacing();
  if (must_rebuild()) [[unlikely]] {  // the child of a fork(): its collector first
    try {
      rebuild_after_fork();
    } catch (...) {
      return;  // no collector thread could be started: counted again at the next flush
    }
  }
  const std::uint64_t total = flush_batch(r);
  // relaxed: a threshold and a deadline compared with counters; the wake-up carries the
  // ordering.
  const std::uint64_t threshold = p.trigger_threshold.load(std::memory_order_relaxed);
  if ((total >= threshold || sys::now_ns() >= p.timed_cycle_ns.load(std::memory_order_relaxed)) &&
      s.collector != nullptr)
    s.collector->request_automatic_cycle();
  if (total >= kPaceFactor * threshold) [[unlikely]] pace();
}

namespace pacing_rules {

void arm(const Options& options) noexcept {
  Pacing& p = pacing();
  // relaxed: published by the release store of the runtime's phase that follows init.
  p.trigger_threshold.store(options.trigger_bytes, std::memory_order_relaxed);
  if (options.trigger_interval.count() > 0)
    p.timed_cycle_ns.store(sys::deadline_after(saturating_ns(options.trigger_interval)),
                           std::memory_order_relaxed);
}

bool admit(ThreadRecord* r, std::size_t bytes, std::int64_t max_wait_ns) {
  Runtime& s = rt();
  Pacing& p = pacing();
  const std::uint64_t limit = r->heap_limit;
  if (live_estimate(r) + bytes <= limit) return true;
  const std::int64_t deadline = sys::deadline_after(std::max<std::int64_t>(max_wait_ns, 0));
  flush_batch(r);  // so that the collector sees why it is needed
  while (live_estimate(r) + bytes > limit) {
    if (sys::now_ns() >= deadline || !may_wait()) {
      p.limit_failures.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
      return false;
    }
    // acquire: pairs with the release increment in cycle_ended().
    const std::uint32_t seq = p.cycle_seq.load(std::memory_order_acquire);
    if (s.options.background) {
      s.collector->request_cycle();
      wait_for_cycle(seq, deadline);
    } else {
      try {
        s.collector->collect();
      } catch (...) {
        return false;
      }
    }
  }
  return true;
}

void account(ThreadRecord* r, std::size_t bytes) {
  // relaxed stores: totals read by stats() only; this thread is the single writer.
  r->allocated_objects.store(r->allocated_objects.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
  const std::uint64_t total = r->allocated_bytes.load(std::memory_order_relaxed) + bytes;
  r->allocated_bytes.store(total, std::memory_order_relaxed);
  if (total >= r->flush_at) flush_allocation_count(r);
}

void flush(ThreadRecord* r) noexcept { flush_batch(r); }

std::uint64_t allocated_at_cut() noexcept {
  // relaxed: read while every allocating thread is held, whose flushes the handshake
  // ordered before this load.
  return pacing().allocated_since_cycle.load(std::memory_order_relaxed);
}

void cycle_completed(std::uint64_t at_cut, std::uint64_t survivor_bytes,
                     const Options& options) noexcept {
  Pacing& p = pacing();
  // relaxed: counters compared with thresholds; cycle_ended()'s release publishes them to
  // waiters.
  p.survivor_bytes.store(survivor_bytes, std::memory_order_relaxed);
  p.allocated_since_cycle.fetch_sub(
      std::min(at_cut, p.allocated_since_cycle.load(std::memory_order_relaxed)),
      std::memory_order_relaxed);
  const auto by_ratio =
      static_cast<std::uint64_t>(static_cast<double>(survivor_bytes) * options.trigger_ratio);
  p.trigger_threshold.store(std::max<std::uint64_t>(options.trigger_bytes, by_ratio),
                            std::memory_order_relaxed);
}

void cycle_ended(std::int64_t end_ns, std::int64_t interval_ns, bool cheap) noexcept {
  Pacing& p = pacing();
  // relaxed: a deadline that allocating threads compare with the clock.
  p.timed_cycle_ns.store(interval_ns > 0 && cheap ? end_ns + interval_ns : INT64_MAX,
                         std::memory_order_relaxed);
  // release: pairs with the acquire loads in wait_for_cycle(), pace() and admit(); they
  // see the new survivor_bytes and allocated_since_cycle.
  p.cycle_seq.fetch_add(1, std::memory_order_release);
  sys::futex_wake_all(&p.cycle_seq);
}

}  // namespace pacing_rules

}  // namespace cmr::detail
