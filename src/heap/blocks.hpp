// src/heap/blocks.hpp: the tracked heap's blocks: the region they are carved from, the table of
// block records, who owns each block, and how slots come back for reuse (see heap/blocks.cpp and, by side, owner.cpp, release.cpp, spans.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cmr/detail/heap_layout.hpp"
#include "cmr/detail/thread_record.hpp"

namespace cmr::detail::blocks {

struct HeapRange {
  std::uintptr_t base = 0;
  std::size_t size = 0;               // reserved bytes
  const BlockMeta* table = nullptr;   // one record per block of the region
  std::size_t table_bytes = 0;
};

// Reserves the region and maps the block table. Throws cmr::Error with the reason.
void init(std::size_t reserve_bytes, bool huge_pages);
bool initialised() noexcept;
HeapRange range() noexcept;
// Blocks ever carved from the region: every block record the scanner must look at. Read
// during the pause (a thread held mid-carve leaves a record whose state is still free).
std::uint32_t carved() noexcept;

BlockMeta& meta(std::uint32_t block) noexcept;
char* block_base(std::uint32_t block) noexcept;
std::uint32_t block_of(const void* p) noexcept;

// ---- the owner's side ----
// Gives the cursor for (cls, typed) a word with free slots: the rest of its block, a block
// the collector returned slots in, an orphaned block to adopt, a pooled or a fresh block.
// False when the region is exhausted.
bool refill(ThreadRecord* r, unsigned cls, bool typed) noexcept;
// A constructor threw: the slot's alloc bit is cleared (the caller still guards it).
// Returns the slot bytes (the span's, for a large object).
std::size_t give_back(const Slot& s) noexcept;
// The thread is exiting: its blocks lose their owner. Free slots and pending frees are
// folded; empty blocks go to the pool, the others can be adopted by allocating threads.
void thread_exit(ThreadRecord* r) noexcept;

// ---- large objects: spans of whole blocks ----
// A zeroed span for `bytes` aligned to `align`; `typed`: out.header is the span's header,
// for seal() to fill once the object is built.
bool allocate_large(std::size_t bytes, std::size_t align, bool typed, Slot& out) noexcept;

// ---- the collector's side (never while threads are held) ----
// Slots of `block` (a small block) whose objects were destroyed: makes them reusable.
// `words[i]` is the bitmap of word `index[i]`. Returns nothing; the caller counted them.
struct FreedWord {
  std::uint32_t word;
  std::uint64_t bits;
};
// Each release sets `*announced` (when given) to kNoBlock in the same critical section of
// the heap lock: a program's fork(), which takes that lock, sees a block released and no
// longer announced, or neither (src/cycle/reclaim.cpp).
void release_slots(std::uint32_t block, const FreedWord* words, std::size_t n,
                   std::atomic<std::uint32_t>* announced) noexcept;
// Every slot of `block` (full at the cut, all garbage, destroyed): one flag instead of a
// freed bit per slot.
void release_block(std::uint32_t block, std::atomic<std::uint32_t>* announced) noexcept;
// A large object whose destructor (if any) ran: its span goes back to the heap.
void release_large(std::uint32_t head, std::atomic<std::uint32_t>* announced) noexcept;
// Gives back to the kernel the pages of pooled blocks that stayed pooled since the last
// call (the collector calls it every kTrimEvery cycles). Returns the bytes given back.
std::size_t trim_pool() noexcept;

// For tests, with no thread allocating: checks that every block is in exactly one place
// (pooled, adoptable, or owned by one of `owners`) and that each place's rules hold.
// Returns the first problem found, or an empty string.
std::string audit(ThreadRecord* const* owners, std::size_t count);

// Around a program's fork(): the heap lock is held across it, so the child's copy of the
// lists is whole; in the child it is made anew (the threads that waited for it are gone).
void before_fork() noexcept;
void after_fork_parent() noexcept;
void after_fork_child() noexcept;

}  // namespace cmr::detail::blocks
