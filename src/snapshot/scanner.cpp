// src/snapshot/scanner.cpp: the mark phase, run in the snapshot child, or on the collector's thread
// while every thread is held when the live heap is small (mark_in_pause).
//
// Claims invariant 7 of docs/design.md.
//
// Invariant 7 (conservative, never eager: a word that points
// anywhere into a candidate's slot, tag bits and interior pointers included, or into a
// large object's bytes, marks it; nothing is judged unreachable on a guess). Keeps what
// invariant 5 (claimed by snapshot/spawn.cpp) asks of the child: scratch memory comes
// from mmap, exit is the raw exit_group.
//
// A word is looked up in O(1): its block from its offset in the region, the block's
// record from the table, the slot by division by the class size (a multiply by a
// precomputed reciprocal), and whether that slot is a candidate from its bitmaps as of the
// cut (alloc & ~freed). A pointer into a free slot, into a block's unused tail, or past a
// large object's bytes marks nothing. The work is the marked objects' words plus one pass
// over the bitmaps of the blocks in use to list the garbage: what is live, not what is
// dead, is read (garbage objects are never touched).
// The fuzz target (tests/fuzz) checks the answer against a reference reachability
// computation over random heaps.
// Nothing here may call out of the runtime but raw system calls: a function the program
// has not called before is bound lazily by the dynamic loader, whose data the child does
// not have when snapshot isolation is on (so no __builtin_popcountll, which is a libgcc
// call without -mpopcnt: popcount64 instead).
#include "snapshot/scanner.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "os/mapped_array.hpp"
#include "os/sys.hpp"

namespace cmr::detail {

namespace {

// off / size == (off * kReciprocal[cls]) >> 32 for every off < kBlockBytes (checked by
// the fuzz target's start-up and by class_test).
struct Reciprocals {
  std::uint64_t value[kClasses];
  constexpr Reciprocals() : value() {
    for (unsigned c = 0; c < kClasses; ++c) value[c] = (std::uint64_t{1} << 32) / kClassBytes[c] + 1;
  }
};
constexpr Reciprocals kReciprocal;

inline std::uint64_t candidates(const BlockMeta& m, std::size_t w) noexcept {
  // relaxed: the heap does not change while it is marked (the child's copy, or the
  // program's own while every thread that writes it is held).
  if (m.freed_all.load(std::memory_order_relaxed) != 0) return 0;
  return m.alloc[w].load(std::memory_order_relaxed) & ~m.freed[w].load(std::memory_order_relaxed);
}

// The bits of word `w` that stand for real slots of class `cls`.
inline std::uint64_t valid_bits(unsigned cls, std::size_t w) noexcept {
  const std::size_t n = slots_of(cls), first = w * 64;
  return n - first >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (n - first)) - 1;
}

// Candidates of word `w` of a small block that stand for real slots: a bit past the
// class's last slot (none is ever set; this does not rely on it) names no object.
inline std::uint64_t slot_candidates(const BlockMeta& m, std::size_t w) noexcept {
  return candidates(m, w) & valid_bits(m.cls, w);
}

// How often the mark looks at the clock against its deadline (objects).
constexpr std::size_t kDeadlineEvery = 256;

class Marker {
 public:
  Marker(const ScanPlan& plan, MarkScratch& scratch) noexcept : plan_(plan), s_(scratch) {}

  // Marks from every root; false if `deadline_ns` passed first (the marks are then partial).
  bool mark(std::int64_t deadline_ns) noexcept {
    for (std::size_t r = 0; r < plan_.root_count; ++r) {
      visit(plan_.roots[r]);
      if (!drain(deadline_ns)) return false;
    }
    return true;
  }

  // Lists every candidate that was not marked. kNoRoom if the answer would not fit,
  // kOverBudget if `deadline_ns` passed first. Pop counts bits (see popcount_of below).
  template <class Pop>
  [[gnu::always_inline]] inline PauseMark answer(ScanResult* result, std::int64_t deadline_ns,
                                                 Pop pop) noexcept {
    GarbageWord* out = result->entries();
    std::size_t n = 0;
    std::uint64_t cands = 0, reached = 0, reached_bytes = 0;
    for (std::uint32_t b = 0; b < plan_.block_count; ++b) {
      if (b % kDeadlineEvery == kDeadlineEvery - 1 && sys::now_ns() > deadline_ns)
        return PauseMark::kOverBudget;
      const BlockMeta& m = plan_.blocks[b];
      const std::uint8_t state = m.state.load(std::memory_order_relaxed);
      std::size_t words, slot_bytes;
      if (state == kBlockSmall) {
        words = (slots_of(m.cls) + 63) / 64;
        slot_bytes = kClassBytes[m.cls];
      } else if (state == kBlockLarge) {
        words = 1;
        slot_bytes = std::size_t{m.span} * kBlockBytes;
      } else {
        continue;
      }
      if (state == kBlockSmall && s_.block_marks[b] == 0) {
        // Nothing in it was reached: when it was full (the common case under churn), one
        // entry, found by comparing words with no mark to read and no bit to count.
        bool full = true;
        for (std::size_t w = 0; w < words && full; ++w)
          full = slot_candidates(m, w) == valid_bits(m.cls, w);
        if (full) {
          if (n == plan_.capacity) return PauseMark::kNoRoom;
          out[n++] = GarbageWord{b, kWholeBlock, 0};
          cands += slots_of(m.cls);
          continue;
        }
      }
      const std::uint64_t* marks = &s_.marks[std::size_t{b} * kBitmapWords];
      const std::size_t first_entry = n;
      bool whole = state == kBlockSmall;  // full at the cut, and all of it garbage
      for (std::size_t w = 0; w < words; ++w) {
        const std::uint64_t c = state == kBlockLarge ? candidates(m, 0) & 1 : slot_candidates(m, w);
        if (whole && (c != valid_bits(m.cls, w) || marks[w] != 0)) whole = false;
        if (c == 0) continue;
        const std::uint64_t live = c & marks[w];
        const std::uint64_t n_live = pop(live);
        cands += pop(c);
        reached += n_live;
        reached_bytes += n_live * slot_bytes;
        if (const std::uint64_t dead = c & ~live) {
          if (n == plan_.capacity) return PauseMark::kNoRoom;
          out[n++] = GarbageWord{b, static_cast<std::uint32_t>(w), dead};
        }
      }
      if (whole) {  // its words' entries become one (released without a word's update)
        n = first_entry;
        out[n++] = GarbageWord{b, kWholeBlock, 0};
      }
    }
    result->count = n;
    result->candidates = cands;
    result->reachable = reached;
    result->reachable_bytes = reached_bytes;
    result->words_scanned = words_;
    return PauseMark::kAnswered;
  }

 private:
  // Marks the candidate that `word` points into, if any and not yet marked.
  void visit(std::uintptr_t word) noexcept {
    const std::uintptr_t off = word - plan_.heap_base;
    if (word < plan_.heap_base || (off >> kBlockShift) >= plan_.block_count) return;
    std::uint32_t b = static_cast<std::uint32_t>(off >> kBlockShift);
    const BlockMeta* m = &plan_.blocks[b];
    std::uint8_t state = m->state.load(std::memory_order_relaxed);  // relaxed: see candidates()
    if (state == kBlockSmall) {
      const unsigned cls = m->cls;
      const std::uint64_t in = off & (kBlockBytes - 1);
      const std::uint64_t slot = (in * kReciprocal.value[cls]) >> 32;
      if (slot >= slots_of(cls)) return;  // the block's unused tail
      const std::size_t w = slot / 64;
      const std::uint64_t bit = std::uint64_t{1} << (slot % 64);
      if ((candidates(*m, w) & bit) == 0) return;  // a free slot
      std::uint64_t& mark = s_.marks[std::size_t{b} * kBitmapWords + w];
      if ((mark & bit) != 0) return;
      mark |= bit;
      ++s_.block_marks[b];
      push(plan_.heap_base + (std::uintptr_t{b} << kBlockShift) + slot * kClassBytes[cls],
           kClassBytes[cls]);
      return;
    }
    if (state == kBlockLargeTail) {
      if (m->span > b) return;  // a broken record: never follow it outside the table
      b -= m->span;
      m = &plan_.blocks[b];
      state = m->state.load(std::memory_order_relaxed);
    }
    if (state != kBlockLarge) return;
    const std::uintptr_t start = plan_.heap_base + (std::uintptr_t{b} << kBlockShift);
    const std::uint64_t span = (m->large_bytes + 7) & ~std::uint64_t{7};
    if (word - start >= span || (candidates(*m, 0) & 1) == 0) return;
    std::uint64_t& mark = s_.marks[std::size_t{b} * kBitmapWords];
    if ((mark & 1) != 0) return;
    mark |= 1;
    ++s_.block_marks[b];
    push(start, span);
  }

  bool drain(std::int64_t deadline_ns) noexcept {
    std::size_t popped = 0;
    while (depth_ != 0) {
      const MarkScratch::Item item = s_.stack[--depth_];
      auto* w = reinterpret_cast<const std::uintptr_t*>(item.start);
      auto* end = reinterpret_cast<const std::uintptr_t*>(item.start + item.bytes);
      words_ += static_cast<std::uint64_t>(end - w);
      for (; w < end; ++w) visit(*w);
      if (++popped % kDeadlineEvery == 0 && sys::now_ns() > deadline_ns) return false;
    }
    return true;
  }

  void push(std::uintptr_t start, std::uint64_t bytes) noexcept {
    if (depth_ == s_.stack_items) {  // only the collector's own scratch can be too small
      overflow_ = true;
      return;
    }
    s_.stack[depth_++] = MarkScratch::Item{start, bytes};
  }

  const ScanPlan& plan_;
  MarkScratch& s_;
  std::size_t depth_ = 0;
  std::uint64_t words_ = 0;

 public:
  bool overflow_ = false;  // a candidate could not be pushed: the marks are incomplete
};

}  // namespace

// The answer pass counts bits in every word of the heap's bitmaps. x86-64's baseline has no
// popcnt instruction, and __builtin_popcountll there is a call into libgcc (which the child
// must not make: see the file comment), so the pass is compiled twice: with the
// instruction, used when the CPU has it (asked once, with cpuid, when the runtime starts),
// and with popcount64.
#if defined(__x86_64__)
bool g_has_popcnt = false;

[[gnu::target("popcnt")]] PauseMark answer_with_popcnt(Marker& m, ScanResult* r,
                                                       std::int64_t deadline_ns) noexcept {
  return m.answer(r, deadline_ns, [](std::uint64_t x) -> std::uint64_t {
    return static_cast<std::uint64_t>(__builtin_popcountll(x));
  });
}
#endif

PauseMark answer_of(Marker& m, ScanResult* r, std::int64_t deadline_ns) noexcept {
#if defined(__x86_64__)
  if (g_has_popcnt) return answer_with_popcnt(m, r, deadline_ns);
  return m.answer(r, deadline_ns, [](std::uint64_t x) -> std::uint64_t { return popcount64(x); });
#else
  return m.answer(r, deadline_ns, [](std::uint64_t x) -> std::uint64_t {
    return static_cast<std::uint64_t>(__builtin_popcountll(x));
  });
#endif
}

std::size_t count_candidates(const ScanPlan& plan) noexcept {
  std::size_t count = 0;
  for (std::uint32_t b = 0; b < plan.block_count; ++b) {
    const BlockMeta& m = plan.blocks[b];
    const std::uint8_t state = m.state.load(std::memory_order_relaxed);
    if (state == kBlockLarge) count += candidates(m, 0) & 1;
    if (state != kBlockSmall) continue;
    for (std::size_t w = 0; w < (slots_of(m.cls) + 63) / 64; ++w)
      count += popcount64(slot_candidates(m, w));
  }
  return count;
}

PauseMark mark_with(const ScanPlan& plan, MarkScratch& scratch, std::int64_t deadline_ns) noexcept {
  const std::int64_t start = sys::now_ns();
  if (scratch.mark_words < std::size_t{plan.block_count} * kBitmapWords) return PauseMark::kNoRoom;
  Marker marker(plan, scratch);
  if (!marker.mark(deadline_ns)) return PauseMark::kOverBudget;
  if (marker.overflow_) return PauseMark::kNoRoom;
  if (const PauseMark a = answer_of(marker, plan.result, deadline_ns); a != PauseMark::kAnswered)
    return a;
  plan.result->cycle = plan.cycle;
  plan.result->scan_ns = sys::now_ns() - start;
  return PauseMark::kAnswered;
}

void detect_cpu() noexcept {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) g_has_popcnt = (ecx & bit_POPCNT) != 0;
#endif
}

bool scan(const ScanPlan& plan) noexcept {
  // Fresh scratch, mapped here: zero pages the child does not share with the parent.
  MappedArray<std::uint64_t> marks;
  MappedArray<std::uint32_t> block_marks;
  MappedArray<MarkScratch::Item> stack;
  const std::size_t mark_words = std::size_t{plan.block_count} * kBitmapWords;
  if (!marks.reserve(mark_words + 1) || !block_marks.reserve(plan.block_count + 1) ||
      !stack.reserve(count_candidates(plan) + 1))
    return false;
  MarkScratch scratch{marks.data(), mark_words, block_marks.data(), stack.data(),
                      stack.capacity()};
  return mark_with(plan, scratch, INT64_MAX) == PauseMark::kAnswered;
}

void scanner_child_main(const ScanPlan& plan, const ChildFaults& faults) noexcept {
  if (faults.hang) {
    std::atomic<std::uint32_t> never{0};
    for (;;) sys::futex_wait(&never, 0);
  }
  if (faults.reads != nullptr) (void)*faults.reads;
  // A killed scanner (the child inherits the collector's all-blocked signal mask, so only
  // an unblockable signal ends it, as a wild read's forced SIGSEGV would).
  if (faults.crash) ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGKILL);
  bool ok = scan(plan);
  if (ok && !faults.exit_early) {
    // release: pairs with the parent's acquire load after the child exited; the answer is
    // complete before the flag says so.
    plan.result->complete.store(1, std::memory_order_release);
  }
  sys::exit_group(ok ? 0 : 3);
}

}  // namespace cmr::detail
