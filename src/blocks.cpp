// src/blocks.cpp: the tracked heap's blocks and the life of their slots.
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
// Who writes what (DESIGN invariants 6 and 8 rest on this):
//   alloc  the owner (take, fold, give_back); for a block without an owner, whoever holds
//          the heap lock (exit, the collector's release, adoption hands it to a new owner)
//   freed  the collector sets bits (after the objects' destructors ran), the owner clears
//          them when it folds them into alloc: alloc first, then freed
// A block's class changes only when it is empty; a slot found garbage keeps its alloc bit
// until the collector releases it, so the block cannot become empty (and change class)
// between a cycle's cut and that cycle's release.
// The heap lock is never taken by the collector while threads are held, nor by the
// handshake handler; the owner's fast path takes no lock.
#include "blocks.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "cmr/detail/hooks.hpp"
#include "cmr/runtime.hpp"
#include "region.hpp"
#include "sys.hpp"

namespace cmr::detail::blocks {

namespace {

// The region's first bytes are kept on small pages (see Region::reserve): blocks are carved
// in address order, so a heap this small never touches a huge page.
constexpr std::size_t kSmallPagePrefix = std::size_t{8} << 20;

Region g_region;
BlockMeta* g_table = nullptr;
std::size_t g_table_bytes = 0;
std::uint32_t g_capacity = 0;  // blocks the region can hold

std::mutex g_lock;  // the heap lock: pool, adoptable lists, free spans, ownerless blocks
std::uint32_t g_pool = kNoBlock;  // empty blocks, linked through next
std::uint32_t g_adoptable[kCursors];
std::uint32_t g_free_spans = kNoBlock;  // free spans of whole blocks, linked through next

void poison(void* p, std::size_t n) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  __asan_poison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

void unpoison(void* p, std::size_t n) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  __asan_unpoison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

inline std::size_t words_of(unsigned cls) noexcept { return (slots_of(cls) + 63) / 64; }

// Bits of word `w` that stand for real slots (the last word of a class may be partial).
inline std::uint64_t valid_mask(unsigned cls, std::size_t w) noexcept {
  const std::size_t n = slots_of(cls);
  const std::size_t first = w * 64;
  return n - first >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (n - first)) - 1;
}

bool empty(const BlockMeta& m) noexcept {
  for (std::size_t w = 0; w < words_of(m.cls); ++w)
    // relaxed: read by the writer itself, or under the heap lock for ownerless blocks.
    if (m.alloc[w].load(std::memory_order_relaxed) != 0) return false;
  return true;
}

// Folds freed bits into alloc: alloc first, so that a snapshot taken in between never sees
// a destroyed slot as a candidate again (alloc 1 with freed 0).
void fold(BlockMeta& m) noexcept {
  // seq_cst: as the freed words below (release_block sets it, then exchanges `queued`).
  if (m.freed_all.load(std::memory_order_seq_cst) != 0) {
    for (std::size_t w = 0; w < words_of(m.cls); ++w)
      m.alloc[w].store(0, std::memory_order_relaxed);  // relaxed: the owner's own words
    // release: alloc is zero before any observer (a snapshot included) sees the flag clear.
    m.freed_all.store(0, std::memory_order_release);
  }
  for (std::size_t w = 0; w < words_of(m.cls); ++w) {
    // seq_cst: pairs with the collector's seq_cst fetch_or in release_slots (the objects'
    // destruction happens before their slots are reused, invariant 8), and, for the
    // returned queue, with the collector's exchange of `queued` (see drain_returned).
    const std::uint64_t f = m.freed[w].load(std::memory_order_seq_cst);
    if (f == 0) continue;
    m.alloc[w].store(m.alloc[w].load(std::memory_order_relaxed) & ~f,
                     std::memory_order_relaxed);
    // release: the alloc store is visible first to any observer, a snapshot included.
    m.freed[w].fetch_and(~f, std::memory_order_release);
  }
}

// ---- the owner's lists (owner-private) -----------------------------------------------

void link_owned(ThreadRecord* r, std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  m.prev_owned = kNoBlock;
  m.next_owned = r->owned_head;
  if (r->owned_head != kNoBlock) meta(r->owned_head).prev_owned = b;
  r->owned_head = b;
}

void unlink_owned(ThreadRecord* r, std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  if (m.prev_owned != kNoBlock) meta(m.prev_owned).next_owned = m.next_owned;
  else r->owned_head = m.next_owned;
  if (m.next_owned != kNoBlock) meta(m.next_owned).prev_owned = m.prev_owned;
  m.next_owned = m.prev_owned = kNoBlock;
}

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

std::uint32_t g_trim_epoch = 1;  // under the heap lock: which trim_pool() call is next

// Under the heap lock: an empty block with no owner goes to the pool.
void pool_locked(std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  m.owner = nullptr;
  m.decommitted = 0;
  m.pooled_epoch = g_trim_epoch;
  // relaxed: the child reads the table as of the cut; the bitmaps are already zero, so
  // either state is harmless to it.
  m.state.store(kBlockFree, std::memory_order_relaxed);
  m.next = g_pool;
  g_pool = b;
}

// The owner gives an empty block back to the pool. Decided under the heap lock, which the
// collector holds from its freed-bit update to its push: a block the collector queued
// again after this thread dequeued it (its fold may already have seen those bits, and
// found it empty) stays owned, and the next drain pools it. A pooled block is never on a
// returned queue.
void release_empty(ThreadRecord* r, std::uint32_t b) noexcept {
  std::lock_guard lock(g_lock);
  // relaxed: under the heap lock, which orders it with release_slots' exchange.
  if (meta(b).queued.load(std::memory_order_relaxed) != 0) return;
  unlink_owned(r, b);
  pool_locked(b);
}

// After a fold: where the block goes next.
void classify(ThreadRecord* r, std::uint32_t b) noexcept {
  BlockMeta& m = meta(b);
  const unsigned idx = cursor_index(m.cls, m.typed != 0);
  Cursor& c = r->cursors[idx];
  if (c.block == b) {
    c.next_word = 0;  // its cursor looks at every word again
    return;
  }
  if (m.in_avail) return;  // already listed, empty or not
  if (empty(m)) {
    release_empty(r, b);
    return;
  }
  m.in_avail = 1;
  m.next = r->avail_head[idx];
  r->avail_head[idx] = b;
}

// Takes every block the collector returned slots in, folds it and lists it.
void drain_returned(ThreadRecord* r) noexcept {
  // acquire: pairs with the release CAS in push_returned; the blocks' next_returned links
  // written before the push are visible.
  std::uint32_t b = r->returned_head.exchange(kNoBlock, std::memory_order_acquire);
  while (b != kNoBlock) {
    BlockMeta& m = meta(b);
    const std::uint32_t next = m.next_returned;
    // seq_cst, before the fold reads `freed`: pairs with release_slots, which sets freed
    // bits and then exchanges `queued`. The fold sees those bits, or the collector sees
    // queued == 0 and pushes the block again, or both (then the block is on the queue once
    // more, and release_empty keeps it): no freed slot is stranded.
    m.queued.store(0, std::memory_order_seq_cst);
    CMR_DETAIL_HOOK_IN_LIBRARY(heap_dequeued);
    fold(m);
    classify(r, b);
    b = next;
  }
}

std::uint32_t pop_avail(ThreadRecord* r, unsigned idx) noexcept {
  const std::uint32_t b = r->avail_head[idx];
  if (b != kNoBlock) {
    BlockMeta& m = meta(b);
    r->avail_head[idx] = m.next;
    m.in_avail = 0;
  }
  return b;
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

// A block for (cls, typed): adopted, pooled or fresh. Under the heap lock.
std::uint32_t acquire_block(ThreadRecord* r, unsigned cls, bool typed) noexcept {
  const unsigned idx = cursor_index(cls, typed);
  std::lock_guard lock(g_lock);
  if (const std::uint32_t b = g_adoptable[idx]; b != kNoBlock) {
    adoptable_remove(b);
    meta(b).owner = r;
    link_owned(r, b);
    return b;
  }
  std::uint32_t b = g_pool;
  if (b != kNoBlock) {
    g_pool = meta(b).next;
  } else {
    b = carve_locked();
    if (b == kNoBlock) return kNoBlock;
  }
  BlockMeta& m = meta(b);
  m.cls = static_cast<std::uint8_t>(cls);
  m.typed = typed ? 1 : 0;
  m.owner = r;
  m.next = kNoBlock;
  // The class is in place before the state says the block is in use (the child reads the
  // table as of the cut; the signal fence keeps the compiler's order, the ack the CPU's).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  m.state.store(kBlockSmall, std::memory_order_relaxed);  // relaxed: see pool_locked
  link_owned(r, b);
  return b;
}

// Moves the cursor to the next word of its block that has free slots.
bool next_word(Cursor& c, unsigned cls) noexcept {
  BlockMeta& m = meta(c.block);
  const std::size_t n = words_of(cls);
  for (std::size_t w = c.next_word; w < n; ++w) {
    // relaxed: only this thread writes the alloc words of its blocks.
    const std::uint64_t f = ~m.alloc[w].load(std::memory_order_relaxed) & valid_mask(cls, w);
    if (f != 0) {
      c.free = f;
      c.word = &m.alloc[w];
      c.base = block_base(c.block) + w * 64 * kClassBytes[cls];
      c.next_word = static_cast<std::uint32_t>(w + 1);
      return true;
    }
  }
  c.next_word = static_cast<std::uint32_t>(n);
  return false;
}

// Under the heap lock: takes `n` contiguous blocks aligned to `align` bytes, from a free
// span when one is large enough (the rest stays free), else from the region.
std::uint32_t take_span_locked(std::uint32_t n, std::size_t align) noexcept {
  if (align < kBlockBytes) align = kBlockBytes;
  if (n == 1 && g_pool != kNoBlock) {  // an empty block serves a one-block span
    const std::uint32_t b = g_pool;
    g_pool = meta(b).next;
    return b;
  }
  std::uint32_t* link = &g_free_spans;
  while (*link != kNoBlock) {
    const std::uint32_t b = *link;
    BlockMeta& m = meta(b);
    if (m.span >= n && reinterpret_cast<std::uintptr_t>(block_base(b)) % align == 0) {
      *link = m.next;
      if (m.span > n) {  // the remainder stays a free span
        const std::uint32_t rest = b + n;
        BlockMeta& r = meta(rest);
        r.span = m.span - n;
        r.next = g_free_spans;
        g_free_spans = rest;
      }
      return b;
    }
    link = &m.next;
  }
  void* p = g_region.take(n * kBlockBytes, align);
  if (p == nullptr) return kNoBlock;
  const std::uint32_t b = block_of(p);
  for (std::uint32_t i = 0; i < n; ++i) new (&g_table[b + i]) BlockMeta();
  return b;
}

}  // namespace

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

bool refill(ThreadRecord* r, unsigned cls, bool typed) noexcept {
  const unsigned idx = cursor_index(cls, typed);
  Cursor& c = r->cursors[idx];
  for (;;) {
    if (c.block != kNoBlock && next_word(c, cls)) return true;
    c.block = kNoBlock;  // full: it stays owned, and frees in it come back through the queue
    std::uint32_t b = pop_avail(r, idx);
    if (b == kNoBlock) {
      drain_returned(r);
      b = pop_avail(r, idx);
    }
    if (b == kNoBlock) b = acquire_block(r, cls, typed);
    if (b == kNoBlock) return false;
    c.block = b;
    c.next_word = 0;
  }
}

std::size_t give_back(const Slot& s) noexcept {
  const std::uint32_t b = block_of(s.memory);
  BlockMeta& m = meta(b);
  if (m.state.load(std::memory_order_relaxed) == kBlockLarge) {  // relaxed: our own span
    const std::size_t bytes = std::size_t{m.span} * kBlockBytes;
    // Not a candidate once its bit is clear; no one else can reach the span.
    s.word->store(0, std::memory_order_relaxed);  // relaxed: see commit()
    std::atomic_signal_fence(std::memory_order_seq_cst);
    release_large(b, nullptr);
    return bytes;
  }
  // relaxed: the owner's own word (see commit()).
  s.word->store(s.word->load(std::memory_order_relaxed) & ~s.bit, std::memory_order_relaxed);
  const std::size_t size = kClassBytes[m.cls];
  const std::size_t offset = static_cast<std::size_t>(static_cast<char*>(s.memory) - block_base(b));
  poison(block_base(b) + offset / size * size, size);
  // Free again now: back into the cursor's word if it is the current one, else the block
  // is looked at again (the cursor has moved past it, and no cycle will list it).
  ThreadRecord* r = tls_record;
  Cursor& c = r->cursors[cursor_index(m.cls, m.typed != 0)];
  if (c.word == s.word) c.free |= s.bit;
  else classify(r, b);
  return size;
}

void thread_exit(ThreadRecord* r) noexcept {
  std::lock_guard lock(g_lock);
  for (std::uint32_t b = r->owned_head; b != kNoBlock;) {
    BlockMeta& m = meta(b);
    const std::uint32_t next = m.next_owned;
    m.next_owned = m.prev_owned = kNoBlock;
    m.owner = nullptr;
    m.in_avail = 0;
    m.queued.store(0, std::memory_order_relaxed);  // relaxed: under the heap lock, as release_slots
    fold(m);
    if (empty(m)) pool_locked(b);
    else adoptable_push(b);
    b = next;
  }
  r->owned_head = kNoBlock;
  for (auto& h : r->avail_head) h = kNoBlock;
  for (auto& c : r->cursors) c = Cursor{};
  r->returned_head.store(kNoBlock, std::memory_order_relaxed);  // relaxed: see above
}

bool allocate_large(std::size_t bytes, std::size_t align, bool typed, Slot& out) noexcept {
  const std::size_t blocks_needed = (bytes + kBlockBytes - 1) / kBlockBytes;
  if (blocks_needed == 0 || blocks_needed > g_capacity) return false;
  const auto n = static_cast<std::uint32_t>(blocks_needed);
  std::uint32_t b;
  {
    std::lock_guard lock(g_lock);
    b = take_span_locked(n, align);
    if (b == kNoBlock) return false;
    for (std::uint32_t i = 1; i < n; ++i) {
      BlockMeta& t = meta(b + i);
      t.span = i;
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the distance before the state
      t.state.store(kBlockLargeTail, std::memory_order_relaxed);  // relaxed: see pool_locked
    }
    BlockMeta& h = meta(b);
    h.span = n;
    h.large_bytes = bytes;
    h.large = TypeHeader{nullptr, 0};  // written by seal(), once the object is built
    h.owner = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);  // sized before it is in use
    h.state.store(kBlockLarge, std::memory_order_relaxed);
  }
  // Fresh from the region or returned with MADV_DONTNEED: the span reads as zeros.
  unpoison(block_base(b), bytes);
  out.memory = block_base(b);
  out.word = &meta(b).alloc[0];
  out.bit = 1;
  out.header = typed ? &meta(b).large : nullptr;
  return true;
}

namespace {
// Under the heap lock: the freed words or flag are set; hands the block to its owner's
// returned queue (if not already there).
void push_returned_locked(ThreadRecord* owner, std::uint32_t block) noexcept {
  BlockMeta& m = meta(block);
  // seq_cst: pairs with the owner's store of queued = 0 in drain_returned.
  if (m.queued.exchange(1, std::memory_order_seq_cst) != 0) return;
  // relaxed load: only this thread (under the heap lock) pushes; the CAS below orders.
  std::uint32_t head = owner->returned_head.load(std::memory_order_relaxed);
  do {
    m.next_returned = head;
    // release: pairs with the acquire exchange in drain_returned (next_returned is set).
  } while (!owner->returned_head.compare_exchange_weak(head, block, std::memory_order_release,
                                                        std::memory_order_relaxed));
}

// Under the heap lock: the release is complete as far as a fork's child can tell.
void end_announcement(std::atomic<std::uint32_t>* announced) noexcept {
  // relaxed: the heap lock orders it with the release for a fork, which holds the lock.
  if (announced != nullptr) announced->store(kNoBlock, std::memory_order_relaxed);
}
}  // namespace

void release_slots(std::uint32_t block, const FreedWord* words, std::size_t n,
                   std::atomic<std::uint32_t>* announced) noexcept {
  BlockMeta& m = meta(block);
  std::lock_guard lock(g_lock);
  end_announcement(announced);
  ThreadRecord* owner = m.owner;
  if (owner == nullptr) {  // its thread exited: fold here, under the lock
    for (std::size_t i = 0; i < n; ++i)
      m.alloc[words[i].word].store(
          m.alloc[words[i].word].load(std::memory_order_relaxed) & ~words[i].bits,
          std::memory_order_relaxed);  // relaxed: ownerless blocks are written under the lock
    if (empty(m)) {
      adoptable_remove(block);
      pool_locked(block);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    // seq_cst: pairs with the owner's seq_cst load in fold (the destructors ran before the
    // slot can be reused), and orders before the exchange of `queued`.
    m.freed[words[i].word].fetch_or(words[i].bits, std::memory_order_seq_cst);
  push_returned_locked(owner, block);
}

void release_block(std::uint32_t block, std::atomic<std::uint32_t>* announced) noexcept {
  BlockMeta& m = meta(block);
  std::lock_guard lock(g_lock);
  end_announcement(announced);
  if (m.owner == nullptr) {  // its thread exited: it is empty now
    for (std::size_t w = 0; w < words_of(m.cls); ++w)
      m.alloc[w].store(0, std::memory_order_relaxed);  // relaxed: under the heap lock
    adoptable_remove(block);
    pool_locked(block);
    return;
  }
  // seq_cst: pairs with the owner's seq_cst load in fold (the destructors ran before the
  // slots can be reused), and orders before the exchange of `queued`.
  m.freed_all.store(1, std::memory_order_seq_cst);
  push_returned_locked(m.owner, block);
}

void release_large(std::uint32_t head, std::atomic<std::uint32_t>* announced) noexcept {
  BlockMeta& h = meta(head);
  const std::uint32_t n = h.span;
  char* base = block_base(head);
  // The span's pages go back to the kernel: it reads as zeros when it is reused.
  ::madvise(base, std::size_t{n} * kBlockBytes, MADV_DONTNEED);
  poison(base, std::size_t{n} * kBlockBytes);
  std::lock_guard lock(g_lock);
  end_announcement(announced);
  // relaxed: the state first (the child then ignores the span), then the word.
  h.state.store(kBlockFree, std::memory_order_relaxed);
  for (std::uint32_t i = 1; i < n; ++i) meta(head + i).state.store(kBlockFree, std::memory_order_relaxed);
  h.alloc[0].store(0, std::memory_order_relaxed);
  h.freed[0].store(0, std::memory_order_relaxed);
  h.large = TypeHeader{nullptr, 0};
  if (n == 1) {
    h.owner = nullptr;
    h.next = g_pool;
    g_pool = head;
    return;
  }
  h.span = n;
  h.next = g_free_spans;
  g_free_spans = head;
}

std::string audit(ThreadRecord* const* owners, std::size_t count) {
  std::lock_guard lock(g_lock);
  const std::uint32_t n = carved();
  std::vector<char> where(n, 0);  // 0 nowhere, 1 pool, 2 adoptable, 3 owned, 4 large/free span
  auto say = [](const char* what, std::uint32_t b) {
    return std::string(what) + " (block " + std::to_string(b) + ")";
  };
  auto bits_zero = [](const BlockMeta& m) {
    for (std::size_t w = 0; w < kBitmapWords; ++w)
      if (m.alloc[w].load(std::memory_order_relaxed) != 0 ||
          m.freed[w].load(std::memory_order_relaxed) != 0)
        return false;
    return true;
  };
  std::size_t steps = 0;
  for (std::uint32_t b = g_pool; b != kNoBlock; b = meta(b).next) {
    if (b >= n || ++steps > n) return say("the pool runs outside the table or loops", b);
    const BlockMeta& m = meta(b);
    if (where[b] != 0) return say("a block is pooled twice", b);
    where[b] = 1;
    if (m.state.load(std::memory_order_relaxed) != kBlockFree || m.owner != nullptr)
      return say("a pooled block is in use or owned", b);
    if (m.queued.load(std::memory_order_relaxed) != 0)
      return say("a pooled block is on a returned queue", b);
    if (m.freed_all.load(std::memory_order_relaxed) != 0)
      return say("a pooled block is marked freed_all", b);
    if (!bits_zero(m)) return say("a pooled block has bits set", b);
  }
  for (unsigned idx = 0; idx < kCursors; ++idx) {
    steps = 0;
    for (std::uint32_t b = g_adoptable[idx]; b != kNoBlock; b = meta(b).next_adoptable) {
      if (b >= n || ++steps > n) return say("an adoptable list runs outside the table or loops", b);
      const BlockMeta& m = meta(b);
      if (where[b] != 0) return say("an adoptable block is also elsewhere", b);
      where[b] = 2;
      if (m.owner != nullptr || !m.in_adoptable || cursor_index(m.cls, m.typed != 0) != idx ||
          m.state.load(std::memory_order_relaxed) != kBlockSmall || empty(m))
        return say("an adoptable block breaks its list's rules", b);
    }
  }
  std::vector<char> on_queue(n, 0);
  for (std::size_t i = 0; i < count; ++i) {
    steps = 0;
    // relaxed: no thread allocates (the caller's promise).
    for (std::uint32_t b = owners[i]->returned_head.load(std::memory_order_relaxed);
         b != kNoBlock; b = meta(b).next_returned) {
      if (b >= n || ++steps > n) return say("a returned queue runs outside the table or loops", b);
      if (on_queue[b] != 0) return say("a block is on returned queues twice", b);
      on_queue[b] = 1;
      if (meta(b).owner != owners[i]) return say("a queued block is not its queue's owner's", b);
    }
  }
  for (std::uint32_t b = 0; b < n; ++b)
    if ((meta(b).queued.load(std::memory_order_relaxed) != 0) != (on_queue[b] != 0))
      return say("a block's queued flag disagrees with the returned queues", b);
  for (std::size_t i = 0; i < count; ++i) {
    steps = 0;
    for (std::uint32_t b = owners[i]->owned_head; b != kNoBlock; b = meta(b).next_owned) {
      if (b >= n || ++steps > n) return say("an owned list runs outside the table or loops", b);
      const BlockMeta& m = meta(b);
      if (where[b] != 0) return say("an owned block is also elsewhere", b);
      where[b] = 3;
      if (m.owner != owners[i] || m.state.load(std::memory_order_relaxed) != kBlockSmall)
        return say("an owned block names another owner or is not in use", b);
    }
  }
  for (std::uint32_t b = 0; b < n; ++b) {
    const BlockMeta& m = meta(b);
    const std::uint8_t state = m.state.load(std::memory_order_relaxed);
    if (state == kBlockSmall && where[b] == 0) return say("a block in use is in no list", b);
    if (state == kBlockSmall && m.owner == nullptr && where[b] != 2)
      return say("an ownerless block in use is not adoptable", b);
  }
  return {};
}

void before_fork() noexcept { g_lock.lock(); }
void after_fork_parent() noexcept { g_lock.unlock(); }
void after_fork_child() noexcept { new (&g_lock) std::mutex(); }

std::size_t trim_pool() noexcept {
  // Blocks pooled before the last call are taken off the pool under the lock, given back
  // outside it (madvise takes the mapping's lock; a refilling thread should not wait for
  // it), and pooled again, now reading as zeros. While detached they are in no list.
  std::uint32_t batch[256];
  std::size_t n = 0;
  {
    std::lock_guard lock(g_lock);
    const std::uint32_t epoch = g_trim_epoch++;
    std::uint32_t* link = &g_pool;
    while (*link != kNoBlock && n < sizeof batch / sizeof batch[0]) {
      BlockMeta& m = meta(*link);
      if (m.decommitted || m.pooled_epoch >= epoch) {  // given back already, or new
        link = &m.next;
        continue;
      }
      batch[n++] = *link;
      *link = m.next;
    }
  }
  for (std::size_t i = 0; i < n; ++i) ::madvise(block_base(batch[i]), kBlockBytes, MADV_DONTNEED);
  std::lock_guard lock(g_lock);
  for (std::size_t i = 0; i < n; ++i) {
    pool_locked(batch[i]);
    meta(batch[i]).decommitted = 1;
  }
  return n * kBlockBytes;
}

}  // namespace cmr::detail::blocks
