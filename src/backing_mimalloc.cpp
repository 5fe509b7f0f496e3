// src/backing_mimalloc.cpp: the tracked heap in an exclusive mimalloc arena (see
// backing_allocator.hpp).
//
// The runtime's reserved Region is handed to mimalloc as an exclusive arena
// (mi_manage_os_memory_ex); only heaps created in that arena (mi_heap_new_in_arena) take
// segments from it, and those heaps allocate only from it. A mimalloc heap belongs to the
// thread that created it, so each registered thread makes its own on first allocation.
// The collector frees with mi_free, which pushes blocks of other threads' pages onto their
// lock-free remote free lists: the remote path, one atomic push per block, no lock.
// When a thread exits, mimalloc hands its heap's pages to that thread's default heap for
// the rest of the exit; blocks the program allocates there during exit are not tracked
// objects, so the scanner ignores them (they only cost a copy into the child).
#include <mimalloc.h>

#include "backing_allocator.hpp"
#include "cmr/runtime.hpp"
#include "region.hpp"

namespace cmr::detail::backing {

namespace {

detail::Region g_region;
mi_arena_id_t g_arena{};
__thread mi_heap_t* tls_heap __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace

void init(std::size_t reserve_bytes, bool huge_pages) {
  if (g_region.size() != 0) return;  // an earlier init() got this far, then failed later
  // Segments are found by masking addresses: the arena must start on a segment boundary.
  g_region.reserve(reserve_bytes, std::size_t{64} << 20, huge_pages);
  if (!mi_manage_os_memory_ex(reinterpret_cast<void*>(g_region.base()), g_region.size(),
                              /*is_committed=*/true, /*is_large=*/false, /*is_zero=*/true,
                              /*numa_node=*/-1, /*exclusive=*/true, &g_arena))
    throw Error("cmr: mimalloc refused the tracked heap's arena");
}

void* allocate(std::size_t bytes, std::size_t align) noexcept {
  if (tls_heap == nullptr) {
    tls_heap = mi_heap_new_in_arena(g_arena);
    if (tls_heap == nullptr) return nullptr;
  }
  return align <= 16 ? mi_heap_malloc(tls_heap, bytes)
                     : mi_heap_malloc_aligned(tls_heap, bytes, align);
}

void deallocate(void* block, std::size_t, std::size_t) noexcept { mi_free(block); }
void end_batch() noexcept {}
// The heap still owns live tracked objects: it cannot be destroyed, and mimalloc's own
// thread teardown hands its pages on (see the file comment).
void thread_exit() noexcept { tls_heap = nullptr; }

RegionInfo region() noexcept { return {g_region.base(), g_region.size()}; }
const char* name() noexcept { return "mimalloc"; }

}  // namespace cmr::detail::backing
