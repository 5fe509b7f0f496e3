// src/cycle/collector.hpp: the collector: when cycles run (collector.cpp) and what one
// cycle does (cycle.cpp).
//
// One Collector exists per process (per fork child after its rebuild). Cycles run one at
// a time under cycle_mutex_, on the background thread or inline in collect() when there
// is none; everything a cycle owns below the mutex is touched by that one thread only.
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "cmr/runtime.hpp"
#include "os/mapped_array.hpp"
#include "snapshot/isolation.hpp"
#include "snapshot/scanner.hpp"

namespace cmr::detail {

class Collector {
 public:
  explicit Collector(const Options& options);
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Starts the background thread (Options::background).
  void start();
  // Stops the background thread after the cycle in flight, if any. Idempotent.
  void stop() noexcept;

  // cmr::collect(): a cycle whose snapshot follows this call; true if it freed its garbage.
  bool collect();

  // From make(): enough bytes were allocated; wakes the background thread.
  void request_automatic_cycle() noexcept;
  // From make() at heap_limit: a cycle now, whatever the trigger says (no waiting here).
  void request_cycle() noexcept;
  // True on the thread that runs cycles (background thread, or collect()'s caller inline).
  bool is_collector_thread() const noexcept;

  // Adds the collector's counters to `out`.
  void fill(Stats& out) const noexcept;
  // Continues the counters of `earlier` (the parent's collector, in a fork's child).
  void carry_over(const Collector& earlier) noexcept;
  // In a fork's child: gives back this collector's memory. Its thread does not exist there
  // and its mutexes may be held by threads that do not either, so it is never destroyed.
  void abandon_after_fork() noexcept;

 private:
  // ---- scheduling (collector.cpp) ----
  static void* thread_entry(void* self) noexcept;
  void thread_main() noexcept;
  void wake() noexcept;
  bool run_spaced_cycle();

  // ---- one cycle (cycle.cpp) ----
  // How one attempt ended; report() counts it and says why nothing was freed.
  enum class Outcome {
    kCompleted,        // garbage freed
    kNoRootBuffer,     // before the pause: no memory for the root buffer
    kNoAnswerBuffer,   // before the pause: no memory for the scanner's answer
    kHandlerReplaced,  // the program replaced cmr's signal handler: nothing held
    kUnanswered,       // a thread did not answer the handshake in time: nothing freed
    kNoRoomForRoots,   // in the pause: the roots outgrew the buffer
    kCloneFailed,      // the scanner process could not be created
    kScannerTimedOut,  // the child ran past scan_timeout and was killed
    kScannerFailed,    // the child crashed or exited without a complete answer
    kOverBudget,       // the in-pause mark ran past its budget: retried with a child
  };
  struct Ending {
    Outcome outcome;
    int detail = 0;               // errno, exit status or signal, first unanswered tid
    std::size_t unanswered = 0;   // threads that did not answer
  };
  bool run_cycle();
  Ending cycle_in_pause();
  Ending cycle_with_child();
  void report(const Ending& end) noexcept;
  // The pause's first half: the registry lock, the threads held. On failure the lock is
  // released, the threads run, and the Ending says why.
  bool hold_threads(std::unique_lock<std::mutex>& registry, bool isolate, Ending& why);
  void release_threads(std::unique_lock<std::mutex>& registry) noexcept;
  void drop_dead_records() noexcept;
  bool copy_roots() noexcept;
  void prepare_plan(std::uint32_t block_count, ScanResult* result, std::size_t capacity) noexcept;
  void finish(std::uint64_t allocated_at_cut) noexcept;
  bool ensure_answer_room() noexcept;
  bool ensure_pause_scratch() noexcept;
  void record_pause(std::int64_t ns) noexcept;

  void release_memory() noexcept;

  const Options options_;
  std::mutex cycle_mutex_;  // one cycle in flight at a time (docs/design.md invariant 6)

  // Cycle working state, used under cycle_mutex_.
  static constexpr std::size_t kReservedTargets = 256;
  std::vector<ThreadRecord*> targets_;
  // Kept for the scanner child, so fenced (see os/mapped_array.hpp).
  MappedArray<std::uintptr_t, Placement::kFenced> roots_;
  ScanPlan* plan_ = nullptr;                // in a fenced mapping of its own
  ScanResult* result_ = nullptr;            // shared with each child; kept across cycles
  std::size_t result_capacity_ = 0;         // entries
  const bool isolate_;                      // options_.isolate_snapshot (and no sanitizer)
  Isolation isolation_;
  // In-pause marks: scratch kept across cycles (the marks are zeroed after each use).
  const std::int64_t pause_budget_ns_;
  MappedArray<std::uint64_t> pause_marks_;
  MappedArray<std::uint32_t> pause_block_marks_;
  MappedArray<MarkScratch::Item> pause_stack_;
  // The in-pause mark's answer: private, kept, and touched already (a fresh shared
  // mapping would fault once per page inside the pause).
  MappedArray<std::uint64_t> pause_answer_;
  std::int64_t last_mark_ns_ = 0;        // the last completed mark, either way
  std::uint64_t last_reachable_ = 0;     // objects it reached
  std::int64_t pause_start_ns_ = 0;      // the current cycle's handshake began
  std::int64_t pause_ns_ = 0;            // the current cycle's pause
  std::uint32_t block_count_ = 0;        // blocks the current cycle looks at
  std::int64_t next_cycle_ns_ = 0;       // no cycle starts before (spacing, see .cpp)
  std::atomic<std::int64_t> last_end_ns_{0};  // when the last cycle attempt ended
  std::atomic<bool> last_in_pause_{true};     // it was marked in the pause (or none ran yet)
  const std::int64_t interval_ns_;            // Options::trigger_interval

  // Background thread and collect() requests. The thread runs on a stack of cmr's own (see
  // start()).
  static constexpr std::size_t kStackBytes = std::size_t{8} << 20;
  pthread_t thread_{};
  void* stack_ = nullptr;
  std::atomic<bool> running_{false};  // the background thread was started and not stopped
  // The tid of the thread running cycles, 0 when none. relaxed everywhere: only compared
  // with the caller's own tid, which is equal only when the caller itself stored it.
  std::atomic<int> thread_tid_{0};
  std::atomic<std::uint32_t> wake_seq_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> automatic_requested_{false};
  std::atomic<bool> forced_requested_{false};
  std::mutex request_mutex_;
  std::condition_variable done_cv_;
  std::uint64_t requested_ = 0;   // under request_mutex_
  std::uint64_t completed_ = 0;
  bool last_ok_ = false;

  // Counters (written by the cycle, read relaxed by stats()).
  std::atomic<std::uint64_t> cycles_{0}, aborted_{0}, failed_{0}, clone_failures_{0},
      crashes_{0}, timeouts_{0}, objects_freed_{0}, bytes_freed_{0}, last_candidates_{0},
      last_roots_{0}, last_words_{0}, isolated_bytes_{0}, marked_in_pause_{0}, over_budget_{0};
  std::atomic<std::int64_t> last_handshake_{0}, last_pause_{0}, max_pause_{0}, total_pause_{0},
      last_scan_{0}, max_scan_{0};
};

}  // namespace cmr::detail
