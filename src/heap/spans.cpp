// src/heap/spans.cpp: large objects: spans of whole blocks, taken from free spans, the pool
// or the region, and given back whole.
//
// A span's head block records its size; every later block records its distance to the
// head (kBlockLargeTail), which is what lets the scanner map a word anywhere inside a
// large object to the object (invariant 7 of docs/design.md, claimed by
// snapshot/scanner.cpp). A freed span's pages go back to the kernel at once, so a reused
// span reads as zeros.
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

}  // namespace cmr::detail::blocks
