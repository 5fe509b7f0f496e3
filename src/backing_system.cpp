// src/backing_system.cpp: the system-malloc backing of the tracked heap (see
// backing_allocator.hpp). Tracked blocks mix with the program's own allocations, so there
// is no region; AddressSanitizer and LeakSanitizer see every block.
#include <cstdlib>

#include "backing_allocator.hpp"

namespace cmr::detail::backing {

void init(std::size_t, bool) {}

void* allocate(std::size_t bytes, std::size_t align) noexcept {
  if (align <= alignof(std::max_align_t)) return std::malloc(bytes);
  return std::aligned_alloc(align, (bytes + align - 1) & ~(align - 1));
}

void deallocate(void* block, std::size_t, std::size_t) noexcept { std::free(block); }
void end_batch() noexcept {}
void thread_exit() noexcept {}
RegionInfo region() noexcept { return {}; }
const char* name() noexcept { return "system"; }

}  // namespace cmr::detail::backing
