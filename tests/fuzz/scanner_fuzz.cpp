// tests/fuzz/scanner_fuzz.cpp: libFuzzer target for the mark phase, cmr::detail::scan().
//
// Each input is decoded into a small tracked heap (objects behind their ObjectHeaders, whose
// words point at, into, just past or nowhere near other objects), a candidate set split
// between the sorted survivors and allocation-log ranges over LogChunks, and roots. scan()
// runs in-process; its answer is checked against reachability computed here by plain BFS.
// Memory the scanner has no business reading (gaps, objects that are not candidates, log
// entries outside the ranges, past the result) is ASan-poisoned, so a stray read is reported
// even when it happens not to change the answer. Plans that list a candidate twice or whose
// log chain is broken must be refused.
#include <sanitizer/asan_interface.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cmr/detail/object.hpp"
#include "cmr/detail/thread_record.hpp"
#include "scanner.hpp"

namespace {

using cmr::detail::kLogChunkEntries;
using cmr::detail::LogChunk;
using cmr::detail::LogRange;
using cmr::detail::ObjectHeader;
using cmr::detail::ScanPlan;
using cmr::detail::ScanResult;
using cmr::detail::scan_span;

constexpr std::size_t kMaxObjects = 300;
constexpr std::size_t kDenseArenaBytes = std::size_t{8} << 20;
// Large enough that candidates spread over it are far too sparse for any dense index.
constexpr std::size_t kSpreadArenaBytes = std::size_t{128} << 20;
constexpr std::size_t kMaxRanges = 4;
constexpr std::size_t kMaxChunksPerRange = 3;
// Each range may also have one chunk linked after its last (the log grew after the cut).
constexpr std::size_t kChunkPool = kMaxRanges * (kMaxChunksPerRange + 1);

const cmr::detail::TypeInfo kType{nullptr, 1, 16};

std::uintptr_t round_up(std::uintptr_t v, std::uintptr_t a) { return (v + a - 1) & ~(a - 1); }

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
  std::uint64_t word() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | byte();
    return v;
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

struct Arena {
  std::uintptr_t base;
  std::size_t bytes;
};

// Mapped once and kept poisoned; each run unpoisons only its candidates' header + span.
Arena make_arena(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("scanner_fuzz: mmap");
    std::abort();
  }
  auto base = reinterpret_cast<std::uintptr_t>(p);
  poison(base, base + bytes);
  return {base, bytes};
}

LogChunk* chunk_pool() {
  static LogChunk* pool = [] {
    void* p = ::mmap(nullptr, kChunkPool * sizeof(LogChunk), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::perror("scanner_fuzz: mmap");
      std::abort();
    }
    return static_cast<LogChunk*>(p);
  }();
  return pool;
}

enum class Layout : std::uint8_t { kDense, kSeparate, kSpread };
const char* layout_name(Layout l) {
  return l == Layout::kDense ? "dense" : l == Layout::kSeparate ? "separate" : "spread";
}

enum class Role : std::uint8_t { kSurvivor, kLogged, kOutsider };

struct Object {
  std::uintptr_t start = 0;
  std::uint64_t bytes = 0;
  std::size_t span = 0;
  std::size_t align = 16;
  Role role = Role::kOutsider;
  void* block = nullptr;  // Layout::kSeparate: the aligned_alloc block
  std::size_t block_bytes = 0;
};

// Word values a conservative scanner must classify: starts, interiors, tags, the exact end
// (which must not keep the object alive), header bytes, junk.
class Valuer {
 public:
  Valuer(Source& src, const std::vector<Object>& objects, std::uint8_t zero_bias)
      : src_(src), objects_(objects), zero_bias_(zero_bias) {}

  std::uintptr_t next() {
    if (src_.byte() < zero_bias_) return 0;
    const Object& o = objects_[src_.below(objects_.size())];
    const std::uintptr_t s = o.start, span = o.span;
    switch (src_.byte() % 16) {
      case 5: case 6: return s + 8 * src_.below(span / 8);
      case 7: return s + src_.below(span);
      case 8: return s | (1 + src_.below(3));
      case 9: return (s + span - 8) | (1 + src_.below(3));
      case 10: return s + span - 1;
      case 11: return s + span;
      case 12: return s - 1 - src_.below(16);
      case 13: return s + span + src_.below(64);
      case 14: return src_.word();
      case 15: return src_.byte() < 128 ? src_.below(4096) : ~std::uintptr_t{0} - src_.below(4096);
      default: return s;
    }
  }

 private:
  Source& src_;
  const std::vector<Object>& objects_;
  std::uint8_t zero_bias_;
};

// Everything one input builds; the destructor gives it back (and re-poisons the arenas).
struct Heap {
  Layout layout = Layout::kDense;
  std::vector<Object> objects;
  std::vector<LogChunk*> chunks;  // pool chunks in use
  ~Heap() {
    for (const Object& o : objects) {
      if (o.block != nullptr) {
        auto b = reinterpret_cast<std::uintptr_t>(o.block);
        unpoison(b, b + o.block_bytes);
        std::free(o.block);
      } else if (o.role != Role::kOutsider) {
        poison(o.start - sizeof(ObjectHeader), o.start + o.span);
      }
    }
    for (LogChunk* c : chunks) {
      auto b = reinterpret_cast<std::uintptr_t>(c);
      unpoison(b, b + sizeof(LogChunk));
    }
  }
};

bool place_objects(Source& src, Heap& heap) {
  static const Arena dense = make_arena(kDenseArenaBytes);
  static const Arena spread = make_arena(kSpreadArenaBytes);
  const Arena& arena = heap.layout == Layout::kSpread ? spread : dense;
  std::uintptr_t cursor = arena.base;
  const std::uintptr_t arena_end = arena.base + arena.bytes;
  const std::size_t stride = std::size_t{1} << (6 + src.below(18));
  const std::uint8_t survivor_share = src.byte();
  const std::uint8_t outsider_share = src.byte() / 4;

  // Mostly small heaps (more runs per second), often enough a full one.
  const std::uint8_t heap_kind = src.byte();
  const std::size_t n = 1 + src.below(heap_kind < 128 ? 32 : heap_kind < 224 ? 100 : kMaxObjects);
  for (std::size_t i = 0; i < n; ++i) {
    Object o;
    const std::uint8_t size_kind = src.byte();
    if (size_kind < 4) o.bytes = 4064 + src.below(65);  // around a page: large or not
    else if (size_kind < 10) o.bytes = 2048 + src.below(18 * 1024);
    else if (size_kind < 30) o.bytes = src.below(4097);
    else if (size_kind < 70) o.bytes = src.below(17);
    else o.bytes = src.below(601);
    o.span = scan_span(o.bytes);
    const std::uint8_t align_kind = src.byte();
    o.align = align_kind < 12 ? 64 : align_kind < 36 ? 32 : 16;
    o.role = src.byte() < outsider_share ? Role::kOutsider
             : src.byte() < survivor_share ? Role::kSurvivor
                                            : Role::kLogged;

    if (heap.layout == Layout::kSeparate) {
      o.block_bytes = round_up(o.align + o.span, o.align);
      o.block = std::aligned_alloc(o.align, o.block_bytes);
      if (o.block == nullptr) std::abort();
      auto b = reinterpret_cast<std::uintptr_t>(o.block);
      o.start = b + o.align;
      if (o.role == Role::kOutsider) {
        poison(b, b + o.block_bytes);
      } else {
        poison(b, o.start - sizeof(ObjectHeader));
        poison(o.start + o.span, b + o.block_bytes);
      }
    } else {
      const std::uint8_t gap_kind = src.byte();
      std::uintptr_t gap = 0;
      if (heap.layout == Layout::kSpread && gap_kind < 64) gap = stride * (1 + src.below(3));
      else if (gap_kind >= 192) gap = 16 * (gap_kind - 192);
      std::uintptr_t start = round_up(cursor + gap + sizeof(ObjectHeader), o.align);
      if (start + o.span > arena_end) break;  // a smaller heap than asked for
      o.start = start;
      cursor = start + o.span;
      if (o.role != Role::kOutsider) unpoison(start - sizeof(ObjectHeader), start + o.span);
    }
    if (o.role != Role::kOutsider) {
      auto* h = reinterpret_cast<ObjectHeader*>(o.start - sizeof(ObjectHeader));
      h->bytes = o.bytes;
      h->type = &kType;
    }
    heap.objects.push_back(o);
  }
  return !heap.objects.empty();
}

template <class T>
std::unique_ptr<T[]> exact_copy(const std::vector<T>& v) {
  // Exactly sized, so ASan sees a read one past the end (a vector's spare capacity hides it).
  std::unique_ptr<T[]> p(new T[v.size()]);
  std::copy(v.begin(), v.end(), p.get());
  return p;
}

// Lays `pieces` out as one thread's log chain and returns its range. Entries outside the
// range are filled with addresses of real objects (reading them would list extra or
// duplicate candidates) and poisoned.
LogRange build_range(Source& src, Heap& heap,
                     const std::vector<std::vector<std::uintptr_t>>& pieces, bool realistic) {
  LogChunk* pool = chunk_pool();
  const std::size_t c = pieces.size();
  std::vector<LogChunk*> chain;
  for (std::size_t j = 0; j < c; ++j) {
    LogChunk* ch = &pool[heap.chunks.size()];
    heap.chunks.push_back(ch);
    ch->next.store(nullptr, std::memory_order_relaxed);
    if (!chain.empty()) chain.back()->next.store(ch, std::memory_order_relaxed);
    chain.push_back(ch);
  }
  auto garbage = [&] {
    return heap.objects[src.rand() % heap.objects.size()].start;
  };
  LogRange range{chain.front(), 0, chain.back(), 0};
  for (std::size_t j = 0; j < c; ++j) {
    LogChunk* ch = chain[j];
    const std::size_t m = pieces[j].size();
    std::size_t lo = 0;
    if (j == 0) {
      // A linked chunk is full in the runtime; the free mode also tries short ones, which
      // the scanner must handle the same way since it reads their `len`.
      if (realistic && c > 1) lo = kLogChunkEntries - m;
      else if (realistic) lo = src.below(kLogChunkEntries - m + 1);
      else lo = src.below(8);
      range.first_index = lo;
    }
    const std::size_t hi = lo + m;
    std::size_t len = hi;
    if (j + 1 == c) {
      range.last_len = hi;
      len = std::min<std::size_t>(kLogChunkEntries, hi + src.below(4));
    } else if (realistic) {
      len = kLogChunkEntries;
    }
    ch->len.store(len, std::memory_order_relaxed);
    for (std::size_t k = 0; k < lo; ++k) ch->entries[k] = reinterpret_cast<void*>(garbage());
    for (std::size_t k = 0; k < m; ++k)  // as record_allocation writes them: flagged when large
      ch->entries[lo + k] = reinterpret_cast<void*>(
          cmr::detail::log_entry(reinterpret_cast<const void*>(pieces[j][k])));
    for (std::size_t k = hi; k < len; ++k) ch->entries[k] = reinterpret_cast<void*>(garbage());
    auto e = reinterpret_cast<std::uintptr_t>(ch->entries);
    poison(e, e + lo * sizeof(void*));
    poison(e + hi * sizeof(void*), e + kLogChunkEntries * sizeof(void*));
  }
  if (src.byte() < 64) {
    // The thread's log grew past the cut: the scanner must stop at `last`.
    LogChunk* tail = &pool[heap.chunks.size()];
    heap.chunks.push_back(tail);
    tail->next.store(nullptr, std::memory_order_relaxed);
    const std::size_t len = src.below(16);
    tail->len.store(len, std::memory_order_relaxed);
    for (std::size_t k = 0; k < len; ++k) tail->entries[k] = reinterpret_cast<void*>(garbage());
    chain.back()->next.store(tail, std::memory_order_relaxed);
    auto t = reinterpret_cast<std::uintptr_t>(tail);
    poison(t, t + sizeof(LogChunk));
  }
  return range;
}

// Splits v into `parts` contiguous pieces at input-chosen cuts (pieces may be empty).
std::vector<std::vector<std::uintptr_t>> split(Source& src, const std::vector<std::uintptr_t>& v,
                                               std::size_t parts) {
  std::vector<std::size_t> cuts{0, v.size()};
  for (std::size_t i = 1; i < parts; ++i) cuts.push_back(src.below(v.size() + 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::vector<std::uintptr_t>> out;
  for (std::size_t i = 0; i + 1 < cuts.size(); ++i)
    out.emplace_back(v.begin() + cuts[i], v.begin() + cuts[i + 1]);
  return out;
}

// How a candidate was first reached, for the report.
struct Via {
  long from = -2;  // -2: unreached, -1: a root, else the candidate whose word reached it
  std::uintptr_t where = 0;  // root index, or the word's address
  std::uintptr_t value = 0;
};

// The answer scan() must give. Kept out of coverage instrumentation: its comparisons are
// the bulk of a run's work and tell the fuzzer nothing about the scanner.
#define CMR_FUZZ_UNTRACED __attribute__((no_sanitize("coverage")))
struct Reference {
  std::vector<std::uintptr_t> starts;  // ascending
  std::vector<std::size_t> spans;
  std::vector<Via> via;
  std::vector<std::size_t> stack;
  std::uint64_t reachable = 0;

  CMR_FUZZ_UNTRACED long find(std::uintptr_t w) const {
    std::size_t lo = 0, hi = starts.size();  // first start above w
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if (starts[mid] <= w) lo = mid + 1; else hi = mid;
    }
    if (lo == 0 || w >= starts[lo - 1] + spans[lo - 1]) return -1;
    return static_cast<long>(lo - 1);
  }

  CMR_FUZZ_UNTRACED void visit(std::uintptr_t w, long from, std::uintptr_t where) {
    long i = find(w);
    if (i < 0 || via[i].from != -2) return;
    via[i] = Via{from, where, w};
    ++reachable;
    stack.push_back(static_cast<std::size_t>(i));
  }

  CMR_FUZZ_UNTRACED void run(const std::vector<std::uintptr_t>& roots) {
    via.assign(starts.size(), Via{});
    for (std::size_t r = 0; r < roots.size(); ++r) visit(roots[r], -1, r);
    while (!stack.empty()) {
      std::size_t i = stack.back();
      stack.pop_back();
      for (std::uintptr_t a = starts[i]; a < starts[i] + spans[i]; a += 8)
        visit(*reinterpret_cast<const std::uintptr_t*>(a), static_cast<long>(i), a);
    }
  }
};

struct Summary {
  Layout layout;
  std::size_t objects, survivors, logged, ranges, roots;
  bool realistic;
  const ScanResult* result;  // null until scan() answered
};

[[noreturn]] void fail(const Summary& s, const char* what) {
  std::fprintf(stderr,
               "scanner_fuzz: %s\n  layout=%s objects=%zu survivors=%zu logged=%zu ranges=%zu "
               "(%s chunks) roots=%zu index=%s\n",
               what, layout_name(s.layout), s.objects, s.survivors, s.logged, s.ranges,
               s.realistic ? "full" : "short", s.roots,
               s.result == nullptr ? "?" : s.result->dense != 0 ? "dense" : "sparse");
  std::fflush(stderr);
  __builtin_trap();
}

// For a candidate marked without reason: the words that come close to it.
void describe_near(const Reference& ref, const std::vector<std::uintptr_t>& roots,
                   std::size_t i) {
  const std::uintptr_t lo = ref.starts[i] - 16, hi = ref.starts[i] + ref.spans[i] + 16;
  int shown = 0;
  for (std::size_t r = 0; r < roots.size() && shown < 8; ++r) {
    if (roots[r] < lo || roots[r] >= hi) continue;
    std::fprintf(stderr, "    root #%zu = %#zx (%+ld from its start)\n", r,
                 static_cast<std::size_t>(roots[r]),
                 static_cast<long>(roots[r] - ref.starts[i]));
    ++shown;
  }
  for (std::size_t j = 0; j < ref.starts.size() && shown < 8; ++j) {
    if (ref.via[j].from == -2) continue;
    for (std::uintptr_t a = ref.starts[j]; a < ref.starts[j] + ref.spans[j] && shown < 8; a += 8) {
      const std::uintptr_t w = *reinterpret_cast<const std::uintptr_t*>(a);
      if (w < lo || w >= hi) continue;
      std::fprintf(stderr,
                   "    word %#zx = %#zx in reachable candidate #%zu (%+ld from its start)\n",
                   static_cast<std::size_t>(a), static_cast<std::size_t>(w), j,
                   static_cast<long>(w - ref.starts[i]));
      ++shown;
    }
  }
}

void describe_path(const Reference& ref, std::size_t i) {
  for (int depth = 0; depth < 8; ++depth) {
    const Via& v = ref.via[i];
    if (v.from == -1) {
      std::fprintf(stderr, "    <- root #%zu = %#zx\n", static_cast<std::size_t>(v.where),
                   static_cast<std::size_t>(v.value));
      return;
    }
    std::fprintf(stderr, "    <- word %#zx = %#zx in candidate #%ld (%#zx, span %zu)\n",
                 static_cast<std::size_t>(v.where), static_cast<std::size_t>(v.value), v.from,
                 static_cast<std::size_t>(ref.starts[v.from]), ref.spans[v.from]);
    i = static_cast<std::size_t>(v.from);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Source src(data, size);
  Heap heap;
  const std::uint8_t mode = src.byte();
  heap.layout = static_cast<Layout>(mode % 3);
  if (!place_objects(src, heap)) return 0;

  std::vector<std::uintptr_t> survivors, logged;
  for (const Object& o : heap.objects) {
    if (o.role == Role::kSurvivor) survivors.push_back(o.start);
    if (o.role == Role::kLogged) logged.push_back(o.start);
  }
  std::sort(survivors.begin(), survivors.end());
  for (std::size_t i = logged.size(); i > 1; --i) std::swap(logged[i - 1], logged[src.below(i)]);

  // The candidates as they should come back, before any duplicate is injected.
  std::vector<std::uintptr_t> candidates = survivors;
  candidates.insert(candidates.end(), logged.begin(), logged.end());
  std::sort(candidates.begin(), candidates.end());

  const char* refusal = nullptr;  // why scan() must refuse, if it must
  const std::uint8_t dup = src.byte();
  if (dup < 24) {
    const int kind = dup % 3;
    if (kind == 0 && !survivors.empty()) {
      logged.insert(logged.begin() + src.below(logged.size() + 1),
                    survivors[src.below(survivors.size())]);
      refusal = "accepted a survivor that is also in the log";
    } else if (kind == 1 && !logged.empty()) {
      logged.insert(logged.begin() + src.below(logged.size() + 1),
                    logged[src.below(logged.size())]);
      refusal = "accepted a log entry listed twice";
    } else if (kind == 2 && !survivors.empty()) {
      std::size_t i = src.below(survivors.size());
      survivors.insert(survivors.begin() + i, survivors[i]);
      refusal = "accepted a survivor listed twice";
    }
  }

  const bool realistic = (src.byte() & 1) != 0;
  const std::size_t range_count = 1 + src.below(kMaxRanges);
  std::vector<LogRange> ranges;
  std::vector<std::size_t> multi_chunk;  // ranges whose chain has a link to break
  for (const auto& part : split(src, logged, range_count)) {
    const std::size_t c = 1 + src.below(realistic ? 2 : kMaxChunksPerRange);
    if (c > 1) multi_chunk.push_back(ranges.size());
    ranges.push_back(build_range(src, heap, split(src, part, c), realistic));
  }
  if (src.byte() < 8 && !multi_chunk.empty()) {
    // A link before `last` is missing: any answer would miss candidates, so none is given.
    LogChunk* c = ranges[multi_chunk[src.below(multi_chunk.size())]].first;
    c->next.store(nullptr, std::memory_order_relaxed);
    refusal = "accepted a log chain that ends before its last chunk";
  }

  // Contents last, once every address exists to be pointed at.
  Valuer valuer(src, heap.objects, src.byte() / 2);
  for (const Object& o : heap.objects) {
    if (o.role == Role::kOutsider) continue;
    for (std::uintptr_t a = o.start; a < o.start + o.span; a += 8)
      *reinterpret_cast<std::uintptr_t*>(a) = valuer.next();
  }
  std::vector<std::uintptr_t> roots(src.below(17));
  for (auto& r : roots) r = valuer.next();

  Reference ref;
  ref.starts = candidates;
  for (std::uintptr_t s : candidates)
    ref.spans.push_back(
        scan_span(reinterpret_cast<const ObjectHeader*>(s - sizeof(ObjectHeader))->bytes));
  ref.run(roots);

  const std::size_t n = survivors.size() + logged.size();
  const std::size_t result_bytes = ScanResult::bytes_for(n);
  const std::size_t result_alloc = round_up(result_bytes, 16);
  auto* result = static_cast<ScanResult*>(std::aligned_alloc(16, result_alloc));
  if (result == nullptr) std::abort();
  std::memset(static_cast<void*>(result), 0, result_alloc);
  auto rb = reinterpret_cast<std::uintptr_t>(result);
  poison(rb + result_bytes, rb + result_alloc);

  auto survivor_array = exact_copy(survivors);
  auto range_array = exact_copy(ranges);
  auto root_array = exact_copy(roots);
  ScanPlan plan{};
  plan.survivors = survivor_array.get();
  plan.survivor_count = survivors.size();
  plan.ranges = range_array.get();
  plan.range_count = ranges.size();
  plan.new_count = logged.size();
  plan.roots = root_array.get();
  plan.root_count = roots.size();
  plan.result = result;
  plan.epoch = 0x5eed;

  Summary summary{heap.layout, heap.objects.size(), survivors.size(), logged.size(),
                  ranges.size(), roots.size(), realistic, nullptr};
  const bool ok = cmr::detail::scan(plan);
  if (refusal != nullptr && ok) fail(summary, refusal);
  if (refusal == nullptr && !ok) fail(summary, "refused a valid plan");
  if (ok) {
    summary.result = result;
    char what[256];
    if (result->complete.load(std::memory_order_relaxed) != 0)
      fail(summary, "scan() set `complete` (the child's entry point stores it last)");
    if (result->count != n) {
      std::snprintf(what, sizeof what, "count %llu, expected %zu",
                    static_cast<unsigned long long>(result->count), n);
      fail(summary, what);
    }
    const std::uintptr_t* entries = result->entries();
    for (std::size_t i = 0; i < n; ++i) {
      const bool marked = ref.via[i].from != -2;
      const std::uintptr_t want = candidates[i] | (marked ? 1 : 0);
      if (entries[i] == want) continue;
      std::fprintf(stderr, "entry #%zu: got %#zx, expected %#zx (span %zu)\n", i,
                   static_cast<std::size_t>(entries[i]), static_cast<std::size_t>(want),
                   ref.spans[i]);
      if ((entries[i] & ~std::uintptr_t{1}) == candidates[i]) {
        if (marked) {
          std::fprintf(stderr, "  reachable but not marked; a path:\n");
          describe_path(ref, i);
        } else {
          std::fprintf(stderr, "  marked but unreachable; words near it:\n");
          describe_near(ref, roots, i);
        }
      }
      fail(summary, (entries[i] & ~std::uintptr_t{1}) == candidates[i]
                        ? "wrong mark"
                        : "wrong candidate list (order, membership or stray bits)");
    }
    if (result->reachable != ref.reachable) {
      std::snprintf(what, sizeof what, "reachable %llu, expected %llu",
                    static_cast<unsigned long long>(result->reachable),
                    static_cast<unsigned long long>(ref.reachable));
      fail(summary, what);
    }
  }
  unpoison(rb + result_bytes, rb + result_alloc);
  std::free(result);
  return 0;
}
