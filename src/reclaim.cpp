// src/reclaim.cpp: the collector's side of a completed cycle: destroy, then release.
//
// Keeps DESIGN invariants 6 and 8. Only a complete answer from a child that exited
// normally comes here (collector.cpp checks), and each garbage slot is listed once in it.
// Per block: the objects that need a destructor are destroyed first (a typed slot's
// TypeHeader says how; a large object's span record), on this thread, in no particular
// order; only then are the slots released (blocks.cpp publishes them to the owner, whose
// fold makes them reusable), so no allocation can hand out a slot whose object has not
// been destroyed. Trivially destructible garbage costs nothing per object here: a word
// of the answer releases up to 64 slots at once.
#include "reclaim.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "blocks.hpp"
#include "state.hpp"

namespace cmr::detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoison = true;
#else
constexpr bool kPoison = false;
#endif

void poison_slot(void* p, std::size_t n) noexcept {
#if defined(__SANITIZE_ADDRESS__)
  __asan_poison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace

Reclaimed reclaim(const GarbageWord* entries, std::size_t count) noexcept {
  Reclaimed out;
  blocks::FreedWord words[kBitmapWords];
  for (std::size_t i = 0; i < count;) {
    const std::uint32_t b = entries[i].block;
    std::size_t j = i;
    while (j < count && entries[j].block == b) ++j;
    // The next block's freed words, for writing: each release is an atomic update of a
    // line nobody touched since the last cycle, and the miss is most of its cost.
    if (j < count) {
      BlockMeta& next = blocks::meta(entries[j].block);
      for (std::size_t k = j; k < count && k < j + kBitmapWords && entries[k].block == entries[j].block; k += 8)
        __builtin_prefetch(&next.freed[entries[k].word], 1);
    }
    BlockMeta& m = blocks::meta(b);
    // relaxed: the collector's own record of a block in use (its state cannot change
    // while it holds this cycle's garbage; blocks.cpp).
    const std::uint8_t state = m.state.load(std::memory_order_relaxed);
    char* base = blocks::block_base(b);
    if (state == kBlockLarge) {
      if (m.large_type != nullptr) m.large_type->destroy(base, m.large_count);
      out.objects += 1;
      out.bytes += std::size_t{m.span} * kBlockBytes;
      blocks::release_large(b);
    } else if (state == kBlockSmall && entries[i].word == kWholeBlock) {
      const std::size_t size = kClassBytes[m.cls], n = slots_of(m.cls);
      if (m.typed || kPoison) {
        for (std::size_t k = 0; k < n; ++k) {
          char* slot = base + k * size;
          if (m.typed) {
            const auto* h = reinterpret_cast<const TypeHeader*>(slot);
            h->type->destroy(slot + typed_prefix(h->type->align), h->count);
          }
          poison_slot(slot, size);
        }
      }
      out.objects += n;
      out.bytes += n * size;
      blocks::release_block(b);
    } else if (state == kBlockSmall) {
      const std::size_t size = kClassBytes[m.cls];
      std::size_t n = 0;
      for (std::size_t k = i; k < j && n < kBitmapWords; ++k) {
        const std::uint64_t bits = entries[k].bits;
        const std::size_t first = std::size_t{entries[k].word} * 64;
        if (m.typed || kPoison) {  // per-object work only where there is some
          for (std::uint64_t rest = bits; rest != 0; rest &= rest - 1) {
            char* slot = base + (first + static_cast<std::size_t>(__builtin_ctzll(rest))) * size;
            if (m.typed) {
              const auto* h = reinterpret_cast<const TypeHeader*>(slot);
              h->type->destroy(slot + typed_prefix(h->type->align), h->count);
            }
            poison_slot(slot, size);
          }
        }
        const auto freed = static_cast<std::uint64_t>(popcount64(bits));
        out.objects += freed;
        out.bytes += freed * size;
        words[n++] = blocks::FreedWord{entries[k].word, bits};
      }
      blocks::release_slots(b, words, n);
    } else {
      // Cannot happen (a block holding garbage keeps its state until it is released);
      // freeing nothing is the safe answer to a broken invariant.
      diagnose("internal error: garbage reported in block %u, which is not in use", b);
    }
    i = j;
  }
  return out;
}

}  // namespace cmr::detail
