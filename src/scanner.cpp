// src/scanner.cpp: the mark phase, run in the snapshot child.
//
// Keeps DESIGN invariants 5 (the child never allocates: scratch memory comes from mmap,
// std::sort allocates nothing, exit is the raw exit_group) and 7 (conservative, never
// eager: any word that points into [object, object + scan_span) of a candidate, tag bits
// and interior pointers included, marks it; nothing is ever judged unreachable on a guess).
// Cost: O(n log n) to sort candidates + O(words scanned x log n) lookups.
#include "scanner.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "cmr/detail/object.hpp"
#include "sys.hpp"

namespace cmr::detail {

namespace {

struct Scratch {
  std::uintptr_t* fresh = nullptr;  // new candidates, sorted here before the merge
  std::uintptr_t* ends = nullptr;   // ends[i]: one past the scan span of entries[i]
  std::uint32_t* stack = nullptr;   // mark stack (each index pushed at most once)
  std::size_t fresh_bytes = 0, ends_bytes = 0, stack_bytes = 0;
  ~Scratch() {
    sys::unmap(fresh, fresh_bytes);
    sys::unmap(ends, ends_bytes);
    sys::unmap(stack, stack_bytes);
  }
};

class Marker {
 public:
  Marker(std::uintptr_t* entries, const std::uintptr_t* ends, std::size_t n,
         std::uint32_t* stack)
      : entries_(entries), ends_(ends), n_(n), stack_(stack) {
    if (n_ != 0) {
      lo_ = entries_[0];
      for (std::size_t i = 0; i < n_; ++i) hi_ = std::max(hi_, ends_[i]);
    }
  }

  void visit(std::uintptr_t word) noexcept {
    if (word < lo_ || word >= hi_) return;
    // Last entry whose start is <= word (entries are sorted; bit 0 is the mark).
    std::size_t lo = 0, hi = n_;
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if ((entries_[mid] & ~std::uintptr_t{1}) <= word) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return;
    std::size_t i = lo - 1;
    if (word >= ends_[i] || (entries_[i] & 1) != 0) return;
    entries_[i] |= 1;
    ++reachable_;
    stack_[depth_++] = static_cast<std::uint32_t>(i);
  }

  void drain() noexcept {
    while (depth_ != 0) {
      std::size_t i = stack_[--depth_];
      auto* w = reinterpret_cast<const std::uintptr_t*>(entries_[i] & ~std::uintptr_t{1});
      auto* end = reinterpret_cast<const std::uintptr_t*>(ends_[i]);
      words_ += static_cast<std::uint64_t>(end - w);
      for (; w < end; ++w) visit(*w);
    }
  }

  std::uint64_t reachable() const noexcept { return reachable_; }
  std::uint64_t words() const noexcept { return words_; }

 private:
  std::uintptr_t* entries_;
  const std::uintptr_t* ends_;
  std::size_t n_;
  std::uint32_t* stack_;
  std::size_t depth_ = 0;
  std::uintptr_t lo_ = 0, hi_ = 0;
  std::uint64_t reachable_ = 0, words_ = 0;
};

template <class T>
T* map_array(std::size_t count, std::size_t& bytes) noexcept {
  bytes = (count == 0 ? 1 : count) * sizeof(T);
  return static_cast<T*>(sys::map_private(bytes));
}

}  // namespace

bool scan(const ScanPlan& plan) noexcept {
  const std::int64_t start = sys::now_ns();
  ScanResult* result = plan.result;
  std::uintptr_t* entries = result->entries();
  const std::size_t n = plan.survivor_count + plan.new_count;

  Scratch s;
  s.fresh = map_array<std::uintptr_t>(plan.new_count, s.fresh_bytes);
  s.ends = map_array<std::uintptr_t>(n, s.ends_bytes);
  s.stack = map_array<std::uint32_t>(n, s.stack_bytes);
  if (s.fresh == nullptr || s.ends == nullptr || s.stack == nullptr) return false;

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
        s.fresh[k++] = reinterpret_cast<std::uintptr_t>(c->entries[i]);
      if (c == range.last) break;
      c = c->next.load(std::memory_order_relaxed);
      i = 0;
      if (c == nullptr) return false;  // a broken chain: refuse to answer
    }
  }
  if (k != plan.new_count) return false;
  std::sort(s.fresh, s.fresh + k);

  // Merge with the (sorted) survivors into the shared answer.
  std::merge(plan.survivors, plan.survivors + plan.survivor_count, s.fresh, s.fresh + k,
             entries);
  for (std::size_t i = 1; i < n; ++i)
    if (entries[i] == entries[i - 1]) return false;  // a candidate listed twice
  for (std::size_t i = 0; i < n; ++i)
    s.ends[i] = entries[i] + scan_span(header_of(reinterpret_cast<void*>(entries[i]))->bytes);

  Marker marker(entries, s.ends, n, s.stack);
  // A killed scanner (the child inherits the collector's all-blocked signal mask, so only
  // an unblockable signal ends it, as a wild read's forced SIGSEGV would).
  if (plan.faults.child_crash) ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGKILL);
  for (std::size_t i = 0; i < plan.root_count; ++i) {
    marker.visit(plan.roots[i]);
    marker.drain();
  }

  result->count = n;
  result->reachable = marker.reachable();
  result->words_scanned = marker.words();
  result->epoch = plan.epoch;
  result->scan_ns = sys::now_ns() - start;
  return true;
}

void scanner_child_main(const ScanPlan& plan) noexcept {
  if (plan.faults.child_hang) {
    std::atomic<std::uint32_t> never{0};
    for (;;) sys::futex_wait(&never, 0);
  }
  bool ok = scan(plan);
  if (ok && !plan.faults.child_exit_early) {
    // release: pairs with the parent's acquire load after the child exited; the answer is
    // complete before the flag says so.
    plan.result->complete.store(1, std::memory_order_release);
  }
  sys::exit_group(ok ? 0 : 3);
}

}  // namespace cmr::detail
