// src/heap/region.hpp: the virtual address range the tracked heap's blocks are carved from
// (see region.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cmr::detail {

class Region {
 public:
  // Reserves `bytes` (or less, halving down to 1 GiB when the kernel refuses) aligned to
  // `align`. Pages cost nothing until touched. Throws cmr::Error when nothing can be had.
  // huge_pages: advise transparent huge pages for the range past its first `small_prefix`
  // bytes (which get MADV_NOHUGEPAGE). Without huge_pages nothing is advised.
  void reserve(std::size_t bytes, std::size_t align, bool huge_pages, std::size_t small_prefix);
  // Bump allocation of fresh, zero-filled pages; null when the region is exhausted.
  // `at` (optional) asks for exactly that address (jemalloc grows extents in place).
  void* take(std::size_t bytes, std::size_t align, void* at = nullptr) noexcept;
  std::uintptr_t base() const noexcept { return base_; }
  // The end of what take() has handed out (relaxed: a bound read during the pause; a
  // thread held in take() leaves the claimed range's records not yet in use).
  std::uintptr_t next() const noexcept { return next_.load(std::memory_order_relaxed); }
  std::size_t size() const noexcept { return size_; }
  bool contains(const void* p, std::size_t bytes) const noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= base_ && a + bytes <= base_ + size_ && a + bytes >= a;
  }

 private:
  std::uintptr_t base_ = 0;
  std::size_t size_ = 0;
  std::atomic<std::uintptr_t> next_{0};
};

}  // namespace cmr::detail
