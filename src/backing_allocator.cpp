// src/backing_allocator.cpp: the system-malloc backing of the tracked heap (see the header).
#include "backing_allocator.hpp"

#include <cstdlib>

namespace cmr::detail::backing {

void* allocate(std::size_t bytes, std::size_t align) noexcept {
  if (align <= alignof(std::max_align_t)) return std::malloc(bytes);
  return std::aligned_alloc(align, (bytes + align - 1) & ~(align - 1));
}

void deallocate(void* block, std::size_t, std::size_t) noexcept { std::free(block); }

const char* name() noexcept { return "system"; }

}  // namespace cmr::detail::backing
