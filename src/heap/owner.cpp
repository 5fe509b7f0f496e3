// src/heap/owner.cpp: the owner's side of its blocks: the cursor refill, the fold of freed
// bits, the owner's lists, adoption of orphaned blocks, and a thread's exit.
//
// Claims invariants 10, 12 and 13 of docs/design.md.
//
// The owner's fast path takes no lock; only taking a block (adopted, pooled or fresh) and
// giving an empty one back take the heap lock. A block the collector queued again while
// its owner folded it is never pooled while queued (release_empty). Invariant 8 of
// docs/design.md (destroyed before reused) holds because a slot becomes free to the owner
// only through fold(), which reads the collector's freed bits after its destructors ran.
#include "heap/blocks.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "heap/block_lists.hpp"
#include "cmr/detail/hooks.hpp"

namespace cmr::detail::blocks {

namespace {

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

}  // namespace

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

}  // namespace cmr::detail::blocks
