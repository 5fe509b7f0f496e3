// src/backing_allocator.hpp: the seam between the tracked heap and the allocator behind it.
//
// The tracked heap asks for raw blocks here and gives them back from the collector's
// thread. Exactly one implementation is compiled in, chosen by CMake's CMR_ALLOCATOR:
//  - system   (backing_system.cpp): malloc; the one sanitizers can watch.
//  - jemalloc (backing_jemalloc.cpp): a dedicated arena whose extent hooks carve memory
//    out of one region reserved at init, with an explicit tcache per thread.
//  - mimalloc (backing_mimalloc.cpp): an exclusive arena over the reserved region and a
//    heap per thread created in it.
// With a region, every tracked block lies inside [region().base, + size) and no other
// allocation of the program does (except allocator metadata), so the pause can give the
// scanner child only that region. Never called by the scanner child or while threads are
// paused.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cmr::detail::backing {

struct RegionInfo {
  std::uintptr_t base = 0;
  std::size_t size = 0;  // 0: no region (system malloc)
};

// Reserves the region and sets up the allocator; `reserve_bytes` is the virtual size to
// reserve (region allocators only). Throws cmr::Error with the reason on failure.
void init(std::size_t reserve_bytes, bool huge_pages);
// Returns a block of `bytes` aligned to `align` (a power of two >= 16), or null.
void* allocate(std::size_t bytes, std::size_t align) noexcept;
// Returns a block obtained from allocate() with the same size and alignment. Called by
// the collector (one thread at a time), typically for blocks other threads allocated.
void deallocate(void* block, std::size_t bytes, std::size_t align) noexcept;
// Called after the collector freed a batch, so freed memory becomes reusable by all threads.
void end_batch() noexcept;
// The calling registered thread is exiting: release its per-thread allocator state.
void thread_exit() noexcept;
RegionInfo region() noexcept;
// A short name for diagnostics and stats ("system", "jemalloc", "mimalloc").
const char* name() noexcept;

}  // namespace cmr::detail::backing
