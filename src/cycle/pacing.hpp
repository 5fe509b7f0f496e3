// src/cycle/pacing.hpp: when cycles run, and how far allocation may run ahead of them.
//
// Three rules, all here: the trigger (a cycle once the bytes allocated since the last one
// reach trigger_threshold, or once Options::trigger_interval passed after a cheap cycle),
// pacing (a thread that allocated kPaceFactor times the trigger since the last completed
// cycle waits for one, briefly), and admission (with Options::heap_limit, an allocation
// that would pass the limit waits for cycles to make room, then fails).
// Allocation is counted per thread and added to the shared count in batches of
// kFlushBytes, so make()'s inline path has no shared write. Waiters sleep on cycle_seq,
// which the collector bumps after every cycle attempt (cycle_ended()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cmr/detail/thread_record.hpp"
#include "cmr/runtime.hpp"

namespace cmr::detail {

struct Pacing {
  // Bytes allocated since the last completed cycle (flushed from threads in batches).
  std::atomic<std::uint64_t> allocated_since_cycle{0};
  std::atomic<std::uint64_t> trigger_threshold{256u << 10};
  // Live bytes found by the last completed cycle; with allocated_since_cycle, an upper
  // bound on the live tracked heap (for Options::heap_limit).
  std::atomic<std::uint64_t> survivor_bytes{0};
  // Bumped (and futex-woken) after every cycle attempt.
  std::atomic<std::uint32_t> cycle_seq{0};
  // CLOCK_MONOTONIC after which any allocation starts a cycle (Options::trigger_interval,
  // after a cheap cycle); INT64_MAX when the timed trigger is off.
  std::atomic<std::int64_t> timed_cycle_ns{INT64_MAX};
  std::atomic<std::uint64_t> paced_waits{0}, limit_failures{0};
};

// Created on first use, never destroyed.
Pacing& pacing();

namespace pacing_rules {

// At init: the first trigger, and the timed trigger armed (no cycle ran, the first is cheap).
void arm(const Options& options) noexcept;

// The allocation side (heap/allocate.cpp). True when `bytes` more fit under the calling
// thread's heap_limit, after waiting up to max_wait_ns for cycles; the caller checked that
// a limit is set.
bool admit(ThreadRecord* r, std::size_t bytes, std::int64_t max_wait_ns);
// Counts one allocation of `bytes` slot bytes for this thread (and flushes a full batch).
void account(ThreadRecord* r, std::size_t bytes);
// Adds this thread's unflushed bytes to the shared count (at thread exit).
void flush(ThreadRecord* r) noexcept;

// The collector's side. With every allocating thread held: the count the cycle accounts for.
std::uint64_t allocated_at_cut() noexcept;
// After a completed cycle: the bytes it accounted for are taken off the count, and the next
// trigger follows the live bytes it found.
void cycle_completed(std::uint64_t allocated_at_cut, std::uint64_t survivor_bytes,
                     const Options& options) noexcept;
// After every cycle attempt: waiters wake; the timed trigger is armed `interval_ns` after
// `end_ns` when the cycle was cheap (marked in the pause), and off otherwise.
void cycle_ended(std::int64_t end_ns, std::int64_t interval_ns, bool cheap) noexcept;

}  // namespace pacing_rules

}  // namespace cmr::detail
