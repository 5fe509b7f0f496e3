// src/heap/blocks.cpp: the tracked heap's blocks and the life of their slots; this file
// holds the region, the block table and the shared lists (owner.cpp: the owner's side;
// release.cpp: the collector's; spans.cpp: large objects; audit.cpp: the tests' check).
//
// Claims invariants 11 and 15 of docs/design.md.
//
// The region is reserved once (MAP_NORESERVE, 2 MiB aligned so that huge pages can back
// it); 64 KiB blocks are carved from it in address order, and their records live in a
// table beside it, mapped the same way. A block is, at any time, in exactly one of these
// places:
//   - owned by a thread: it allocates from it (its cursor) or holds it on its available
//     list (free slots, folded) or nowhere (full); the collector pushes it on the owner's
//     returned queue when it frees slots in it;
//   - adoptable: its owner exited and it still holds objects; an allocating thread of the
//     same class and kind takes it over;
//   - pooled: empty, bitmaps zero, any thread may take it for any class;
//   - part of a large object's span, or of a free span.
// Who writes what (invariants 6 and 8 of docs/design.md rest on this):
//   alloc  the owner (take, fold, give_back); for a block without an owner, whoever holds
//          the heap lock (exit, the collector's release, adoption hands it to a new owner)
//   freed  the collector sets bits (after the objects' destructors ran), the owner clears
//          them when it folds them into alloc: alloc first, then freed
// A block's class changes only when it is empty; a slot found garbage keeps its alloc bit
// until the collector releases it, so the block cannot become empty (and change class)
// between a cycle's cut and that cycle's release.
// The heap lock is never taken by the collector while threads are held, nor by the
// handshake handler; the owner's fast path takes no lock.
#include "heap/blocks.hpp"

#include <sys/mman.h>

#include <atomic>
#include <mutex>
#include <new>
#include <string>

#include "cmr/runtime.hpp"
#include "heap/block_lists.hpp"
#include "os/sys.hpp"

namespace cmr::detail::blocks {

namespace {
// The region's first bytes are kept on small pages (see Region::reserve): blocks are carved
// in address order, so a heap this small never touches a huge page.
constexpr std::size_t kSmallPagePrefix = std::size_t{8} << 20;
}  // namespace

Region g_region;
BlockMeta* g_table = nullptr;
std::size_t g_table_bytes = 0;
std::uint32_t g_capacity = 0;

std::mutex g_lock;
std::uint32_t g_pool = kNoBlock;
std::uint32_t g_adoptable[kCursors];
std::uint32_t g_free_spans = kNoBlock;
std::uint32_t g_trim_round = 1;

// Under the heap lock: the lists of orphaned blocks that still hold objects, one per
// (class, kind), doubly linked so that a block the collector empties leaves at once.
void adoptable_push(std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  const unsigned idx = cursor_index(m.cls, m.typed != 0);
  m.in_adoptable = 1;
  m.prev_adoptable = kNoBlock;
  m.next_adoptable = g_adoptable[idx];
  if (g_adoptable[idx] != kNoBlock) meta(g_adoptable[idx]).prev_adoptable = b;
  g_adoptable[idx] = b;
}

void adoptable_remove(std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  if (!m.in_adoptable) return;
  const unsigned idx = cursor_index(m.cls, m.typed != 0);
  if (m.prev_adoptable != kNoBlock) meta(m.prev_adoptable).next_adoptable = m.next_adoptable;
  else g_adoptable[idx] = m.next_adoptable;
  if (m.next_adoptable != kNoBlock) meta(m.next_adoptable).prev_adoptable = m.prev_adoptable;
  m.next_adoptable = m.prev_adoptable = kNoBlock;
  m.in_adoptable = 0;
}

// Under the heap lock: an empty block with no owner goes to the pool.
void pool_locked(std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  m.owner = nullptr;
  m.decommitted = 0;
  m.pooled_round = g_trim_round;
  // relaxed: the child reads the table as of the cut; the bitmaps are already zero, so
  // either state is harmless to it.
  m.state.store(kBlockFree, std::memory_order_relaxed);
  m.next = g_pool;
  g_pool = b;
}

// Under the heap lock: a block record, fresh from the region, as the table needs it.
std::uint32_t carve_locked() noexcept {
  void* p = g_region.take(kBlockBytes, kBlockBytes);
  if (p == nullptr) return kNoBlock;
  const std::uint32_t b = block_of(p);
  new (&g_table[b]) BlockMeta();
  poison(p, kBlockBytes);
  return b;
}

void init(std::size_t reserve_bytes, bool huge_pages) {
  if (g_table != nullptr) return;  // an earlier init() got this far, then failed later
  g_region.reserve(reserve_bytes, std::size_t{2} << 20, huge_pages, kSmallPagePrefix);
  g_capacity = static_cast<std::uint32_t>(g_region.size() >> kBlockShift);
  g_table_bytes = std::size_t{g_capacity} * sizeof(BlockMeta);
  void* t = sys::map_fenced(g_table_bytes);  // the scanner child reads it: never merged
  if (t == nullptr)
    throw Error("cmr: cannot map the tracked heap's block table (" +
                std::to_string(g_table_bytes >> 20) + " MiB of address space)");
  for (auto& a : g_adoptable) a = kNoBlock;
  g_table = static_cast<BlockMeta*>(t);
}

bool initialised() noexcept { return g_table != nullptr; }

HeapRange range() noexcept {
  return {g_region.base(), g_region.size(), g_table, g_table_bytes};
}

std::uint32_t carved() noexcept {
  return static_cast<std::uint32_t>((g_region.next() - g_region.base()) >> kBlockShift);
}

BlockMeta& meta(std::uint32_t block) noexcept { return g_table[block]; }

char* block_base(std::uint32_t block) noexcept {
  return reinterpret_cast<char*>(g_region.base() + (std::uintptr_t{block} << kBlockShift));
}

std::uint32_t block_of(const void* p) noexcept {
  return static_cast<std::uint32_t>((reinterpret_cast<std::uintptr_t>(p) - g_region.base()) >>
                                    kBlockShift);
}

void before_fork() noexcept { g_lock.lock(); }
void after_fork_parent() noexcept { g_lock.unlock(); }
void after_fork_child() noexcept { new (&g_lock) std::mutex(); }

}  // namespace cmr::detail::blocks
