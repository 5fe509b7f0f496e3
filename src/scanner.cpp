// src/scanner.cpp: the mark phase, run in the snapshot child.
//
// Keeps DESIGN invariants 5 (the child never allocates: scratch memory comes from mmap,
// std::sort allocates nothing, exit is the raw exit_group) and 7 (conservative, never
// eager: any word that points into [object, object + scan_span) of a candidate, tag bits
// and interior pointers included, marks it; nothing is ever judged unreachable on a guess).
//
// Two indexes answer "which candidate contains this word?":
//  - dense: when the candidates' address span is at most ~16 KiB per candidate (the
//    region-backed allocators, and compact malloc heaps), a bitmap of object starts over
//    that span, one bit per 16-byte granule. A lookup is a range check plus a short
//    backward bit search (objects up to kSmallSpan); larger objects sit in a small sorted
//    table. No sort of the candidates is needed: the answer is the bitmap read in order.
//  - sparse: otherwise (malloc heaps spread over distant arenas), the candidates sorted,
//    and a binary search per word.
// Both produce the same answer; the fuzz target (tests/fuzz) checks them against a
// reference reachability computation.
#include "scanner.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "cmr/detail/object.hpp"
#include "sys.hpp"

namespace cmr::detail {

namespace {

constexpr std::uintptr_t kMark = 1;
constexpr std::size_t kGranule = 16;         // every tracked object is 16-byte aligned
constexpr std::size_t kBytesPerCandidate = 16 * 1024;  // densest span still worth a bitmap

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

std::uintptr_t span_of(std::uintptr_t object) noexcept {
  return scan_span(header_of(reinterpret_cast<void*>(object))->bytes);
}

// Candidates come in two lists: the survivors (plain sorted addresses; their headers are
// read, they are the live set) and this cycle's log entries (flagged kLargeEntry by the
// allocating thread, so a small one's header is read only when a word points into it).
struct Candidate {
  std::uintptr_t address;
  bool large;
};
inline Candidate survivor(std::uintptr_t p) noexcept { return {p, span_of(p) > kSmallSpan}; }
inline Candidate logged(std::uintptr_t e) noexcept {
  return {e & ~kLargeEntry, (e & kLargeEntry) != 0};
}

// The work list: each reached candidate is pushed once, then its words are visited.
struct MarkStack {
  Scratch<std::uintptr_t> items;
  std::size_t depth = 0;
  std::uint64_t reachable = 0, words = 0;
};

// ---- sparse index: sorted candidates, binary search ----
class SparseIndex {
 public:
  SparseIndex(std::uintptr_t* entries, const std::uintptr_t* ends, std::size_t n) noexcept
      : entries_(entries), ends_(ends), n_(n) {
    if (n_ != 0) {
      lo_ = entries_[0];
      for (std::size_t i = 0; i < n_; ++i) hi_ = std::max(hi_, ends_[i]);
    }
  }
  // Marks the candidate containing `word`, if any and not yet marked; returns its start.
  std::uintptr_t mark(std::uintptr_t word) noexcept {
    if (word < lo_ || word >= hi_) return 0;
    std::size_t lo = 0, hi = n_;  // last entry whose start is <= word
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if ((entries_[mid] & ~kMark) <= word) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return 0;
    std::size_t i = lo - 1;
    if (word >= ends_[i] || (entries_[i] & kMark) != 0) return 0;
    entries_[i] |= kMark;
    return entries_[i] & ~kMark;
  }

 private:
  std::uintptr_t* entries_;
  const std::uintptr_t* ends_;
  std::size_t n_;
  std::uintptr_t lo_ = 0, hi_ = 0;
};

// ---- dense index: start bitmap over [lo, hi), plus a sorted table of large objects ----
class DenseIndex {
 public:
  bool build(const std::uintptr_t* a, std::size_t na, const std::uintptr_t* b, std::size_t nb,
             std::uintptr_t lo, std::uintptr_t hi) noexcept {
    lo_ = lo;
    hi_ = hi;
    words_ = ((hi - lo + kGranule - 1) / kGranule + 63) / 64;
    if (!starts_.map(words_) || !marks_.map(words_) || !large_.map(na + nb)) return false;
    for (std::size_t i = 0; i < na + nb; ++i) {
      const Candidate c = i < na ? survivor(a[i]) : logged(b[i - na]);
      if (c.large) {
        large_[large_count_++] = c.address;
        continue;
      }
      const std::size_t g = (c.address - lo_) / kGranule;
      const std::uint64_t bit = std::uint64_t{1} << (g % 64);
      if ((starts_[g / 64] & bit) != 0) return false;  // a candidate listed twice
      starts_[g / 64] |= bit;
    }
    std::sort(large_.data, large_.data + large_count_);
    for (std::size_t i = 1; i < large_count_; ++i)
      if (large_[i] == large_[i - 1]) return false;
    return true;
  }

  std::uintptr_t mark(std::uintptr_t word) noexcept {
    if (word < lo_ || word >= hi_) return 0;
    const std::size_t g = (word - lo_) / kGranule;
    // A small object containing `word` starts at most kSmallSpan / kGranule granules back.
    const std::size_t floor = g >= kSmallSpan / kGranule ? g - kSmallSpan / kGranule : 0;
    std::size_t w = g / 64;
    std::uint64_t bits = starts_[w] & (~std::uint64_t{0} >> (63 - g % 64));
    while (bits == 0 && w * 64 > floor) bits = starts_[--w];
    if (bits != 0) {
      const std::size_t s = w * 64 + 63 - static_cast<std::size_t>(__builtin_clzll(bits));
      const std::uintptr_t object = lo_ + s * kGranule;
      if (s >= floor && word < object + span_of(object)) {
        const std::uint64_t bit = std::uint64_t{1} << (s % 64);
        if ((marks_[s / 64] & bit) != 0) return 0;
        marks_[s / 64] |= bit;
        return object;
      }
    }
    return mark_large(word);
  }

  // Writes every candidate in ascending order, reachable ones with kMark; returns count.
  std::size_t answer(std::uintptr_t* out) noexcept {
    std::size_t k = 0, j = 0;
    for (std::size_t w = 0; w < words_; ++w) {
      for (std::uint64_t bits = starts_[w]; bits != 0; bits &= bits - 1) {
        const std::size_t s = w * 64 + static_cast<std::size_t>(__builtin_ctzll(bits));
        const std::uintptr_t object = lo_ + s * kGranule;
        for (; j < large_count_ && (large_[j] & ~kMark) < object; ++j) out[k++] = large_[j];
        out[k++] = object | ((marks_[w] >> (s % 64)) & 1);
      }
    }
    for (; j < large_count_; ++j) out[k++] = large_[j];
    return k;
  }

 private:
  std::uintptr_t mark_large(std::uintptr_t word) noexcept {
    std::size_t lo = 0, hi = large_count_;
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if ((large_[mid] & ~kMark) <= word) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return 0;
    std::uintptr_t& e = large_[lo - 1];
    const std::uintptr_t object = e & ~kMark;
    if ((e & kMark) != 0 || word >= object + span_of(object)) return 0;
    e |= kMark;
    return object;
  }

  std::uintptr_t lo_ = 0, hi_ = 0;
  std::size_t words_ = 0, large_count_ = 0;
  Scratch<std::uint64_t> starts_, marks_;
  Scratch<std::uintptr_t> large_;
};

template <class Index>
void visit(Index& index, MarkStack& stack, std::uintptr_t word) noexcept {
  if (std::uintptr_t object = index.mark(word)) {
    ++stack.reachable;
    stack.items[stack.depth++] = object;
  }
}

template <class Index>
void mark_from_roots(Index& index, MarkStack& stack, const ScanPlan& plan) noexcept {
  for (std::size_t r = 0; r < plan.root_count; ++r) {
    visit(index, stack, plan.roots[r]);
    while (stack.depth != 0) {
      const std::uintptr_t object = stack.items[--stack.depth];
      auto* w = reinterpret_cast<const std::uintptr_t*>(object);
      auto* end = reinterpret_cast<const std::uintptr_t*>(object + span_of(object));
      stack.words += static_cast<std::uint64_t>(end - w);
      for (; w < end; ++w) visit(index, stack, *w);
    }
  }
}

void crash_if_asked(const ScanPlan& plan) noexcept {
  // A killed scanner (the child inherits the collector's all-blocked signal mask, so only
  // an unblockable signal ends it, as a wild read's forced SIGSEGV would).
  if (plan.faults.child_crash) ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGKILL);
}

}  // namespace

bool scan(const ScanPlan& plan) noexcept {
  const std::int64_t start = sys::now_ns();
  ScanResult* result = plan.result;
  std::uintptr_t* entries = result->entries();
  const std::size_t n = plan.survivor_count + plan.new_count;

  Scratch<std::uintptr_t> fresh;
  MarkStack stack;
  if (!fresh.map(plan.new_count) || !stack.items.map(n)) return false;

  // Gather this cycle's new candidates from the allocation logs as of the snapshot.
  std::size_t k = 0;
  for (std::size_t r = 0; r < plan.range_count; ++r) {
    const LogRange& range = plan.ranges[r];
    LogChunk* c = range.first;
    std::size_t i = range.first_index;
    for (;;) {
      std::size_t end = c == range.last ? range.last_len
                                        : c->len.load(std::memory_order_relaxed);
      for (; i < end && k < plan.new_count; ++i)
        fresh[k++] = reinterpret_cast<std::uintptr_t>(c->entries[i]);
      if (c == range.last) break;
      c = c->next.load(std::memory_order_relaxed);
      i = 0;
      if (c == nullptr) return false;  // a broken chain: refuse to answer
    }
  }
  if (k != plan.new_count) return false;

  // The candidates' extent decides the index. A small logged object ends within
  // kSmallSpan of its start: that bound is enough for the extent, and spares the header
  // read (the index reads it only when a word points into the object).
  std::uintptr_t lo = ~std::uintptr_t{0}, hi = 0, misaligned = 0;
  for (std::size_t i = 0; i < plan.survivor_count + k; ++i) {
    std::uintptr_t p, end;
    if (i < plan.survivor_count) {
      p = plan.survivors[i];
      end = p + span_of(p);
    } else {
      const Candidate c = logged(fresh[i - plan.survivor_count]);
      p = c.address;
      end = p + (c.large ? span_of(p) : kSmallSpan);
    }
    lo = std::min(lo, p);
    hi = std::max(hi, end);
    misaligned |= p % kGranule;
  }
  // (No candidates: nothing to index; counted as dense so stats reflect the heap's layout.)
  const bool dense = n == 0 || (misaligned == 0 && (hi - lo) / kBytesPerCandidate <= n);

  if (n == 0) {
    crash_if_asked(plan);
  } else if (dense) {
    DenseIndex index;
    if (!index.build(plan.survivors, plan.survivor_count, fresh.data, k, lo, hi)) return false;
    crash_if_asked(plan);
    mark_from_roots(index, stack, plan);
    if (index.answer(entries) != n) return false;
  } else {
    for (std::size_t i = 0; i < k; ++i) fresh[i] = logged(fresh[i]).address;
    std::sort(fresh.data, fresh.data + k);
    std::merge(plan.survivors, plan.survivors + plan.survivor_count, fresh.data, fresh.data + k,
               entries);
    for (std::size_t i = 1; i < n; ++i)
      if (entries[i] == entries[i - 1]) return false;  // a candidate listed twice
    Scratch<std::uintptr_t> ends;
    if (!ends.map(n)) return false;
    for (std::size_t i = 0; i < n; ++i) ends[i] = entries[i] + span_of(entries[i]);
    SparseIndex index(entries, ends.data, n);
    crash_if_asked(plan);
    mark_from_roots(index, stack, plan);
  }

  result->count = n;
  result->reachable = stack.reachable;
  result->words_scanned = stack.words;
  result->epoch = plan.epoch;
  result->dense = dense ? 1 : 0;
  result->scan_ns = sys::now_ns() - start;
  return true;
}

void scanner_child_main(const ScanPlan& plan) noexcept {
  if (plan.faults.child_hang) {
    std::atomic<std::uint32_t> never{0};
    for (;;) sys::futex_wait(&never, 0);
  }
  if (plan.faults.child_reads != nullptr) (void)*plan.faults.child_reads;
  bool ok = scan(plan);
  if (ok && !plan.faults.child_exit_early) {
    // release: pairs with the parent's acquire load after the child exited; the answer is
    // complete before the flag says so.
    plan.result->complete.store(1, std::memory_order_release);
  }
  sys::exit_group(ok ? 0 : 3);
}

}  // namespace cmr::detail
