// src/backing_jemalloc.cpp: the tracked heap in a jemalloc arena of its own (see
// backing_allocator.hpp).
//
// The arena's extent hooks take memory only from the runtime's reserved Region, so tracked
// objects never share pages with the program's allocations (which go to jemalloc's other
// arenas). jemalloc keeps a per-thread cache of freed blocks that is shared by all arenas,
// so every thread uses an explicit tcache of its own for this arena only (tcache.create):
// otherwise a tracked allocation could be served a block of the program's, outside the
// region. The collector frees through its own explicit tcache and flushes it after each
// batch: the remote frees reach the arena's bins in batches, not one lock per block.
// Extents handed back to the hooks are kept (dalloc opts out): the region's pages are
// purged with madvise instead.
#include <jemalloc/jemalloc.h>
#include <sys/mman.h>

#include <string>

#include "backing_allocator.hpp"
#include "cmr/runtime.hpp"
#include "region.hpp"

namespace cmr::detail::backing {

namespace {

detail::Region g_region;
unsigned g_arena = 0;
// Explicit tcache of the calling thread for the tracked arena; 0: none yet, ~0u: none
// available (jemalloc's limit of explicit tcaches reached), go without.
__thread unsigned tls_tcache __attribute__((tls_model("initial-exec"))) = 0;
unsigned g_collector_tcache = 0;  // used under the collector's cycle lock only

void* hook_alloc(extent_hooks_t*, void* new_addr, size_t size, size_t alignment, bool* zero,
                 bool* commit, unsigned) {
  void* p = g_region.take(size, alignment, new_addr);
  if (p == nullptr) return nullptr;
  *zero = true;    // never handed out before: fresh anonymous pages
  *commit = true;  // the region is mapped read-write; pages cost nothing until touched
  return p;
}
// Returning true opts out: jemalloc retains the extent for reuse, inside the region.
bool hook_dalloc(extent_hooks_t*, void*, size_t, bool, unsigned) { return true; }
void hook_destroy(extent_hooks_t*, void*, size_t, bool, unsigned) {}
bool hook_commit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) { return false; }
bool hook_decommit(extent_hooks_t*, void*, size_t, size_t, size_t, unsigned) { return true; }
bool hook_purge_lazy(extent_hooks_t*, void* addr, size_t, size_t offset, size_t length, unsigned) {
  return ::madvise(static_cast<char*>(addr) + offset, length, MADV_FREE) != 0;
}
bool hook_purge_forced(extent_hooks_t*, void* addr, size_t, size_t offset, size_t length,
                       unsigned) {
  return ::madvise(static_cast<char*>(addr) + offset, length, MADV_DONTNEED) != 0;
}
// Extents of one contiguous mapping may be split and merged freely.
bool hook_split(extent_hooks_t*, void*, size_t, size_t, size_t, bool, unsigned) { return false; }
bool hook_merge(extent_hooks_t*, void*, size_t, void*, size_t, bool, unsigned) { return false; }

extent_hooks_t g_hooks = {hook_alloc,      hook_dalloc,       hook_destroy,
                          hook_commit,     hook_decommit,     hook_purge_lazy,
                          hook_purge_forced, hook_split,      hook_merge};

unsigned new_tcache() noexcept {
  unsigned tc = 0;
  size_t sz = sizeof tc;
  if (mallctl("tcache.create", &tc, &sz, nullptr, 0) != 0) return ~0u;
  return tc;
}

inline int flags(std::size_t align, unsigned tcache) noexcept {
  // jemalloc aligns every block of 16 bytes or more to 16 already; MALLOCX_ALIGN costs an
  // ffs() call through the PLT (profiled), so it is passed only for larger alignments.
  const int align_flag = align <= 16 ? 0 : MALLOCX_LG_ALIGN(__builtin_ctzl(align));
  return MALLOCX_ARENA(g_arena) | align_flag |
         (tcache == ~0u ? MALLOCX_TCACHE_NONE : MALLOCX_TCACHE(tcache));
}

}  // namespace

void init(std::size_t reserve_bytes, bool huge_pages) {
  if (g_region.size() != 0) return;  // an earlier init() got this far, then failed later
  g_region.reserve(reserve_bytes, std::size_t{2} << 20, huge_pages);
  extent_hooks_t* hooks = &g_hooks;
  size_t sz = sizeof g_arena;
  if (int e = mallctl("arenas.create", &g_arena, &sz, &hooks, sizeof hooks); e != 0)
    throw Error("cmr: jemalloc refused to create the tracked heap's arena (error " +
                std::to_string(e) + ")");
}

void* allocate(std::size_t bytes, std::size_t align) noexcept {
  if (tls_tcache == 0) tls_tcache = new_tcache();
  return mallocx(bytes, flags(align, tls_tcache));
}

void deallocate(void* block, std::size_t bytes, std::size_t align) noexcept {
  if (g_collector_tcache == 0) g_collector_tcache = new_tcache();
  sdallocx(block, bytes, flags(align, g_collector_tcache));
}

void end_batch() noexcept {
  if (g_collector_tcache != 0 && g_collector_tcache != ~0u)
    mallctl("tcache.flush", nullptr, nullptr, &g_collector_tcache, sizeof g_collector_tcache);
}

void thread_exit() noexcept {
  if (tls_tcache != 0 && tls_tcache != ~0u)
    mallctl("tcache.destroy", nullptr, nullptr, &tls_tcache, sizeof tls_tcache);
  tls_tcache = 0;
}

RegionInfo region() noexcept { return {g_region.base(), g_region.size()}; }
const char* name() noexcept { return "jemalloc"; }

}  // namespace cmr::detail::backing
