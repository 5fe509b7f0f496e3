// src/heap/audit.cpp: a consistency check of the heap's lists for the tests: every block in
// exactly one place (pooled, adoptable, owned, or part of a span), and each place's rules.
// Called with no thread allocating; takes the heap lock; allocates freely (it is not a
// production path).
#include "heap/blocks.hpp"

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "heap/block_lists.hpp"
#include <vector>

namespace cmr::detail::blocks {

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

}  // namespace cmr::detail::blocks
