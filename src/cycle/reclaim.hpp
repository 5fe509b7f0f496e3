// src/cycle/reclaim.hpp: applying a completed cycle's answer (see reclaim.cpp).
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>

#include "heap/blocks.hpp"
#include "snapshot/scanner.hpp"

namespace cmr::detail {

// Freed-object counters (stats().objects_freed, bytes_freed), owned by the collector.
struct FreedCounters {
  std::atomic<std::uint64_t>& objects;
  std::atomic<std::uint64_t>& bytes;  // slot bytes (a large object's whole span)
};

// Destroys the garbage that needs it and makes every listed slot reusable. `entries` are
// a complete answer's, in ascending (block, word) order. Each block's objects are added
// to `freed` before its slots are handed back, so that stats() never counts a slot twice
// (freed later than its reuse was counted as allocated). Runs on the collector's thread,
// never while threads are held.
void reclaim(const GarbageWord* entries, std::size_t count, FreedCounters freed) noexcept;

// The block whose garbage the collector is destroying, announced for a program fork() in
// the middle of it (written by the collector only).
struct InFlight {
  std::atomic<std::uint32_t> block{kNoBlock};  // kNoBlock: none
  bool large = false;                          // a large object's span
  bool whole = false;                          // every slot of the block
  std::size_t count = 0;                       // words[] in use (otherwise)
  blocks::FreedWord words[kBitmapWords];
  std::atomic<std::uint64_t> next_slot{0};     // slots below it were destroyed or begun
};
extern InFlight g_in_flight;

// In the child of a program fork(), before its runtime collects again: releases what the
// parent's collector had destroyed of the block it was in, without destroying it twice.
void finish_in_flight_after_fork() noexcept;

}  // namespace cmr::detail
