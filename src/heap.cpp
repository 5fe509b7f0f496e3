// src/heap.cpp: allocating tracked objects and accounting the bytes that trigger cycles.
//
// Layout: [backing block ... | ObjectHeader (16 B) | payload rounded up to 8 B]. The
// header sits right before the object so the scanner finds an object's extent from its
// address alone. Allocation never makes the object a candidate: make() does that after
// the guard published it, and before the constructor runs (DESIGN invariant 2). Accounting is per thread, flushed to the
// global trigger counter in batches so that make() has no shared write in the common case.
//
// Back-pressure: a thread that has allocated kPaceFactor x the trigger since the last
// completed cycle waits for the collector (one cycle, bounded) at its next flush, so that
// allocation cannot outrun reclamation without limit; and with Options::heap_limit, an
// allocation that would pass the limit waits for cycles to make room, then fails.
#include "heap.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "backing_allocator.hpp"
#include "cmr/detail/duration.hpp"
#include "collector.hpp"
#include "cmr/detail/object.hpp"
#include "state.hpp"
#include "sys.hpp"

namespace cmr::detail {

namespace {

constexpr std::uint64_t kFlushBytes = 64 * 1024;
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
// a cycle: it is the one that would run it.
bool may_wait() {
  RuntimeState& s = rt();
  return s.collector != nullptr && !s.in_forked_child && !s.collector->is_collector_thread();
}

void pace() {
  RuntimeState& s = rt();
  if (!s.options.background || !may_wait()) return;
  // acquire: pairs with the release increment after a cycle.
  const std::uint32_t seq = s.cycle_seq.load(std::memory_order_acquire);
  // relaxed: counters compared with a threshold, as in account().
  if (s.allocated_since_cycle.load(std::memory_order_relaxed) <
      kPaceFactor * s.trigger_threshold.load(std::memory_order_relaxed))
    return;
  s.paced_waits.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  s.collector->request_automatic_cycle();
  wait_for_cycle(seq, sys::now_ns() + kPaceWaitNs);
}

std::uint64_t live_estimate(const ThreadRecord* r) {
  RuntimeState& s = rt();
  // relaxed: an estimate; the limit is documented as approximate by the flush batch.
  return s.survivor_bytes.load(std::memory_order_relaxed) +
         s.allocated_since_cycle.load(std::memory_order_relaxed) + r->pending_bytes;
}

// True when `bytes` more fit under Options::heap_limit, waiting up to max_wait_ns for
// cycles to free memory.
// The caller checked r->heap_limit != 0: with no limit, make() does not come here.
[[gnu::noinline]] bool admit(ThreadRecord* r, std::size_t bytes, std::int64_t max_wait_ns) {
  RuntimeState& s = rt();
  const std::uint64_t limit = r->heap_limit;
  if (live_estimate(r) + bytes <= limit) return true;
  const std::int64_t deadline = sys::deadline_after(std::max<std::int64_t>(max_wait_ns, 0));
  // Flush this thread's batch so the collector sees why it is needed. relaxed: as in
  // account(); the wake-up below carries the ordering.
  s.allocated_since_cycle.fetch_add(r->pending_bytes, std::memory_order_relaxed);
  r->pending_bytes = 0;
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

std::size_t prefix_for(std::size_t align) { return std::max<std::size_t>(align, sizeof(ObjectHeader)); }

void account(ThreadRecord* r, std::size_t bytes) {
  // relaxed stores: totals read by stats() only; this thread is the single writer.
  r->allocated_objects.store(r->allocated_objects.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
  r->allocated_bytes.store(r->allocated_bytes.load(std::memory_order_relaxed) + bytes,
                           std::memory_order_relaxed);
  r->pending_bytes += bytes;
  if (r->pending_bytes >= kFlushBytes) [[unlikely]] {
    std::uint64_t flushed = r->pending_bytes;
    r->pending_bytes = 0;
    RuntimeState& s = rt();
    // relaxed: a counter compared against a threshold; the collector's wake-up futex
    // carries the ordering that matters.
    std::uint64_t total =
        s.allocated_since_cycle.fetch_add(flushed, std::memory_order_relaxed) + flushed;
    const std::uint64_t threshold = s.trigger_threshold.load(std::memory_order_relaxed);
    if (total >= threshold && s.collector != nullptr) s.collector->request_automatic_cycle();
    if (total >= kPaceFactor * threshold) [[unlikely]] pace();
  }
}

// Zeroes [p, p + n) for n a multiple of 8 (a scan span). Small spans, the common case,
// take two possibly overlapping fixed-size stores each, inline; a call to memset with a
// size unknown at compile time costs more than the zeroing itself.
inline void zero_span(char* p, std::size_t n) noexcept {
  if (n <= 16) [[likely]] {
    std::memset(p, 0, 8);
    std::memset(p + n - 8, 0, 8);
  } else if (n <= 32) {
    std::memset(p, 0, 16);
    std::memset(p + n - 16, 0, 16);
  } else if (n <= 64) {
    std::memset(p, 0, 32);
    std::memset(p + n - 32, 0, 32);
  } else {
    std::memset(p, 0, n);
  }
}

void* allocate_impl(const TypeInfo* type, std::size_t count, bool& overflow) noexcept {
  overflow = false;
  // count == 1 (every make()) cannot overflow: type->size is a sizeof. Skips a division.
  if (count > 1 && type->size > (std::size_t{1} << 47) / count) [[unlikely]] {
    overflow = true;
    return nullptr;
  }
  std::size_t bytes = type->size * count;
  std::size_t align = std::max<std::size_t>(type->align, alignof(ObjectHeader));
  std::size_t prefix = prefix_for(align);
  char* block = static_cast<char*>(backing::allocate(prefix + scan_span(bytes), align));
  if (block == nullptr) return nullptr;
#if defined(__SANITIZE_ADDRESS__)
  // Tracked objects are reachable only through the runtime's mmap'd survivor table and
  // logs, which LeakSanitizer does not scan; their lifetime is cmr's to manage (the tests
  // count live_objects), and garbage awaiting a cycle at exit is not a leak.
  __lsan_ignore_object(block);
#endif
  char* object = block + prefix;
  // Recycled memory may hold stale pointer-like words in padding the constructor never
  // writes; the conservative scan would keep their targets (and chains behind them) alive.
  zero_span(object, scan_span(bytes));
  ObjectHeader* h = header_of(object);
  h->bytes = bytes;
  h->type = type;
  return object;
}

// Makes sure the next record_allocation() needs no new log chunk, so that running out of
// memory surfaces here (before construction) rather than after the object was published.
void reserve_log_entry(ThreadRecord* r) {
  // relaxed: only this thread writes log_tail and the tail's len (record_allocation).
  LogChunk* c = r->log_tail.load(std::memory_order_relaxed);
  if (c->len.load(std::memory_order_relaxed) == kLogChunkEntries) [[unlikely]] grow_log(r);
}

// make()'s wait at the limit is Options::limit_wait; reading it needs the runtime state,
// so it stays off the no-limit path.
[[gnu::noinline]] bool admit_for_make(ThreadRecord* r, std::size_t bytes) {
  return admit(r, bytes, saturating_ns(rt().options.limit_wait));
}

}  // namespace

void* allocate_object(const TypeInfo* type, std::size_t count) {
  // relaxed: a one-way flag (thread_record.hpp); a make() racing with shutdown() may pass.
  if (g_shut_down.load(std::memory_order_relaxed)) [[unlikely]]
    throw Error("cmr: make() was called after cmr::shutdown()");
  ThreadRecord* r = tls_record;
  if (r == nullptr) [[unlikely]] r = current_record();
  reserve_log_entry(r);
  if (r->heap_limit != 0 && !admit_for_make(r, type->size * count)) [[unlikely]]
    throw std::bad_alloc();
  bool overflow;
  void* object = allocate_impl(type, count, overflow);
  if (object == nullptr) throw std::bad_alloc();
  account(r, header_of(object)->bytes);
  return object;
}

void* try_allocate_object(const TypeInfo* type, std::size_t count,
                          std::int64_t max_wait_ns) noexcept {
  if (g_shut_down.load(std::memory_order_relaxed)) return nullptr;
  ThreadRecord* r;
  try {
    r = current_record();
    reserve_log_entry(r);
    if (r->heap_limit != 0 && !admit(r, type->size * count, max_wait_ns)) return nullptr;
  } catch (...) {
    return nullptr;
  }
  bool overflow;
  void* object = allocate_impl(type, count, overflow);
  if (object != nullptr) account(r, header_of(object)->bytes);
  return object;
}

// An object whose constructor threw carries this bit in its header's type pointer
// (TypeInfo is word-aligned): it is freed like any garbage, but never destroyed.
constexpr std::uintptr_t kUnbuilt = 1;

static const TypeInfo* type_of(const ObjectHeader* h) noexcept {
  return reinterpret_cast<const TypeInfo*>(reinterpret_cast<std::uintptr_t>(h->type) &
                                           ~kUnbuilt);
}

static void release_block(void* object) noexcept {
  ObjectHeader* h = header_of(object);
  std::size_t align = std::max<std::size_t>(type_of(h)->align, alignof(ObjectHeader));
  std::size_t prefix = prefix_for(align);
  backing::deallocate(static_cast<char*>(object) - prefix, prefix + scan_span(h->bytes),
                      align);
}

void abandon_object(void* object) noexcept {
  ObjectHeader* h = header_of(object);
  // Written by the allocating thread before it drops its guard; the collector reads it
  // only after a later handshake, whose ack (a release store) publishes it.
  h->type = reinterpret_cast<const TypeInfo*>(reinterpret_cast<std::uintptr_t>(h->type) |
                                              kUnbuilt);
}

std::size_t object_bytes(const void* object) noexcept { return header_of(object)->bytes; }

std::size_t free_object(void* object) noexcept {
  ObjectHeader* h = header_of(object);
  std::size_t bytes = h->bytes;
  const bool built = (reinterpret_cast<std::uintptr_t>(h->type) & kUnbuilt) == 0;
  const TypeInfo* type = type_of(h);
  if (built && type->destroy != nullptr) type->destroy(object, bytes / type->size);
  release_block(object);
  return bytes;
}

}  // namespace cmr::detail
