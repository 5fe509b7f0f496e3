// src/cycle/reclaim.cpp: the collector's side of a completed cycle: destroy, then release.
//
// Claims invariants 8, 14 and 26 of docs/design.md.
//
// Invariant 8 (destroyed before reused), and frees each object
// at most once as invariant 6 (claimed by cycle/cycle.cpp) needs. Only a complete answer from a child that exited
// normally comes here (cycle/cycle.cpp checks), and each garbage slot is listed once in it.
// Per block: the objects that need a destructor are destroyed first (a typed slot's
// TypeHeader says how; a large object's span record), on this thread, in no particular
// order; only then are the slots released (heap/release.cpp publishes them to the owner, whose
// fold makes them reusable), so no allocation can hand out a slot whose object has not
// been destroyed. Trivially destructible garbage costs nothing per object here: a word
// of the answer releases up to 64 slots at once.
#include "cycle/reclaim.hpp"

#include "heap/blocks.hpp"
#include "os/poison.hpp"
#include "cmr/detail/hooks.hpp"
#include "runtime/runtime.hpp"

namespace cmr::detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoison = true;
#else
constexpr bool kPoison = false;
#endif

}  // namespace

InFlight g_in_flight;

namespace {

// Program order is what a program's fork() on another thread preserves in its child (a
// page it already copied is write-protected, so a later store waits for the fork to
// finish), so ordering these stores is enough for the child to tell what was done. The
// release fences keep that order on the CPU as well as in the compiler.
void announce_slot(std::uint64_t next) noexcept {
  std::atomic_thread_fence(std::memory_order_release);  // after the previous destructor
  // relaxed: ordered by the fences around it; read only by a fork's child.
  g_in_flight.next_slot.store(next, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // before this slot's destructor
}

void announce_block(std::uint32_t b) noexcept {
  std::atomic_thread_fence(std::memory_order_release);  // the words and flags first
  // relaxed: see announce_slot; cleared under the heap lock by the release (heap/release.cpp).
  g_in_flight.block.store(b, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

// Runs the destructors of a block's garbage. Slots whose type is null hold an object
// whose constructor never finished (see seal()): nothing to destroy.
void destroy_announced(std::uint32_t b, const blocks::FreedWord* words, std::size_t n,
                       bool whole) noexcept {
  BlockMeta& m = blocks::meta(b);
  char* base = blocks::block_base(b);
  const std::size_t size = kClassBytes[m.cls];
  for (std::size_t i = 0; i < n; ++i) g_in_flight.words[i] = words[i];
  g_in_flight.count = n;
  g_in_flight.whole = whole;
  g_in_flight.large = false;
  g_in_flight.next_slot.store(0, std::memory_order_relaxed);  // relaxed: see announce_block
  announce_block(b);
  auto destroy = [&](std::size_t slot_index) {
    char* slot = base + slot_index * size;
    announce_slot(slot_index + 1);
    const auto* h = reinterpret_cast<const TypeHeader*>(slot);
    if (h->type == nullptr) return;
    h->type->destroy(slot + typed_prefix(h->type->align), h->count);
    CMR_DETAIL_HOOK_IN_LIBRARY(collector_destroyed_one);
  };
  if (whole) {
    for (std::size_t k = 0; k < slots_of(m.cls); ++k) destroy(k);
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::uint64_t rest = words[i].bits; rest != 0; rest &= rest - 1)
      destroy(std::size_t{words[i].word} * 64 + static_cast<std::size_t>(__builtin_ctzll(rest)));
}

void poison_garbage(std::uint32_t b, const blocks::FreedWord* words, std::size_t n,
                    bool whole) noexcept {
  if (!kPoison) return;
  BlockMeta& m = blocks::meta(b);
  char* base = blocks::block_base(b);
  const std::size_t size = kClassBytes[m.cls];
  if (whole) {
    poison(base, slots_of(m.cls) * size);
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::uint64_t rest = words[i].bits; rest != 0; rest &= rest - 1)
      poison(base + (std::size_t{words[i].word} * 64 +
                          static_cast<std::size_t>(__builtin_ctzll(rest))) * size,
                  size);
}

}  // namespace

void reclaim(const GarbageWord* entries, std::size_t count, FreedCounters freed) noexcept {
  // relaxed: statistics, counted before the release below publishes the slots (its
  // release ordering carries the counts to a thread that then reuses them).
  auto count_freed = [&](std::uint64_t objects, std::uint64_t bytes) {
    freed.objects.fetch_add(objects, std::memory_order_relaxed);
    freed.bytes.fetch_add(bytes, std::memory_order_relaxed);
  };
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
    // while it holds this cycle's garbage; heap/blocks.cpp).
    const std::uint8_t state = m.state.load(std::memory_order_relaxed);
    if (state == kBlockLarge) {
      if (m.large.type != nullptr) {
        g_in_flight.large = true;
        announce_block(b);  // a fork's child releases the span without destroying again
        m.large.type->destroy(blocks::block_base(b), m.large.count);
      }
      count_freed(1, std::size_t{m.span} * kBlockBytes);
      blocks::release_large(b, &g_in_flight.block);
    } else if (state == kBlockSmall) {
      const bool whole = entries[i].word == kWholeBlock;
      const std::size_t size = kClassBytes[m.cls];
      std::size_t n = 0;
      std::uint64_t objects = 0;
      if (!whole) {
        for (std::size_t k = i; k < j && n < kBitmapWords; ++k) {
          words[n++] = blocks::FreedWord{entries[k].word, entries[k].bits};
          objects += static_cast<std::uint64_t>(popcount64(entries[k].bits));
        }
      } else {
        objects = slots_of(m.cls);
      }
      if (m.typed) destroy_announced(b, words, n, whole);
      poison_garbage(b, words, n, whole);
      count_freed(objects, objects * size);
      if (whole) blocks::release_block(b, &g_in_flight.block);
      else blocks::release_slots(b, words, n, &g_in_flight.block);
    } else {
      // Cannot happen (a block holding garbage keeps its state until it is released);
      // freeing nothing is the safe answer to a broken invariant.
      diagnose("internal error: garbage reported in block %u, which is not in use", b);
    }
    i = j;
  }
}

void finish_in_flight_after_fork() noexcept {
  // relaxed: the only thread of the child; the parent's collector wrote it in order.
  const std::uint32_t b = g_in_flight.block.load(std::memory_order_relaxed);
  if (b == kNoBlock) return;
  g_in_flight.block.store(kNoBlock, std::memory_order_relaxed);
  BlockMeta& m = blocks::meta(b);
  if (g_in_flight.large) {
    // Announced, and not yet released (the release clears the announcement under the
    // heap lock, which the fork held): the destructor ran or had begun.
    blocks::release_large(b, nullptr);
    return;
  }
  // The slots below next_slot (in destruction order) were destroyed, or their destructor
  // had begun: released without a second destruction. The others stay candidates, and
  // this process's own cycles destroy them once.
  const std::uint64_t next = g_in_flight.next_slot.load(std::memory_order_relaxed);
  blocks::FreedWord done[kBitmapWords];
  std::size_t n = 0;
  auto below = [&](std::size_t word, std::uint64_t bits) {
    const std::size_t first = word * 64;
    if (next <= first) return std::uint64_t{0};
    if (next - first >= 64) return bits;
    return bits & ((std::uint64_t{1} << (next - first)) - 1);
  };
  if (g_in_flight.whole) {
    const std::size_t slots = slots_of(m.cls);
    for (std::size_t w = 0; w * 64 < slots; ++w) {
      const std::uint64_t valid = slots - w * 64 >= 64 ? ~std::uint64_t{0}
                                                       : (std::uint64_t{1} << (slots - w * 64)) - 1;
      if (const std::uint64_t bits = below(w, valid)) done[n++] = blocks::FreedWord{static_cast<std::uint32_t>(w), bits};
    }
  } else {
    // Destruction runs word by word in ascending order, so "below next_slot" is exact.
    for (std::size_t i = 0; i < g_in_flight.count; ++i)
      if (const std::uint64_t bits = below(g_in_flight.words[i].word, g_in_flight.words[i].bits))
        done[n++] = blocks::FreedWord{g_in_flight.words[i].word, bits};
  }
  if (n != 0) blocks::release_slots(b, done, n, nullptr);
}

}  // namespace cmr::detail
