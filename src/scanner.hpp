// src/scanner.hpp: the mark phase the snapshot child runs (see scanner.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/hooks.hpp"
#include "cmr/detail/thread_record.hpp"

namespace cmr::detail {

// Entries [first_index, ...) of `first`, following `next`, up to entry `last_len` of
// `last`: one thread's allocations since its last completed cycle.
struct LogRange {
  LogChunk* first;
  std::size_t first_index;
  LogChunk* last;
  std::size_t last_len;
};

// The answer, in a mapping shared with the parent. The child fills `entries` with every
// candidate in ascending address order, bit 0 set on the reachable ones, then stores
// `complete` last.
struct ScanResult {
  std::atomic<std::uint32_t> complete;
  std::uint32_t epoch;
  std::uint64_t count;
  std::uint64_t reachable;
  std::uint64_t words_scanned;
  std::int64_t scan_ns;
  std::uint64_t dense;  // 1: the dense (bitmap) index answered; 0: the sorted table
  // 0 until the parent has released the paused threads (snapshot::start): the child waits
  // for it, so it never takes the collector's CPU while the threads are held.
  std::atomic<std::uint32_t> started;
  std::uint32_t unused;
  std::int64_t began_ns;  // CLOCK_MONOTONIC when the child passed that wait
  std::uintptr_t* entries() noexcept { return reinterpret_cast<std::uintptr_t*>(this + 1); }
  static std::size_t bytes_for(std::size_t count) noexcept {
    return sizeof(ScanResult) + count * sizeof(std::uintptr_t);
  }
};
static_assert(sizeof(ScanResult) % 16 == 0);

// Everything the child reads besides the tracked objects themselves, all in memory the
// runtime owns (never the program's own data structures).
struct ScanPlan {
  const std::uintptr_t* survivors;  // sorted, no tag bits: live objects of earlier cycles
  std::size_t survivor_count;
  const LogRange* ranges;
  std::size_t range_count;
  std::size_t new_count;            // total entries over all ranges
  const std::uintptr_t* roots;      // guard slot and Root values copied during the pause
  std::size_t root_count;
  ScanResult* result;               // shared; room for survivor_count + new_count entries
  std::uint32_t epoch;
  TestFaults faults;
};

// Runs the mark phase: collects the candidates, sorts them, marks everything reachable
// from the roots through conservatively scanned candidates, and completes `plan.result`.
// Uses only memory it maps itself; never allocates, locks, or touches program state other
// than the tracked objects. Returns false if it could not map its scratch memory.
bool scan(const ScanPlan& plan) noexcept;

// The child's entry point: scan, then _exit through the raw system call.
[[noreturn]] void scanner_child_main(const ScanPlan& plan) noexcept;

}  // namespace cmr::detail
