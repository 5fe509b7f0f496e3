// cmr/detail/heap_layout.hpp: the tracked heap's layout, and the allocation fast path that
// make() inlines.
//
// The tracked heap is cmr's own: 64 KiB blocks carved from one reserved region. A block
// holds slots of one size class and one kind (plain, or typed: each slot begins with a
// TypeHeader because the type has a destructor); large objects take a span of whole
// blocks. Per block, a metadata record in a side table holds the block's state and class
// and two bitmaps:
//   alloc  bit set: the slot holds an object (written only by the block's owner thread,
//          or, for a block without an owner, under the heap lock)
//   freed  bit set: the collector destroyed that object and the slot may be reused, but
//          the owner has not folded the bit into `alloc` yet (the collector sets bits,
//          the owner clears them)
// A slot is a collection candidate exactly when alloc & ~freed has its bit (and the block
// is not marked freed_all, the whole-block form of freed, below). A slot's life:
//   free (alloc 0) --take+commit by owner--> candidate (alloc 1, freed 0)
//     --cycle finds it unreachable; collector destroys it, sets freed--> freed (1, 1)
//     --owner folds: alloc cleared first, then freed--> free (0, 0)
// Why a slot allocated after a cycle's cut is never garbage of that cycle: the child sees
// the heap as of the cut, where that slot's candidate bit was 0 (either free, or freed and
// not yet folded); the collector frees only bits the child reported.
//
// Signal safety (invariant 4 of docs/design.md, claimed by src/threads/handshake.cpp): the scanner child reads the table as of the cut, at
// any instruction of any thread, so every write keeps it readable: a block's class is set
// before its state says it is in use, bitmaps of a block in the pool are all zero, and a
// fold clears `alloc` before `freed`.
//
// Large objects and invariant 7 of docs/design.md (conservative, claimed by
// src/snapshot/scanner.cpp): a word anywhere inside a large object keeps it alive because
// every block of its span says so: the head block's state is kBlockLarge with the span
// length and the object's byte count, and each later block's state is kBlockLargeTail with
// its distance to the head. The scanner maps a deep interior pointer to the head through
// that distance; a span block without it would let such an object be freed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/object.hpp"

namespace cmr::detail {

struct ThreadRecord;

inline constexpr unsigned kBlockShift = 16;
inline constexpr std::size_t kBlockBytes = std::size_t{1} << kBlockShift;
inline constexpr std::size_t kMinSlot = 16;
inline constexpr std::size_t kBitmapWords = kBlockBytes / kMinSlot / 64;  // 64
inline constexpr std::uint32_t kNoBlock = ~std::uint32_t{0};

// Slot sizes. Steps of 8 bytes up to 64 (a 24-byte node takes 24, not 32), then about four
// classes per doubling; the last few are the largest that fit 7, 6, 5, 4, 3 and 2 in a
// block. A type aligned to A uses the smallest class that is a multiple of A.
inline constexpr std::uint32_t kClassBytes[] = {
    16,   24,   32,   40,   48,   56,   64,    80,    96,    112,   128,   160,  192,  224,
    256,  320,  384,  448,  512,  640,  768,   896,   1024,  1280,  1536,  1792, 2048, 2560,
    3072, 3584, 4096, 5120, 6144, 7168, 8192,  9360,  10912, 13104, 16384, 21840, 32768};
inline constexpr unsigned kClasses = sizeof(kClassBytes) / sizeof(kClassBytes[0]);
inline constexpr unsigned kLargeClass = 0xff;
inline constexpr std::size_t kMaxSmallAlign = 4096;

// Set bits of a word, without __builtin_popcountll: on x86-64 without -mpopcnt that is a
// call into libgcc, bound lazily by the dynamic loader on first use, and the scanner child
// (whose copy of the loader's data snapshot isolation removes) must call nothing new.
inline constexpr unsigned popcount64(std::uint64_t x) noexcept {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
}
static_assert(popcount64(0) == 0 && popcount64(~0ull) == 64 && popcount64(0x8000000000000001ull) == 2);

inline constexpr std::size_t slots_of(unsigned cls) noexcept {
  return kBlockBytes / kClassBytes[cls];
}

// The class for `bytes` aligned to `align` (a power of two), or kLargeClass.
inline constexpr unsigned class_for(std::size_t bytes, std::size_t align) noexcept {
  if (bytes == 0) bytes = 1;
  if (align > kMaxSmallAlign) return kLargeClass;
  bytes = (bytes + align - 1) & ~(align - 1);
  for (unsigned c = 0; c < kClasses; ++c)
    if (kClassBytes[c] >= bytes && kClassBytes[c] % align == 0) return c;
  return kLargeClass;
}

// What a typed slot starts with: the object follows at typed_prefix(align) bytes.
struct TypeHeader {
  const TypeInfo* type;
  std::uint64_t count;  // elements (make_array); 1 for make
};
inline constexpr std::size_t typed_prefix(std::size_t align) noexcept {
  return align > sizeof(TypeHeader) ? align : sizeof(TypeHeader);
}

enum BlockState : std::uint8_t {
  kBlockFree = 0,       // in the pool, or never used
  kBlockSmall = 1,      // slots of one class
  kBlockLarge = 2,      // first block of a large object's span
  kBlockLargeTail = 3,  // a later block of that span
};

struct alignas(64) BlockMeta {
  // ---- read by the scanner child ----
  // relaxed everywhere: the child reads the table as of the cut, and each writer's stores
  // reach the collector through its handshake ack (or are the collector's own).
  std::atomic<std::uint8_t> state{kBlockFree};
  std::uint8_t cls = 0;    // kBlockSmall: the size class
  std::uint8_t typed = 0;  // kBlockSmall: 1 if every slot begins with a TypeHeader
  std::uint8_t in_avail = 0;  // owner-private: on the owner's available list
  std::uint32_t span = 0;     // kBlockLarge: blocks in the span; kBlockLargeTail: distance to it
  std::uint64_t large_bytes = 0;  // kBlockLarge: the object's bytes (what is scanned)
  // ---- large objects, read by the collector ----
  // The object's type once it is built (type null: trivially destructible, or not built).
  TypeHeader large{nullptr, 0};
  // ---- ownership: the owner thread, or the heap lock for blocks without one ----
  ThreadRecord* owner = nullptr;
  std::uint32_t next = kNoBlock;           // the pool, a free span list, or the owner's available list
  std::uint32_t next_owned = kNoBlock;     // the owner's list of all its blocks
  std::uint32_t prev_owned = kNoBlock;
  std::uint32_t next_adoptable = kNoBlock; // under the heap lock: an adoptable list
  std::uint32_t prev_adoptable = kNoBlock;
  std::uint32_t next_returned = kNoBlock;  // the owner's returned queue (collector pushes)
  std::atomic<std::uint8_t> queued{0};     // on the owner's returned queue
  std::uint8_t in_adoptable = 0;           // under the heap lock: on an adoptable list
  // Set by the collector instead of every freed bit when the block was full at a cut and
  // all of it was garbage (nothing can be allocated in it before that cycle releases it);
  // cleared by the owner's fold after it zeroed alloc. While set, no slot is a candidate.
  std::atomic<std::uint8_t> freed_all{0};
  // Under the heap lock, for pooled blocks: its pages went back to the kernel (it reads as
  // zeros), or the trim round in which it was pooled.
  std::uint8_t decommitted = 0;
  std::uint32_t pooled_round = 0;
  // ---- the bitmaps, each on lines of its own (different writers) ----
  alignas(64) std::atomic<std::uint64_t> alloc[kBitmapWords];
  alignas(64) std::atomic<std::uint64_t> freed[kBitmapWords];
};

// One allocation in progress: where the object goes, and the alloc bit that makes it a
// candidate once it is guarded.
struct Slot {
  void* memory;
  std::atomic<std::uint64_t>* word;
  std::uint64_t bit;
  // Where the object's type goes once it is constructed (null: nothing to destroy). Until
  // then it reads {nullptr, 0}, and the collector destroys nothing there: a fork's child
  // may inherit a slot whose constructor was running on a thread the child does not have.
  TypeHeader* header = nullptr;
};

// The object is built: from now on the collector runs its destructor when it is garbage.
inline void seal(const Slot& s, const TypeInfo* type, std::uint64_t count) noexcept {
  if (s.header == nullptr) return;
  // release: the object's words are written before its type says it is built (what a
  // fork's child copies follows each thread's store order).
  std::atomic_thread_fence(std::memory_order_release);
  *s.header = TypeHeader{type, count};
}

// A thread's position in its current block of one (class, kind): the free slots of one
// bitmap word. Owner-private; the handshake handler and the collector never read it.
struct Cursor {
  std::uint64_t free = 0;   // slots of the current word not yet taken
  char* base = nullptr;     // address of the word's first slot
  std::atomic<std::uint64_t>* word = nullptr;  // the alloc word for those slots
  std::uint32_t block = kNoBlock;
  std::uint32_t next_word = 0;  // the next word of `block` to look at
};
inline constexpr unsigned cursor_index(unsigned cls, bool typed) noexcept {
  return cls * 2 + (typed ? 1u : 0u);
}
inline constexpr unsigned kCursors = kClasses * 2;

// Makes the slot a candidate (invariant 2 of docs/design.md: the caller has published it in a guard).
inline void commit(const Slot& s) noexcept {
  // relaxed: only the owner writes its blocks' alloc words (a large span's word is written
  // once here and once by the collector when it is freed); the handshake ack (a release
  // store, src/threads/handshake.cpp (4)) publishes the write before any snapshot that could see it.
  s.word->store(s.word->load(std::memory_order_relaxed) | s.bit, std::memory_order_relaxed);
}

// Takes a free slot of the cursor's current word, if it has one (the fast path).
template <unsigned kCls>
inline bool take_from(Cursor& c, Slot& s) noexcept {
  const std::uint64_t f = c.free;
  if (f == 0) [[unlikely]] return false;
  const unsigned i = static_cast<unsigned>(__builtin_ctzll(f));
  c.free = f & (f - 1);
  s.memory = c.base + std::size_t{i} * kClassBytes[kCls];
  s.word = c.word;
  s.bit = std::uint64_t{1} << i;
  return true;
}

}  // namespace cmr::detail
