// src/backing_allocator.hpp: the seam between the tracked heap and the allocator behind it.
//
// The tracked heap asks for raw blocks here and gives them back from the collector's
// thread. This build uses the system malloc, which AddressSanitizer watches; region-backed
// allocators (jemalloc, mimalloc) slot in behind the same three functions. Never called
// by the scanner child or while threads are paused.
#pragma once

#include <cstddef>

namespace cmr::detail::backing {

// Returns a block of `bytes` aligned to `align` (a power of two >= 16), or null.
void* allocate(std::size_t bytes, std::size_t align) noexcept;
// Returns a block obtained from allocate() with the same size and alignment.
void deallocate(void* block, std::size_t bytes, std::size_t align) noexcept;
// A short name for diagnostics and stats ("system").
const char* name() noexcept;

}  // namespace cmr::detail::backing
