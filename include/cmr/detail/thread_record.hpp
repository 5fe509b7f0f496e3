// cmr/detail/thread_record.hpp: the per-thread state that the inline fast paths touch.
//
// Each registered thread owns one ThreadRecord. The guard and make fast paths write only
// their own record, with no fence and no read-modify-write: the collector reads a record
// only while its thread is paused in the handshake handler, and the handler's release store
// of `acked_epoch` (src/handshake.cpp) is what makes these plain writes visible to it.
//
// Signal safety (DESIGN invariant 4): the handler may interrupt any instruction below, so
// every structure is kept readable at every point, the SignalVec way: write the element,
// std::atomic_signal_fence, then publish it (a length, a list head). A compiler fence is
// enough because the reader runs only after this thread entered the handler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/object.hpp"

namespace cmr::detail {

// Guard slots live in blocks that never move, so a Guard can keep a pointer to its slot.
// Blocks are prepended to ThreadRecord::slot_blocks and freed only when the thread's
// record is destroyed, after the thread unregistered.
inline constexpr std::size_t kSlotsPerBlock = 63;
struct SlotBlock {
  std::atomic<void*> slots[kSlotsPerBlock];
  SlotBlock* next;  // older block; written before the block is published
};

// The allocation log: a chain of chunks the thread appends to, read by the scanner child.
// Only the tail chunk is written; a chunk is linked only when full, so every chunk but the
// tail holds exactly kLogChunkEntries entries. Entries are log_entry() values: the
// object's address, flagged kLargeEntry when it is large (object.hpp).
inline constexpr std::size_t kLogChunkEntries = 4094;
struct LogChunk {
  std::atomic<LogChunk*> next;
  std::atomic<std::size_t> len;
  void* entries[kLogChunkEntries];
};

struct ThreadRecord {
  // ---- written only by the owning thread (the fast path) ----
  std::atomic<void*>** free_slots = nullptr;  // stack of unused slots of this thread
  std::uint32_t free_count = 0;
  std::uint32_t free_capacity = 0;  // == number of slots owned, so pushes never overflow
  std::atomic<LogChunk*> log_tail{nullptr};
  std::atomic<SlotBlock*> slot_blocks{nullptr};
  std::uint64_t pending_bytes = 0;  // allocated, not yet added to the global trigger count
  // Options::heap_limit, copied at registration (options never change once the runtime
  // runs), so that make() needs no call into the runtime state when there is no limit.
  std::uint64_t heap_limit = 0;
  // Totals for stats(); stored (not RMW'd) by the owner, read relaxed by stats().
  std::atomic<std::uint64_t> allocated_objects{0};
  std::atomic<std::uint64_t> allocated_bytes{0};

  // ---- handshake (src/handshake.cpp) ----
  alignas(64) std::atomic<std::uint32_t> acked_epoch{0};
  int tid = 0;

  // ---- collector-owned, under the registry lock ----
  bool alive = true;        // false once the thread unregistered
  bool gone = false;        // tgkill reported the thread no longer exists
  bool detached = false;    // inside exec(): never signalled (src/exec_guard.cpp)
  LogChunk* consumed_chunk = nullptr;  // first log entry not yet covered by a completed cycle
  std::size_t consumed_index = 0;
  LogChunk* cut_chunk = nullptr;  // the in-flight cycle's end of this thread's log
  std::size_t cut_len = 0;
};

// The calling thread's record, or null before registration. __thread with initial-exec:
// reading it never allocates, which is what lets the signal handler read it (DESIGN pitfall:
// dynamic TLS may call malloc on first access).
extern __thread ThreadRecord* tls_record __attribute__((tls_model("initial-exec")));

// True after cmr::shutdown(). Written once; the fast paths read it relaxed to refuse new
// guards with a clear error. Never written on a hot path, so the line stays shared-clean.
extern std::atomic<bool> g_shut_down;

// Slow paths (src/registry.cpp).
std::atomic<void*>* acquire_slot_slow();
// acquire_slot() for noexcept callers (Guard::set on a moved-from guard): a failure ends
// the process with a message instead of throwing.
std::atomic<void*>* acquire_slot_or_die(ThreadRecord*& owner) noexcept;
// Registers the calling thread (a thread that writes a Root must be held by every
// handshake); after shutdown() it does nothing, since no cycle runs any more.
void register_root_writer() noexcept;
void release_slot_slow(ThreadRecord* owner, std::atomic<void*>* slot) noexcept;
LogChunk* grow_log(ThreadRecord* record);

inline std::atomic<void*>* acquire_slot(ThreadRecord*& owner) {
  ThreadRecord* r = tls_record;
  // relaxed: g_shut_down is a one-way flag; a guard created concurrently with shutdown()
  // may win the race, which is harmless (the collector is stopped either way).
  if (r != nullptr && r->free_count != 0 && !g_shut_down.load(std::memory_order_relaxed))
      [[likely]] {
    owner = r;
    return r->free_slots[--r->free_count];
  }
  std::atomic<void*>* s = acquire_slot_slow();
  owner = tls_record;
  return s;
}

inline void release_slot(ThreadRecord* owner, std::atomic<void*>* slot) noexcept {
  // The guard's last dereference must not sink below this store: a handshake landing
  // between them would see an empty slot while the pointer is still in use.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // relaxed: read by the collector only during a pause (ordered by the handler's release).
  slot->store(nullptr, std::memory_order_relaxed);
  ThreadRecord* r = tls_record;
  if (r == owner && r->free_count != r->free_capacity) [[likely]] {
    r->free_slots[r->free_count++] = slot;
    return;
  }
  release_slot_slow(owner, slot);
}

// Records a constructed, already guarded object as a collection candidate (DESIGN
// invariant 2: the caller published it in a guard first).
inline void record_allocation(void* object) {
  ThreadRecord* r = tls_record;
  // relaxed: only this thread writes log_tail and the tail's len.
  LogChunk* c = r->log_tail.load(std::memory_order_relaxed);
  std::size_t n = c->len.load(std::memory_order_relaxed);
  if (n == kLogChunkEntries) [[unlikely]] {
    c = grow_log(r);
    n = 0;
  }
  c->entries[n] = reinterpret_cast<void*>(log_entry(object));
  // SignalVec: the entry is in place before the length covers it; pairs with the collector
  // reading len during the pause.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  c->len.store(n + 1, std::memory_order_relaxed);
}

}  // namespace cmr::detail
