// src/heap/region.cpp: reserving the tracked heap's address range.
//
// Claims invariant 9 of docs/design.md.
//
// The range is one private anonymous mapping, readable and writable but MAP_NORESERVE, so
// it costs neither memory nor commit charge until pages are touched; the heap hands pages
// back with madvise. Invariant: [base, base + size) holds only memory given out by take()
// (tracked blocks), never the program's.
#include "heap/region.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "cmr/runtime.hpp"

namespace cmr::detail {

void Region::reserve(std::size_t bytes, std::size_t align, bool huge_pages,
                     std::size_t small_prefix) {
  int error = 0;
  for (std::size_t want = bytes;; want /= 2) {
    // One page more on each side, left PROT_NONE: the kernel never merges the range with
    // a program mapping, which snapshot isolation would then have to keep with it.
    constexpr std::size_t kFence = 4096;
    void* p = ::mmap(nullptr, want + align + 2 * kFence, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      error = errno;
      if (want <= (std::size_t{1} << 30)) break;
      continue;
    }
    // Trim to the alignment asked for (2 MiB: huge pages can back whole blocks).
    auto start = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t aligned = (start + kFence + align - 1) & ~(align - 1);
    const std::uintptr_t lead = aligned - kFence - start;
    if (lead != 0) ::munmap(p, lead);
    const std::uintptr_t tail = start + want + align + 2 * kFence - (aligned + want + kFence);
    if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + want + kFence), tail);
    ::mprotect(reinterpret_cast<void*>(aligned - kFence), kFence, PROT_NONE);
    ::mprotect(reinterpret_cast<void*>(aligned + want), kFence, PROT_NONE);
    base_ = aligned;
    size_ = want;
    // Transparent huge pages, when asked, past a prefix of small pages: a heap big enough
    // to need a scanner child clones far fewer page-table entries (one per 2 MiB instead of
    // 512), while a small heap, which is marked in the pause, is not rounded up to 2 MiB of
    // resident memory per huge page. Advisory: without THP support this changes nothing.
    if (huge_pages) {
      const std::size_t prefix = std::min(small_prefix, want);
      ::madvise(reinterpret_cast<void*>(aligned), prefix, MADV_NOHUGEPAGE);
      if (want > prefix) ::madvise(reinterpret_cast<void*>(aligned + prefix), want - prefix, MADV_HUGEPAGE);
    }
    // relaxed: set before the allocator is created and published by init's release store.
    next_.store(aligned, std::memory_order_relaxed);
    return;
  }
  throw Error(std::string("cmr: cannot reserve the tracked heap's address range (") +
              std::to_string(bytes >> 20) + " MiB): " + std::strerror(error) +
              "; lower Options::heap_reserve or check vm.overcommit_memory / ulimit -v");
}

void* Region::take(std::size_t bytes, std::size_t align, void* at) noexcept {
  if (align == 0) align = 1;
  // relaxed: the bump pointer orders nothing but itself; the CAS makes claims disjoint.
  std::uintptr_t cur = next_.load(std::memory_order_relaxed);
  for (;;) {
    std::uintptr_t start = (cur + align - 1) & ~(align - 1);
    if (at != nullptr && reinterpret_cast<std::uintptr_t>(at) != start) return nullptr;
    if (start < cur || start + bytes < start || start + bytes > base_ + size_) return nullptr;
    if (next_.compare_exchange_weak(cur, start + bytes, std::memory_order_relaxed))
      return reinterpret_cast<void*>(start);
  }
}

}  // namespace cmr::detail
