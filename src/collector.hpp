// src/collector.hpp: the cycle driver and the background collector thread (see .cpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <pthread.h>

#include <mutex>
#include <vector>

#include "cmr/runtime.hpp"
#include "isolation.hpp"
#include "scanner.hpp"

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
  // How one attempt at a cycle ended.
  enum class Outcome {
    kCompleted,   // garbage freed
    kAborted,     // a thread did not answer the handshake: nothing freed
    kFailed,      // no memory, process creation or the scanner failed: nothing freed
    kOverBudget,  // the in-pause mark ran past its budget: nothing freed, use a child
  };
  bool run_cycle();
  bool run_cycle_and_announce();
  bool run_spaced_cycle();
  Outcome cycle_in_pause();
  Outcome cycle_with_child();
  // The pause's first half: the registry lock, the threads held, the roots copied. False
  // (lock released, threads running, cycle counted as aborted) if a thread did not answer.
  bool hold_threads(std::unique_lock<std::mutex>& registry, std::int64_t& t0, bool isolate);
  void release_threads(std::unique_lock<std::mutex>& registry, std::int64_t t0) noexcept;
  void prepare_plan(std::uint32_t block_count, ScanResult* result, std::size_t capacity) noexcept;
  Outcome finish(const std::int64_t t0, std::uint64_t allocated_at_cut) noexcept;
  bool ensure_pause_scratch() noexcept;
  std::atomic<bool> forced_requested_{false};
  void thread_main() noexcept;
  void wake() noexcept;
  bool copy_roots() noexcept;
  void drop_dead_records() noexcept;
  bool ensure_answer_room() noexcept;
  void record_pause(std::int64_t ns) noexcept;
  bool mark_isolation() noexcept;

  template <class T>
  struct MappedBuffer {  // runtime-owned memory, grown with mmap (never malloc)
    T* data = nullptr;
    std::size_t capacity = 0;
    std::size_t size = 0;
    bool reserve(std::size_t n) noexcept;
    bool push(T v) noexcept { return (size < capacity || reserve(capacity * 2 + 64)) ? (data[size++] = v, true) : false; }
    void release() noexcept;
  };

  void release_memory() noexcept;

  const Options options_;
  std::mutex cycle_mutex_;  // one cycle in flight at a time (DESIGN invariant 6)

  // Cycle working state, used under cycle_mutex_.
  static constexpr std::size_t kReservedTargets = 256;
  std::vector<ThreadRecord*> targets_;
  MappedBuffer<std::uintptr_t> roots_;
  ScanPlan* plan_ = nullptr;                // in a mapping of its own
  ScanResult* result_ = nullptr;            // shared with each child; kept across cycles
  std::size_t result_capacity_ = 0;         // entries
  std::uint64_t survivor_bytes_ = 0;
  const bool isolate_;                      // options_.isolate_snapshot (and no sanitizer)
  Isolation isolation_;
  MappedBuffer<KeepRange> keep_;
  // In-pause marks: scratch kept across cycles (the marks are zeroed after each use).
  const std::int64_t pause_budget_ns_;
  MappedBuffer<std::uint64_t> pause_marks_;
  MappedBuffer<std::uint32_t> pause_block_marks_;
  MappedBuffer<MarkScratch::Item> pause_stack_;
  // The in-pause mark's answer: private, kept, and touched already (a fresh shared
  // mapping would fault once per page inside the pause).
  MappedBuffer<std::uint64_t> pause_answer_;
  std::int64_t last_mark_ns_ = 0;        // the last completed mark, either way
  std::uint64_t last_reachable_ = 0;     // objects it reached
  std::uint64_t last_garbage_words_ = 0; // entries of its answer
  std::int64_t pause_ns_ = 0;            // the current cycle's pause so far
  std::int64_t next_cycle_ns_ = 0;       // no cycle starts before (spacing, see .cpp)
  std::atomic<std::int64_t> last_end_ns_{0};  // when the last cycle attempt ended
  std::atomic<bool> last_in_pause_{true};     // it was marked in the pause (or none ran yet)
  const std::int64_t interval_ns_;            // Options::trigger_interval

  // Background thread and collect() requests. The thread runs on a stack of cmr's own (see
  // start()).
  static constexpr std::size_t kStackBytes = std::size_t{8} << 20;
  static void* thread_entry(void* self) noexcept;
  pthread_t thread_{};
  void* stack_ = nullptr;
  std::atomic<bool> running_{false};  // the background thread was started and not stopped
  std::atomic<int> thread_tid_{0};  // relaxed: compared with the caller's own tid only
  std::atomic<std::uint32_t> wake_seq_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> automatic_requested_{false};
  std::mutex request_mutex_;
  std::condition_variable done_cv_;
  std::uint64_t requested_ = 0;   // under request_mutex_
  std::uint64_t completed_ = 0;
  bool last_ok_ = false;

  // Counters (written by the cycle, read relaxed by stats()).
  std::atomic<std::uint64_t> cycles_{0}, aborted_{0}, failed_{0}, clone_failures_{0},
      crashes_{0}, timeouts_{0}, objects_freed_{0}, bytes_freed_{0}, last_candidates_{0},
      last_roots_{0}, last_words_{0}, isolated_bytes_{0}, marked_in_pause_{0}, over_budget_{0};
  std::atomic<std::int64_t> last_handshake_{0}, last_pause_{0}, max_pause_{0}, total_pause_{0}, last_scan_{0},
      max_scan_{0};
};

}  // namespace cmr::detail
