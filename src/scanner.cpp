// src/scanner.cpp: the mark phase, run in the snapshot child.
//
// Keeps DESIGN invariants 5 (the child never allocates: scratch memory comes from mmap,
// exit is the raw exit_group) and 7 (conservative, never eager: a word that points
// anywhere into a candidate's slot, tag bits and interior pointers included, or into a
// large object's bytes, marks it; nothing is judged unreachable on a guess).
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
#include "scanner.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.hpp"

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

template <class T>
struct Scratch {  // one mmap'd array, unmapped when the scan ends
  T* data = nullptr;
  std::size_t bytes = 0;
  bool map(std::size_t count) noexcept {
    bytes = (count == 0 ? 1 : count) * sizeof(T);
    data = static_cast<T*>(sys::map_private(bytes));
    return data != nullptr;
  }
  ~Scratch() { sys::unmap(data, bytes); }
  T& operator[](std::size_t i) noexcept { return data[i]; }
};

inline std::uint64_t candidates(const BlockMeta& m, std::size_t w) noexcept {
  // relaxed: the child's copy of the heap does not change.
  return m.alloc[w].load(std::memory_order_relaxed) & ~m.freed[w].load(std::memory_order_relaxed);
}

class Marker {
 public:
  explicit Marker(const ScanPlan& plan) noexcept : plan_(plan) {}

  bool map() noexcept {
    // Every candidate is pushed at most once: at most one per 16 bytes of the blocks.
    return marks_.map(std::size_t{plan_.block_count} * kBitmapWords) &&
           stack_.map(std::size_t{plan_.block_count} * (kBlockBytes / kMinSlot) + 1);
  }

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
      std::uint64_t& mark = marks_[std::size_t{b} * kBitmapWords + w];
      if ((mark & bit) != 0) return;
      mark |= bit;
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
    std::uint64_t& mark = marks_[std::size_t{b} * kBitmapWords];
    if ((mark & 1) != 0) return;
    mark |= 1;
    push(start, span);
  }

  void drain() noexcept {
    while (depth_ != 0) {
      const Item item = stack_[--depth_];
      auto* w = reinterpret_cast<const std::uintptr_t*>(item.start);
      auto* end = reinterpret_cast<const std::uintptr_t*>(item.start + item.bytes);
      words_ += static_cast<std::uint64_t>(end - w);
      for (; w < end; ++w) visit(*w);
    }
  }

  // Lists every candidate that was not marked; false if the answer would not fit.
  bool answer(ScanResult* result) noexcept {
    GarbageWord* out = result->entries();
    std::size_t n = 0;
    std::uint64_t cands = 0, reached = 0, reached_bytes = 0;
    for (std::uint32_t b = 0; b < plan_.block_count; ++b) {
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
      const std::uint64_t* marks = &marks_[std::size_t{b} * kBitmapWords];
      for (std::size_t w = 0; w < words; ++w) {
        std::uint64_t c = candidates(m, w);
        if (state == kBlockLarge) c &= 1;
        if (c == 0) continue;
        const std::uint64_t live = c & marks[w];
        cands += static_cast<std::uint64_t>(popcount64(c));
        reached += static_cast<std::uint64_t>(popcount64(live));
        reached_bytes += static_cast<std::uint64_t>(popcount64(live)) * slot_bytes;
        if (const std::uint64_t dead = c & ~live) {
          if (n == plan_.capacity) return false;
          out[n++] = GarbageWord{b, static_cast<std::uint32_t>(w), dead};
        }
      }
    }
    result->count = n;
    result->candidates = cands;
    result->reachable = reached;
    result->reachable_bytes = reached_bytes;
    result->words_scanned = words_;
    return true;
  }

 private:
  struct Item {
    std::uintptr_t start;
    std::uint64_t bytes;
  };
  void push(std::uintptr_t start, std::uint64_t bytes) noexcept {
    stack_[depth_++] = Item{start, bytes};
  }

  const ScanPlan& plan_;
  Scratch<std::uint64_t> marks_;
  Scratch<Item> stack_;
  std::size_t depth_ = 0;
  std::uint64_t words_ = 0;
};

void crash_if_asked(const ScanPlan& plan) noexcept {
  // A killed scanner (the child inherits the collector's all-blocked signal mask, so only
  // an unblockable signal ends it, as a wild read's forced SIGSEGV would).
  if (plan.faults.crash) ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGKILL);
}

}  // namespace

bool scan(const ScanPlan& plan) noexcept {
  const std::int64_t start = sys::now_ns();
  Marker marker(plan);
  if (!marker.map()) return false;
  crash_if_asked(plan);
  for (std::size_t r = 0; r < plan.root_count; ++r) {
    marker.visit(plan.roots[r]);
    marker.drain();
  }
  if (!marker.answer(plan.result)) return false;
  plan.result->epoch = plan.epoch;
  plan.result->scan_ns = sys::now_ns() - start;
  return true;
}

void scanner_child_main(const ScanPlan& plan) noexcept {
  if (plan.faults.hang) {
    std::atomic<std::uint32_t> never{0};
    for (;;) sys::futex_wait(&never, 0);
  }
  if (plan.faults.reads != nullptr) (void)*plan.faults.reads;
  bool ok = scan(plan);
  if (ok && !plan.faults.exit_early) {
    // release: pairs with the parent's acquire load after the child exited; the answer is
    // complete before the flag says so.
    plan.result->complete.store(1, std::memory_order_release);
  }
  sys::exit_group(ok ? 0 : 3);
}

}  // namespace cmr::detail
