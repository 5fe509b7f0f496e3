// src/heap/release.cpp: the collector's side: slots whose objects were destroyed are handed
// back to their block's owner (or folded at once in an ownerless block), and pooled blocks
// unused for a while give their pages back to the kernel.
//
// Never called while threads are held (it takes the heap lock). Each release clears the
// reclaim's announcement in the same critical section, so a program fork() (which takes
// the heap lock) sees a block released and no longer announced, or neither.
#include "heap/blocks.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "heap/block_lists.hpp"

namespace cmr::detail::blocks {

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

std::size_t trim_pool() noexcept {
  // Blocks pooled before the last call are taken off the pool under the lock, given back
  // outside it (madvise takes the mapping's lock; a refilling thread should not wait for
  // it), and pooled again, now reading as zeros. While detached they are in no list.
  std::uint32_t batch[256];
  std::size_t n = 0;
  {
    std::lock_guard lock(g_lock);
    const std::uint32_t round = g_trim_round++;
    std::uint32_t* link = &g_pool;
    while (*link != kNoBlock && n < sizeof batch / sizeof batch[0]) {
      BlockMeta& m = meta(*link);
      if (m.decommitted || m.pooled_round >= round) {  // given back already, or new
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
