// cmr/detail/thread_record.hpp: the per-thread state that the inline fast paths touch.
//
// Each registered thread owns one ThreadRecord. The guard and make fast paths write only
// their own record and their own blocks' alloc words, with no fence and no
// read-modify-write: the collector reads them only while the thread is paused in the
// handshake handler, and the handler's release store of `acked_round` (src/threads/handshake.cpp)
// is what makes these plain writes visible to it.
//
// Signal safety (invariant 4 of docs/design.md, claimed by src/threads/handshake.cpp): the handler may interrupt any instruction below, so
// every structure is kept readable at every point, the SignalVec way: write the element,
// std::atomic_signal_fence, then publish it (a length, a list head). A compiler fence is
// enough because the reader runs only after this thread entered the handler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/heap_layout.hpp"
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

struct ThreadRecord {
  // ---- written only by the owning thread (the fast paths) ----
  std::atomic<void*>** free_slots = nullptr;  // stack of unused slots of this thread
  std::uint32_t free_count = 0;
  std::uint32_t free_capacity = 0;  // == number of slots owned, so pushes never overflow
  // make() may take its inline path: false with Options::heap_limit (every allocation is
  // admitted) and after shutdown() (make throws). Written at registration and by shutdown.
  std::atomic<bool> fast_make{true};
  std::atomic<SlotBlock*> slot_blocks{nullptr};
  // Totals for stats(); stored (not RMW'd) by the owner, read relaxed by stats(). Bytes are
  // slot bytes: what the objects occupy in the tracked heap.
  std::atomic<std::uint64_t> allocated_objects{0};
  std::atomic<std::uint64_t> allocated_bytes{0};
  std::uint64_t flush_at = 0;  // allocated_bytes at which the next batch is counted globally
  std::uint64_t flushed_bytes = 0;  // allocated_bytes already added to the global count
  // Options::heap_limit, copied at registration (options never change once the runtime
  // runs).
  std::uint64_t heap_limit = 0;
  Cursor cursors[kCursors];

  // ---- the thread's blocks (src/heap/blocks.hpp) ----
  std::uint32_t owned_head = kNoBlock;      // every block this thread owns
  std::uint32_t avail_head[kCursors];       // owned blocks with free slots, per cursor
  // Blocks the collector freed slots in, pushed by the collector, taken by the owner.
  std::atomic<std::uint32_t> returned_head{kNoBlock};

  // ---- handshake (src/threads/handshake.cpp) ----
  alignas(64) std::atomic<std::uint32_t> acked_round{0};
  int tid = 0;

  // ---- under the registry lock ----
  // Where the thread stands. Registered and in-exec threads are threads of the process;
  // exited and vanished records are dropped by the collector before its next pause.
  enum class Presence : std::uint8_t {
    kRegistered,  // held by every handshake
    kInExec,      // inside exec(): never signalled (src/threads/exec_guard.cpp)
    kExited,      // unregistered itself
    kVanished,    // tgkill found no such thread: it ended without unregistering
  };
  Presence presence = Presence::kRegistered;

  ThreadRecord() {
    for (auto& h : avail_head) h = kNoBlock;
  }
};

// The calling thread's record, or null before registration. __thread with initial-exec:
// reading it never allocates, which is what lets the signal handler read it (docs/design.md, pitfalls:
// dynamic TLS may call malloc on first access).
extern __thread ThreadRecord* tls_record __attribute__((tls_model("initial-exec")));

// True after cmr::shutdown(). Written once; the fast paths read it relaxed to refuse new
// guards with a clear error. Never written on a hot path, so the line stays shared-clean.
extern std::atomic<bool> g_shut_down;

// Slow paths (src/threads/registry.cpp).
std::atomic<void*>* acquire_slot_slow();
// acquire_slot() for noexcept callers (Guard::set on a moved-from guard): a failure ends
// the process with a message instead of throwing.
std::atomic<void*>* acquire_slot_or_die(ThreadRecord*& owner) noexcept;
// Registers the calling thread (a thread that writes a Root must be held by every
// handshake); after shutdown() it does nothing, since no cycle runs any more.
void register_root_writer() noexcept;
void release_slot_slow(ThreadRecord* owner, std::atomic<void*>* slot) noexcept;

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

}  // namespace cmr::detail
