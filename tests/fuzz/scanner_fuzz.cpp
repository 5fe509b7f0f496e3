// tests/fuzz/scanner_fuzz.cpp: libFuzzer target for the mark phase, cmr::detail::scan().
//
// Each input is decoded into a small tracked heap in the real layout: a run of 64 KiB
// blocks with their records (small blocks of random classes with random alloc and freed
// bitmaps, large objects spanning several blocks, free blocks, and records that make no
// sense: a tail whose distance leads outside the table or to a block that is no large
// object, a state no writer uses). Candidates' words point at, into, just past, or
// nowhere near other slots: a candidate's first and last byte, with tag bits, a free slot,
// a freed-but-not-folded slot, padding at a block's tail, one past a block, a large
// object's interior (deep, beyond kBlockBytes) and its bytes past the object, a tail
// block, outside the heap. scan() runs in-process; its answer (the unmarked candidates,
// per bitmap word, and the counts) is checked against reachability computed here by a
// plain search over a list of candidate extents. Memory the scanner has no business
// reading (every slot that is not a candidate, block tails, free blocks, a large span past
// its object, the answer past its capacity) is ASan-poisoned, so a stray read is reported
// even when it happens not to change the answer. An answer that does not fit must be
// refused, never truncated silently.
#include <sanitizer/asan_interface.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <utility>
#include <vector>

#include "cmr/detail/heap_layout.hpp"
#include "snapshot/scanner.hpp"

namespace {

using cmr::detail::BlockMeta;
using cmr::detail::GarbageWord;
using cmr::detail::kBitmapWords;
using cmr::detail::kBlockBytes;
using cmr::detail::kClassBytes;
using cmr::detail::kClasses;
using cmr::detail::ScanPlan;
using cmr::detail::ScanResult;
using cmr::detail::slots_of;

constexpr std::uint32_t kMaxBlocks = 16;
constexpr std::size_t kMaxAnswer = std::size_t{kMaxBlocks} * kBitmapWords;

void poison(std::uintptr_t begin, std::uintptr_t end) {
  if (end > begin) ASAN_POISON_MEMORY_REGION(reinterpret_cast<void*>(begin), end - begin);
}
void unpoison(std::uintptr_t begin, std::uintptr_t end) {
  if (end > begin) ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(begin), end - begin);
}

// Input bytes first, then a generator seeded from the whole input: short inputs still build
// large heaps, and every byte the fuzzer mutates still steers the decoding.
class Source {
 public:
  Source(const std::uint8_t* data, std::size_t size) : p_(data), left_(size) {
    std::uint64_t h = 0xcbf29ce484222325u;
    for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3u;
    state_ = h;
  }
  std::uint64_t rand() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  std::uint8_t byte() {
    if (left_ == 0) return static_cast<std::uint8_t>(rand() >> 56);
    --left_;
    return *p_++;
  }
  // In [0, bound); consumes only as many bytes as the bound needs.
  std::uint64_t below(std::uint64_t bound) {
    if (bound <= 1) return 0;
    std::uint64_t v = 0;
    for (std::uint64_t b = bound - 1; b != 0; b >>= 8) v = v << 8 | byte();
    return v % bound;
  }

 private:
  const std::uint8_t* p_;
  std::size_t left_;
  std::uint64_t state_;
};

// The heap and its table, mapped once (block-aligned) and kept poisoned; each run
// unpoisons only its candidates.
struct Arena {
  std::uintptr_t base = 0;
  BlockMeta* table = nullptr;
  ScanResult* result = nullptr;
};

Arena& arena() {
  static Arena a = [] {
    Arena x;
    const std::size_t bytes = (kMaxBlocks + 1) * kBlockBytes;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void* t = ::mmap(nullptr, kMaxBlocks * sizeof(BlockMeta), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void* r = ::mmap(nullptr, ScanResult::bytes_for(kMaxAnswer), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || t == MAP_FAILED || r == MAP_FAILED) {
      std::perror("scanner_fuzz: mmap");
      std::abort();
    }
    x.base = (reinterpret_cast<std::uintptr_t>(p) + kBlockBytes - 1) & ~(kBlockBytes - 1);
    poison(x.base, x.base + kMaxBlocks * kBlockBytes);
    x.table = static_cast<BlockMeta*>(t);
    x.result = static_cast<ScanResult*>(r);
    // off / size through the scanner's reciprocal must equal plain division everywhere.
    for (unsigned c = 0; c < kClasses; ++c) {
      const std::uint64_t recip = (std::uint64_t{1} << 32) / kClassBytes[c] + 1;
      for (std::uint64_t off = 0; off < kBlockBytes; ++off)
        if (((off * recip) >> 32) != off / kClassBytes[c]) {
          std::fprintf(stderr, "reciprocal of class %u wrong at offset %llu\n", c,
                       static_cast<unsigned long long>(off));
          std::abort();
        }
    }
    return x;
  }();
  return a;
}

// A candidate as the reference sees it.
struct Object {
  std::uintptr_t start;
  std::uintptr_t end;  // what a pointer may point into to keep it
  std::uint32_t block;
  std::uint32_t word;
  std::uint64_t bit;
};

// Interesting addresses to point at, besides candidates: built while the heap is laid out.
struct Targets {
  std::vector<std::uintptr_t> free_slots;  // not candidates: alloc 0, or freed
  std::vector<std::uintptr_t> elsewhere;   // tails, free blocks, large padding, tail blocks
};

struct Heap {
  std::uint32_t blocks = 0;
  std::vector<Object> objects;
  Targets targets;
};

std::uint32_t pick_class(Source& src) {
  // Mostly the classes nodes use; now and then any.
  static constexpr std::uint32_t common[] = {0, 1, 2, 3, 4, 6, 8, 10, 14};
  const std::uint8_t b = src.byte();
  return b < 200 ? common[b % (sizeof common / sizeof common[0])]
                 : static_cast<std::uint32_t>(src.below(kClasses));
}

void lay_out(Source& src, Heap& heap) {
  Arena& a = arena();
  heap.blocks = 1 + static_cast<std::uint32_t>(src.below(kMaxBlocks));
  for (std::uint32_t b = 0; b < heap.blocks; ++b) new (&a.table[b]) BlockMeta();
  const std::uint8_t density = src.byte();  // how full small blocks are
  for (std::uint32_t b = 0; b < heap.blocks;) {
    BlockMeta& m = a.table[b];
    const std::uintptr_t base = a.base + (std::uintptr_t{b} << cmr::detail::kBlockShift);
    const std::uint8_t kind = src.byte();
    if (kind < 150) {  // a small block
      const std::uint32_t cls = pick_class(src);
      m.cls = static_cast<std::uint8_t>(cls);
      m.state.store(cmr::detail::kBlockSmall, std::memory_order_relaxed);
      const std::size_t size = kClassBytes[cls], n = slots_of(cls);
      // Freed as a whole by an earlier cycle, not yet folded: no candidates, whatever the
      // bits say.
      const bool freed_all = src.byte() < 12;
      if (freed_all) m.freed_all.store(1, std::memory_order_relaxed);
      // Slots outside a window are free (most runs: small heaps; now and then a full block,
      // its last word and tail included).
      const bool whole = src.byte() < 16 || freed_all;
      const std::size_t lo = whole ? 0 : src.below(n);
      const std::size_t hi = whole ? n : std::min(n, lo + 1 + src.below(96));
      for (std::size_t s = lo; s < hi; ++s) {
        const std::size_t w = s / 64;
        const std::uint64_t bit = std::uint64_t{1} << (s % 64);
        const std::uint8_t roll = src.byte();
        // A full block (every slot allocated, none freed) now and then: all garbage, it is
        // answered as one entry.
        const bool alloc = whole && density >= 240 ? true : roll < density;
        const bool freed = !(whole && density >= 240) && (roll & 7) == 0 && (alloc || (roll & 8) != 0);
        if (alloc) m.alloc[w].fetch_or(bit, std::memory_order_relaxed);
        if (freed) m.freed[w].fetch_or(bit, std::memory_order_relaxed);
        const std::uintptr_t start = base + s * size;
        if (alloc && !freed && !freed_all) {
          heap.objects.push_back(Object{start, start + size, b, static_cast<std::uint32_t>(w), bit});
          unpoison(start, start + size);
        } else {
          heap.targets.free_slots.push_back(start + src.below(size));
        }
      }
      if (n % 64 != 0 && src.byte() < 32) {  // stray bits past the last slot name nothing
        const std::uint64_t past = ~((std::uint64_t{1} << (n % 64)) - 1);
        m.alloc[n / 64].fetch_or(past & src.rand(), std::memory_order_relaxed);
      }
      if (n * size < kBlockBytes) heap.targets.elsewhere.push_back(base + n * size);
      heap.targets.elsewhere.push_back(base + kBlockBytes);  // one past the block
      ++b;
    } else if (kind < 200 && b + 1 < heap.blocks) {  // a large object
      const std::uint32_t span = 1 + static_cast<std::uint32_t>(src.below(std::min<std::uint32_t>(4, heap.blocks - b)));
      const std::uint64_t bytes = (span - 1) * kBlockBytes + 1 + src.below(kBlockBytes);
      m.span = span;
      m.large_bytes = bytes;
      m.state.store(cmr::detail::kBlockLarge, std::memory_order_relaxed);
      for (std::uint32_t i = 1; i < span; ++i) {
        a.table[b + i].span = i;
        a.table[b + i].state.store(cmr::detail::kBlockLargeTail, std::memory_order_relaxed);
      }
      const std::uint8_t roll = src.byte();
      const bool alloc = roll < 200, freed = (roll & 7) == 0;
      if (alloc) m.alloc[0].store(1, std::memory_order_relaxed);
      if (freed) m.freed[0].store(1, std::memory_order_relaxed);
      const std::uintptr_t end = base + ((bytes + 7) & ~std::uint64_t{7});
      if (alloc && !freed) {
        heap.objects.push_back(Object{base, end, b, 0, 1});
        unpoison(base, end);
      }
      heap.targets.elsewhere.push_back(end);                     // just past its bytes
      if (span > 1) heap.targets.elsewhere.push_back(base + kBlockBytes + src.below(kBlockBytes));
      b += span;
    } else if (kind < 215) {  // a record no writer would leave: must be ignored safely
      const std::uint8_t what = src.byte() % 3;
      if (what == 0) {  // a tail that leads outside the table, or to a non-large block
        m.span = static_cast<std::uint32_t>(src.below(2 * kMaxBlocks + 2));
        m.state.store(cmr::detail::kBlockLargeTail, std::memory_order_relaxed);
      } else if (what == 1) {
        m.state.store(static_cast<std::uint8_t>(4 + src.below(250)), std::memory_order_relaxed);
        m.alloc[0].store(~std::uint64_t{0}, std::memory_order_relaxed);
      } else {  // free, with stale bits (the scanner must look at the state first)
        m.alloc[0].store(src.below(~std::uint64_t{0}), std::memory_order_relaxed);
      }
      heap.targets.elsewhere.push_back(base + src.below(kBlockBytes));
      ++b;
    } else {  // free
      heap.targets.elsewhere.push_back(base + src.below(kBlockBytes));
      ++b;
    }
  }
}

// The words the heap and the roots hold.
class Valuer {
 public:
  Valuer(Source& src, const Heap& heap, std::uint8_t null_share)
      : src_(src), heap_(heap), null_share_(null_share) {}

  std::uintptr_t next() {
    const std::uint8_t k = src_.byte();
    if (k < null_share_) return 0;
    const auto& objs = heap_.objects;
    switch (k % 8) {
      case 0:
      case 1:
      case 2: {  // into a candidate: first byte, last byte, anywhere, tagged
        if (objs.empty()) break;
        const Object& o = objs[src_.below(objs.size())];
        const std::uint8_t where = src_.byte() % 4;
        if (where == 0) return o.start;
        if (where == 1) return o.end - 1;
        if (where == 2) return o.start + src_.below(o.end - o.start);
        return (o.start + 8 * src_.below((o.end - o.start) / 8)) | src_.below(8);
      }
      case 3:
        if (!heap_.targets.free_slots.empty())
          return heap_.targets.free_slots[src_.below(heap_.targets.free_slots.size())];
        break;
      case 4:
        if (!heap_.targets.elsewhere.empty())
          return heap_.targets.elsewhere[src_.below(heap_.targets.elsewhere.size())];
        break;
      case 5: {  // just outside the heap, or the block after the table's end
        const Arena& a = arena();
        const std::uint8_t where = src_.byte() % 3;
        if (where == 0) return a.base - 1 - src_.below(4096);
        if (where == 1) return a.base + (std::uintptr_t{heap_.blocks} << cmr::detail::kBlockShift) + src_.below(kBlockBytes);
        return a.base + (std::uintptr_t{kMaxBlocks} << cmr::detail::kBlockShift);
      }
      default:
        break;
    }
    return src_.rand();
  }

 private:
  Source& src_;
  const Heap& heap_;
  std::uint8_t null_share_;
};

// Plain reachability over the candidates' extents.
struct Reference {
  std::vector<bool> marked;
  std::uint64_t reachable = 0, reachable_bytes = 0;

  void run(const std::vector<Object>& objs, const std::vector<std::uintptr_t>& roots) {
    std::vector<std::pair<std::uintptr_t, std::size_t>> index;  // (start, i), sorted
    for (std::size_t i = 0; i < objs.size(); ++i) index.emplace_back(objs[i].start, i);
    std::sort(index.begin(), index.end());
    marked.assign(objs.size(), false);
    std::vector<std::size_t> stack;
    auto visit = [&](std::uintptr_t w) {
      auto it = std::upper_bound(index.begin(), index.end(),
                                 std::make_pair(w, ~std::size_t{0}));
      if (it == index.begin()) return;
      const std::size_t i = std::prev(it)->second;
      if (w >= objs[i].end || marked[i]) return;
      marked[i] = true;
      stack.push_back(i);
    };
    for (std::uintptr_t r : roots) {
      visit(r);
      while (!stack.empty()) {
        const std::size_t i = stack.back();
        stack.pop_back();
        for (std::uintptr_t a = objs[i].start; a < objs[i].end; a += 8)
          visit(*reinterpret_cast<const std::uintptr_t*>(a));
      }
    }
    for (std::size_t i = 0; i < objs.size(); ++i)
      if (marked[i]) {
        ++reachable;
        const BlockMeta& m = arena().table[objs[i].block];
        reachable_bytes += m.state.load(std::memory_order_relaxed) == cmr::detail::kBlockLarge
                               ? std::uint64_t{m.span} * kBlockBytes
                               : kClassBytes[m.cls];
      }
  }
};

[[noreturn]] void fail(const Heap& h, const char* what) {
  std::fprintf(stderr, "scanner_fuzz: %s\n  blocks=%u candidates=%zu\n", what, h.blocks,
               h.objects.size());
  std::fflush(stderr);
  __builtin_trap();
}

void clean_up(Heap& heap) {
  Arena& a = arena();
  for (const Object& o : heap.objects) poison(o.start, o.end);
  for (std::uint32_t b = 0; b < heap.blocks; ++b) a.table[b].~BlockMeta();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Source src(data, size);
  Heap heap;
  lay_out(src, heap);
  Arena& a = arena();

  // Contents last, once every address exists to be pointed at.
  Valuer valuer(src, heap, src.byte() / 2);
  for (const Object& o : heap.objects)
    for (std::uintptr_t w = o.start; w < o.end; w += 8)
      *reinterpret_cast<std::uintptr_t*>(w) = valuer.next();
  std::vector<std::uintptr_t> roots(src.below(17));
  for (auto& r : roots) r = valuer.next();

  Reference ref;
  ref.run(heap.objects, roots);
  std::set<std::pair<std::uint32_t, std::uint32_t>> garbage_words;
  std::vector<GarbageWord> expected;
  {
    std::vector<std::pair<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t>> acc;
    for (std::size_t i = 0; i < heap.objects.size(); ++i)
      if (!ref.marked[i]) acc.push_back({{heap.objects[i].block, heap.objects[i].word}, heap.objects[i].bit});
    std::sort(acc.begin(), acc.end());
    for (const auto& [key, bit] : acc) {
      if (expected.empty() || expected.back().block != key.first || expected.back().word != key.second)
        expected.push_back(GarbageWord{key.first, key.second, 0});
      expected.back().bits |= bit;
    }
    // A small block whose every slot was a candidate, none reached: one whole-block entry.
    std::vector<GarbageWord> folded;
    for (std::size_t i = 0; i < expected.size();) {
      const std::uint32_t b = expected[i].block;
      std::size_t j = i;
      while (j < expected.size() && expected[j].block == b) ++j;
      const BlockMeta& m = a.table[b];
      bool whole = m.state.load(std::memory_order_relaxed) == cmr::detail::kBlockSmall;
      if (whole) {
        const std::size_t n = slots_of(m.cls), words = (n + 63) / 64;
        whole = j - i == words;
        for (std::size_t k = i; whole && k < j; ++k) {
          const std::size_t first = std::size_t{expected[k].word} * 64;
          const std::uint64_t valid =
              n - first >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (n - first)) - 1;
          whole = expected[k].word == k - i && expected[k].bits == valid;
        }
      }
      if (whole) folded.push_back(GarbageWord{b, cmr::detail::kWholeBlock, 0});
      else folded.insert(folded.end(), expected.begin() + static_cast<long>(i), expected.begin() + static_cast<long>(j));
      i = j;
    }
    expected.swap(folded);
  }

  // Now and then an answer buffer too small for the answer: scan() must refuse.
  const std::uint8_t squeeze = src.byte();
  const std::size_t capacity =
      squeeze < 16 && !expected.empty() ? src.below(expected.size()) : kMaxAnswer;
  ScanResult* result = a.result;
  const auto rb = reinterpret_cast<std::uintptr_t>(result);
  std::memset(static_cast<void*>(result), 0, sizeof(ScanResult));
  poison(rb + ScanResult::bytes_for(capacity), rb + ScanResult::bytes_for(kMaxAnswer));

  const std::vector<std::uintptr_t> root_array = roots;
  ScanPlan plan{};
  plan.heap_base = a.base;
  plan.blocks = a.table;
  plan.block_count = heap.blocks;
  plan.roots = root_array.data();
  plan.root_count = root_array.size();
  plan.result = result;
  plan.capacity = capacity;
  plan.cycle = 0x5eed;

  const bool ok = cmr::detail::scan(plan);
  const bool fits = expected.size() <= capacity;
  if (fits && !ok) fail(heap, "refused a plan whose answer fits");
  if (!fits && ok) fail(heap, "accepted an answer that does not fit (garbage would be lost)");
  if (ok) {
    char what[256];
    if (result->complete.load(std::memory_order_relaxed) != 0)
      fail(heap, "scan() set `complete` (the child's entry point stores it last)");
    if (result->count != expected.size()) {
      std::snprintf(what, sizeof what, "%llu garbage words, expected %zu",
                    static_cast<unsigned long long>(result->count), expected.size());
      fail(heap, what);
    }
    const GarbageWord* got = result->entries();
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (got[i].block == expected[i].block && got[i].word == expected[i].word &&
          got[i].bits == expected[i].bits)
        continue;
      std::snprintf(what, sizeof what,
                    "entry #%zu: block %u word %u bits %#llx, expected block %u word %u bits %#llx",
                    i, got[i].block, got[i].word, static_cast<unsigned long long>(got[i].bits),
                    expected[i].block, expected[i].word,
                    static_cast<unsigned long long>(expected[i].bits));
      fail(heap, what);
    }
    if (result->candidates != heap.objects.size() || result->reachable != ref.reachable ||
        result->reachable_bytes != ref.reachable_bytes) {
      std::snprintf(what, sizeof what,
                    "counts: candidates %llu/%zu reachable %llu/%llu bytes %llu/%llu",
                    static_cast<unsigned long long>(result->candidates), heap.objects.size(),
                    static_cast<unsigned long long>(result->reachable),
                    static_cast<unsigned long long>(ref.reachable),
                    static_cast<unsigned long long>(result->reachable_bytes),
                    static_cast<unsigned long long>(ref.reachable_bytes));
      fail(heap, what);
    }
  }
  unpoison(rb + ScanResult::bytes_for(capacity), rb + ScanResult::bytes_for(kMaxAnswer));
  clean_up(heap);
  return 0;
}
