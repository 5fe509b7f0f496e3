// src/heap/block_lists.hpp: what the heap's files share inside heap/: the region, the block
// table, the heap lock and the lists it guards, and the bitmap helpers. Not for use
// outside src/heap/ (the rest of the runtime goes through heap/blocks.hpp).
//
// The heap lock guards the pool, the adoptable lists, the free spans, the trim round and
// every block without an owner; functions named *_locked expect it held.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "cmr/detail/heap_layout.hpp"
#include "cmr/detail/thread_record.hpp"
#include "heap/blocks.hpp"
#include "heap/region.hpp"
#include "os/poison.hpp"

namespace cmr::detail::blocks {

extern Region g_region;
extern BlockMeta* g_table;
extern std::size_t g_table_bytes;
extern std::uint32_t g_capacity;  // blocks the region can hold

extern std::mutex g_lock;            // the heap lock
extern std::uint32_t g_pool;         // empty blocks, linked through next
extern std::uint32_t g_adoptable[kCursors];
extern std::uint32_t g_free_spans;   // free spans of whole blocks, linked through next
extern std::uint32_t g_trim_round;   // which trim_pool() call is next

inline std::size_t words_of(unsigned cls) noexcept { return (slots_of(cls) + 63) / 64; }

// Bits of word `w` that stand for real slots (the last word of a class may be partial).
inline std::uint64_t valid_mask(unsigned cls, std::size_t w) noexcept {
  const std::size_t n = slots_of(cls);
  const std::size_t first = w * 64;
  return n - first >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (n - first)) - 1;
}

inline bool empty(const BlockMeta& m) noexcept {
  for (std::size_t w = 0; w < words_of(m.cls); ++w)
    // relaxed: read by the writer itself, or under the heap lock for ownerless blocks.
    if (m.alloc[w].load(std::memory_order_relaxed) != 0) return false;
  return true;
}

// Folds freed bits into alloc: alloc first, so that a snapshot taken in between never sees
// a destroyed slot as a candidate again (alloc 1 with freed 0).
inline void fold(BlockMeta& m) noexcept {
  // seq_cst: as the freed words below (release_block sets it, then exchanges `queued`).
  if (m.freed_all.load(std::memory_order_seq_cst) != 0) {
    for (std::size_t w = 0; w < words_of(m.cls); ++w)
      m.alloc[w].store(0, std::memory_order_relaxed);  // relaxed: the owner's own words
    // release: alloc is zero before any observer (a snapshot included) sees the flag clear.
    m.freed_all.store(0, std::memory_order_release);
  }
  for (std::size_t w = 0; w < words_of(m.cls); ++w) {
    // seq_cst: pairs with the collector's seq_cst fetch_or in release_slots (the objects'
    // destruction happens before their slots are reused, invariant 8 of docs/design.md), and, for the
    // returned queue, with the collector's exchange of `queued` (see drain_returned).
    const std::uint64_t f = m.freed[w].load(std::memory_order_seq_cst);
    if (f == 0) continue;
    m.alloc[w].store(m.alloc[w].load(std::memory_order_relaxed) & ~f,
                     std::memory_order_relaxed);
    // release: the alloc store is visible first to any observer, a snapshot included.
    m.freed[w].fetch_and(~f, std::memory_order_release);
  }
}

// Under the heap lock: the release is complete as far as a fork's child can tell.
inline void end_announcement(std::atomic<std::uint32_t>* announced) noexcept {
  // relaxed: the heap lock orders it with the release for a fork, which holds the lock.
  if (announced != nullptr) announced->store(kNoBlock, std::memory_order_relaxed);
}

// Under the heap lock: an ownerless block that still holds objects joins (or leaves) the
// adoptable list of its (class, kind).
void adoptable_push(std::uint32_t b) noexcept;
void adoptable_remove(std::uint32_t b) noexcept;
// Under the heap lock: an empty block with no owner goes to the pool.
void pool_locked(std::uint32_t b) noexcept;
// Under the heap lock: a block record, fresh from the region; kNoBlock when it is full.
std::uint32_t carve_locked() noexcept;

}  // namespace cmr::detail::blocks
