// src/heap.cpp: the slow paths of allocation, and the accounting that triggers cycles.
//
// make()'s inline path (cmr/make.hpp) takes a slot from the calling thread's current block;
// everything else comes here: registration, shutdown, Options::heap_limit, arrays, large
// objects, a cursor out of slots (blocks.cpp refills it). Allocation never makes the slot
// a candidate: make() commits it after the guard published it, and before the constructor
// runs (DESIGN invariant 2).
//
// Accounting is per thread (allocated_objects/bytes, in slot bytes), added to the global
// trigger count in batches of kFlushBytes (16 KiB) so that make() has no shared write in the
// common case. Back-pressure: a thread that has allocated kPaceFactor x the trigger since the
// last completed cycle waits for the collector (one cycle, bounded) at its next flush, so
// that allocation cannot outrun reclamation without limit; and with Options::heap_limit,
// an allocation that would pass the limit waits for cycles to make room, then fails.
#include "heap.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "blocks.hpp"
#include "handshake.hpp"
#include "cmr/detail/duration.hpp"
#include "cmr/detail/heap_layout.hpp"
#include "collector.hpp"
#include "state.hpp"
#include "sys.hpp"

namespace cmr::detail {

namespace {

// Fine enough for the collector's timed trigger to see a slowly allocating thread's bytes;
// one shared atomic add per 16 KiB costs nothing measurable.
constexpr std::uint64_t kFlushBytes = 16 * 1024;
constexpr std::uint64_t kPaceFactor = 4;
constexpr std::int64_t kPaceWaitNs = 100'000'000;  // never stall a thread longer per flush

// Sleeps until a cycle attempt after `seq` ends, or `deadline_ns` passes.
void wait_for_cycle(std::uint32_t seq, std::int64_t deadline_ns) {
  RuntimeState& s = rt();
  const std::int64_t left = deadline_ns - sys::now_ns();
  // acquire: pairs with the release increment after a cycle; its counters are visible.
  if (left > 0 && s.cycle_seq.load(std::memory_order_acquire) == seq)
    sys::futex_wait(&s.cycle_seq, seq, left);
}

// The collector thread (freeing garbage, whose destructor allocated) must never wait for
// a cycle: it is the one that would run it. Nor may a thread that has cmr's signal
// blocked (a critical section of the program's, a handler): the cycle could not hold it,
// and would wait for it until the handshake timed out.
bool may_wait() {
  RuntimeState& s = rt();
  return s.collector != nullptr && !must_rebuild() && !s.collector->is_collector_thread() &&
         !handshake::blocked_in_this_thread();
}

void pace() {
  RuntimeState& s = rt();
  if (!s.options.background) return;
  // acquire: pairs with the release increment after a cycle.
  const std::uint32_t seq = s.cycle_seq.load(std::memory_order_acquire);
  // relaxed: counters compared with a threshold, as in flush_allocation_count().
  if (s.allocated_since_cycle.load(std::memory_order_relaxed) <
      kPaceFactor * s.trigger_threshold.load(std::memory_order_relaxed))
    return;
  if (!may_wait()) return;  // last: it asks the kernel for this thread's signal mask
  s.paced_waits.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  s.collector->request_automatic_cycle();
  wait_for_cycle(seq, sys::now_ns() + kPaceWaitNs);
}

std::uint64_t unflushed(const ThreadRecord* r) {
  // relaxed: this thread is the only writer of its own total.
  return r->allocated_bytes.load(std::memory_order_relaxed) - r->flushed_bytes;
}

std::uint64_t live_estimate(const ThreadRecord* r) {
  RuntimeState& s = rt();
  // relaxed: an estimate; the limit is documented as approximate by the flush batch.
  return s.survivor_bytes.load(std::memory_order_relaxed) +
         s.allocated_since_cycle.load(std::memory_order_relaxed) + unflushed(r);
}

// Adds this thread's unflushed bytes to the global count. Returns the new global count.
std::uint64_t flush(ThreadRecord* r) {
  const std::uint64_t total = r->allocated_bytes.load(std::memory_order_relaxed);
  const std::uint64_t batch = total - r->flushed_bytes;
  r->flushed_bytes = total;
  r->flush_at = total + kFlushBytes;
  // relaxed: a counter compared against a threshold; the collector's wake-up futex
  // carries the ordering that matters.
  return rt().allocated_since_cycle.fetch_add(batch, std::memory_order_relaxed) + batch;
}

// True when `bytes` more fit under Options::heap_limit, waiting up to max_wait_ns for
// cycles to free memory. The caller checked r->heap_limit != 0.
bool admit(ThreadRecord* r, std::size_t bytes, std::int64_t max_wait_ns) {
  RuntimeState& s = rt();
  const std::uint64_t limit = r->heap_limit;
  if (live_estimate(r) + bytes <= limit) return true;
  const std::int64_t deadline = sys::deadline_after(std::max<std::int64_t>(max_wait_ns, 0));
  flush(r);  // so that the collector sees why it is needed
  while (live_estimate(r) + bytes > limit) {
    if (sys::now_ns() >= deadline || !may_wait()) {
      s.limit_failures.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
      return false;
    }
    // acquire: pairs with the release increment after a cycle (collector.cpp).
    const std::uint32_t seq = s.cycle_seq.load(std::memory_order_acquire);
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

enum class Failure { kNone, kShutDown, kNoMemory, kLimit };

// The slot for `count` objects of `type`, zeroed; out.header says where seal() writes the
// type once the object is built (when the type has a destructor).
Failure take(const TypeInfo* type, std::size_t count, std::int64_t max_wait_ns, Slot& out) {
  // relaxed: a one-way flag (thread_record.hpp); a make() racing with shutdown() may pass.
  if (g_shut_down.load(std::memory_order_relaxed)) return Failure::kShutDown;
  if (must_rebuild()) [[unlikely]] rebuild_after_fork();  // the child of a fork()
  ThreadRecord* r = current_record();
  if (count > 1 && type->size > (std::size_t{1} << 46) / count) return Failure::kNoMemory;
  const bool typed = type->destroy != nullptr;
  const std::size_t bytes = type->size * count;
  const std::size_t align = std::max<std::size_t>(type->align, typed ? alignof(TypeHeader) : 1);
  const std::size_t prefix = typed ? typed_prefix(type->align) : 0;
  const unsigned cls = class_for(prefix + bytes, align);
  const std::size_t slot_bytes = cls == kLargeClass
                                     ? (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes
                                     : kClassBytes[cls];
  if (r->heap_limit != 0 && !admit(r, slot_bytes, max_wait_ns)) return Failure::kLimit;
  if (cls == kLargeClass) {
    if (!blocks::allocate_large(bytes, type->align, typed, out))
      return Failure::kNoMemory;
    account(r, slot_bytes);
    return Failure::kNone;
  }
  Cursor& c = r->cursors[cursor_index(cls, typed)];
  for (;;) {
    // take_from<> wants the class at compile time; the slow path computes the slot itself.
    if (c.free != 0) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(c.free));
      c.free &= c.free - 1;
      out.memory = c.base + std::size_t{i} * kClassBytes[cls];
      out.word = c.word;
      out.bit = std::uint64_t{1} << i;
      break;
    }
    if (!blocks::refill(r, cls, typed)) return Failure::kNoMemory;
  }
  account(r, slot_bytes);
#if defined(__SANITIZE_ADDRESS__)
  __asan_unpoison_memory_region(out.memory, slot_bytes);
#endif
  std::memset(out.memory, 0, slot_bytes);
  out.header = nullptr;
  if (typed) {
    out.header = static_cast<TypeHeader*>(out.memory);  // written by seal(), once built
    out.memory = static_cast<char*>(out.memory) + prefix;
  }
  return Failure::kNone;
}

}  // namespace

void flush_allocation_count(ThreadRecord* r) {
  RuntimeState& s = rt();
  if (must_rebuild()) [[unlikely]] {  // the child of a fork(): its collector first
    try {
      rebuild_after_fork();
    } catch (...) {
      return;  // no collector thread could be started: counted again at the next flush
    }
  }
  const std::uint64_t total = flush(r);
  const std::uint64_t threshold = s.trigger_threshold.load(std::memory_order_relaxed);
  // relaxed: a deadline compared with the clock; the wake-up carries the ordering.
  if ((total >= threshold || sys::now_ns() >= s.timed_cycle_ns.load(std::memory_order_relaxed)) &&
      s.collector != nullptr)
    s.collector->request_automatic_cycle();
  if (total >= kPaceFactor * threshold) [[unlikely]] pace();
}

void allocate_slow(const TypeInfo* type, std::size_t count, Slot& out) {
  switch (take(type, count, saturating_ns(rt().options.limit_wait), out)) {
    case Failure::kNone:
      return;
    case Failure::kShutDown:
      throw Error("cmr: make() was called after cmr::shutdown()");
    case Failure::kNoMemory:
    case Failure::kLimit:
      throw std::bad_alloc();
  }
}

bool try_allocate_slow(const TypeInfo* type, std::size_t count, std::int64_t max_wait_ns,
                       Slot& out) noexcept {
  try {
    return take(type, count, max_wait_ns, out) == Failure::kNone;
  } catch (...) {
    return false;  // registration failed
  }
}

void abandon(const Slot& slot) noexcept {
  const std::size_t bytes = blocks::give_back(slot);
  // The object never existed for stats(): this thread's totals forget it (its bytes stay
  // in the trigger count, which only decides when a cycle runs).
  ThreadRecord* r = tls_record;
  r->allocated_objects.store(r->allocated_objects.load(std::memory_order_relaxed) - 1,
                             std::memory_order_relaxed);
  const std::uint64_t total = r->allocated_bytes.load(std::memory_order_relaxed) - bytes;
  r->allocated_bytes.store(total, std::memory_order_relaxed);
  r->flushed_bytes = std::min(r->flushed_bytes, total);
}

void heap_thread_exit(ThreadRecord* r) noexcept {
  flush(r);
  blocks::thread_exit(r);
}

}  // namespace cmr::detail
