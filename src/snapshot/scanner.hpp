// src/snapshot/scanner.hpp: the mark phase the snapshot child runs (see scanner.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/heap_layout.hpp"
#include "testing/test_support.hpp"

namespace cmr::detail {

// One word of a block's garbage: slots that were candidates at the cut and that nothing
// reachable points into. For a large object's span, word 0 bit 0. word == kWholeBlock: the
// block was full at the cut (every slot a candidate) and all of it is garbage.
struct GarbageWord {
  std::uint32_t block;
  std::uint32_t word;
  std::uint64_t bits;
};
inline constexpr std::uint32_t kWholeBlock = ~std::uint32_t{0};

// The answer, in a mapping shared with the parent and kept across cycles. The child fills
// `entries` in ascending (block, word) order, then stores `complete` last.
struct ScanResult {
  std::atomic<std::uint32_t> complete;
  std::uint32_t cycle;  // the cycle number the answer is for
  std::uint64_t count;            // entries written
  std::uint64_t candidates;       // candidate objects at the cut
  std::uint64_t reachable;        // of those, marked
  std::uint64_t reachable_bytes;  // their slot bytes
  std::uint64_t words_scanned;
  std::int64_t scan_ns;
  // 0 until the parent has released the paused threads (snapshot::start): the child waits
  // for it, so it never takes the collector's CPU while the threads are held.
  std::atomic<std::uint32_t> started;
  std::uint32_t unused;
  std::int64_t began_ns;  // CLOCK_MONOTONIC when the child passed that wait
  std::uint64_t reserved;  // keeps the entries 16-byte aligned
  GarbageWord* entries() noexcept { return reinterpret_cast<GarbageWord*>(this + 1); }
  static std::size_t bytes_for(std::size_t count) noexcept {
    return sizeof(ScanResult) + count * sizeof(GarbageWord);
  }
};
static_assert(sizeof(ScanResult) % 16 == 0);

// Everything the child reads besides the tracked heap itself, all in memory the runtime
// owns (never the program's own data structures).
struct ScanPlan {
  std::uintptr_t heap_base;
  const BlockMeta* blocks;     // the block table
  std::uint32_t block_count;   // records [0, block_count) are looked at
  const std::uintptr_t* roots; // guard slot and Root values copied during the pause
  std::size_t root_count;
  ScanResult* result;          // shared; room for `capacity` entries
  std::size_t capacity;
  std::uint32_t cycle;  // the cycle number the answer is for
};

// Scratch memory for a mark: one mark bit per slot of each block (kBitmapWords words per
// block), and a stack with room for every candidate that is reached (the child's has room
// for every candidate; the collector's is sized from the last cycle, and a mark that
// outgrows it gives up).
struct MarkScratch {
  struct Item {
    std::uintptr_t start;
    std::uint64_t bytes;
  };
  std::uint64_t* marks = nullptr;  // all zero before a mark
  std::size_t mark_words = 0;
  std::uint32_t* block_marks = nullptr;  // per block: how many of its slots were marked
                                         // (all zero before a mark; mark_words / 64 of them)
  Item* stack = nullptr;
  std::size_t stack_items = 0;
};

// Runs the mark phase: marks every candidate reachable from the roots, scanning each
// reached object's slot conservatively, then lists the unmarked candidates per bitmap
// word. Never allocates, locks, or touches program state other than the tracked heap.
// scan() is the child's: it maps its own scratch, and returns false if it could not
// answer (no scratch memory, an answer that would not fit).
bool scan(const ScanPlan& plan) noexcept;

// The same mark on the caller's scratch, giving up once `deadline_ns` (CLOCK_MONOTONIC)
// passes: the collector marks a small heap this way while the threads are held.
enum class PauseMark {
  kAnswered,    // plan.result is complete (but `complete` is not set)
  kOverBudget,  // the deadline passed: the marks are partial, the answer is not written
  kNoRoom,      // the scratch or the answer is too small for this heap
};
PauseMark mark_with(const ScanPlan& plan, MarkScratch& scratch, std::int64_t deadline_ns) noexcept;

// Looks up what the mark may use of this CPU (called once by init, before any cycle).
void detect_cpu() noexcept;

// The child's entry point: scan, then _exit through the raw system call. `faults` are the
// tests' (all clear in production).
[[noreturn]] void scanner_child_main(const ScanPlan& plan, const ChildFaults& faults) noexcept;

}  // namespace cmr::detail
