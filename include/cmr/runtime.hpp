// cmr/runtime.hpp: configuring and observing the collector.
//
// Options are validated once, by the first init() (explicit, or implicit on the first use of
// any other API). The runtime is process-wide; a second init() with different options is an
// error, never a silent reconfiguration. Nothing here is on a hot path.
#pragma once

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace cmr {

// Thrown for misuse (bad options, a second init with other options, use after shutdown,
// a signal the program already handles). make() reports a full heap with std::bad_alloc.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Receives one human-readable line per notable runtime event (aborted or failed cycle,
// crashed scanner). Called from the collector thread, never while threads are paused.
using DiagnosticSink = void (*)(const char* message);

// Writes the message to stderr, prefixed with "cmr: ". The default sink.
void stderr_sink(const char* message) noexcept;

struct Options {
  // The signal used for the handshake. Must not already have a handler in this process.
  // A real-time signal (SIGRTMIN + n) keeps SIGUSR1 free for the program.
  int signal = SIGUSR1;
  // A cycle starts once this many tracked bytes were allocated since the last one, or once
  // trigger_ratio x the live tracked bytes were, whichever is larger (like a GC percentage).
  // Bytes are slot bytes (an object's size rounded up to its size class).
  std::size_t trigger_bytes = std::size_t{256} << 10;
  double trigger_ratio = 1.0;
  // Also once this long passed since the last cycle ended, if anything was allocated and
  // that cycle was marked in the pause (cheap): a slowly allocating program then holds
  // back what it allocates in this time, not trigger_bytes. 0: bytes only.
  std::chrono::milliseconds trigger_interval{5};
  // A registered thread that has not answered the handshake by then aborts the cycle.
  std::chrono::milliseconds handshake_timeout{1000};
  // A scanner child still running after this long is killed; its cycle frees nothing.
  std::chrono::milliseconds scan_timeout{60000};
  // Run the collector thread. When false, cycles run only inside collect(), on the caller.
  bool background = true;
  DiagnosticSink diagnostics = &stderr_sink;
  // Virtual address space reserved for the tracked heap (whatever CMR_ALLOCATOR, which is
  // the program's malloc). Costs no memory until used; allocation fails
  // (make() throws std::bad_alloc) once the tracked heap outgrows it.
  std::size_t heap_reserve = std::size_t{64} << 30;
  // Upper bound on the live tracked heap in bytes (0: none). An allocation that would pass
  // it first waits for cycles to free memory: make() up to limit_wait, then throws
  // std::bad_alloc; try_make() returns null at once, try_make_for() after its own wait.
  // Enforced within 16 KiB per allocating thread (allocation counts are batched).
  std::size_t heap_limit = 0;
  // Keep the program's own memory out of the scanner child: every private anonymous
  // mapping but the tracked region and the runtime's buffers is marked MADV_DONTFORK for
  // the clone, so the pause does not grow with the program's resident memory. Off in
  // sanitizer builds (the child would need the sanitizer's shadow memory); see stats().
  bool isolate_snapshot = true;
  // Back the tracked region with transparent huge pages (madvise): the clone then copies
  // far fewer page-table entries, at the price of 2 MiB copy-on-write faults while a
  // scanner runs.
  bool huge_pages = true;
  std::chrono::milliseconds limit_wait{1000};
  // A cycle whose mark is expected to take at most this long is marked on the collector's
  // thread while the threads are held, with no scanner child: for a small live heap that
  // is cheaper than creating the child, and leaves no copy-on-write faults behind. The
  // expectation is the last cycle's mark time; a mark that runs past the budget is
  // abandoned and the cycle is run again with a child at once. 0: every cycle uses a child
  // (the threads then never wait for a mark).
  std::chrono::microseconds pause_mark_budget{200};

  friend bool operator==(const Options&, const Options&) = default;
};

// Initialises the runtime. Optional: the first use of the API initialises with defaults.
// Calling it again with equal options does nothing; with different options, or after an
// implicit initialisation with different options, it throws cmr::Error.
void init(const Options& options = {});

// Stops the collector (waiting for a cycle in flight). Frees nothing that may still be
// reachable. Afterwards new guards, make() and collect() throw cmr::Error; existing guards,
// Roots and Atomics keep working so that destructors can run.
void shutdown();

// Runs one full cycle whose snapshot is taken after this call began, and returns once that
// cycle's garbage has been destroyed and freed. Returns false when the cycle was aborted
// (a thread did not answer) or failed (process creation or the scanner failed); nothing
// was freed then. Must not be called from a tracked object's destructor.
bool collect();

struct Stats {
  std::uint64_t cycles = 0;           // completed cycles (garbage freed)
  std::uint64_t cycles_aborted = 0;   // handshake timed out: nothing freed
  std::uint64_t cycles_failed = 0;    // process creation or scanner failed: nothing freed
  std::uint64_t clone_failures = 0;   // part of cycles_failed
  std::uint64_t scanner_crashes = 0;  // part of cycles_failed: child died or gave no answer
  std::uint64_t scanner_timeouts = 0; // part of cycles_failed: child killed at scan_timeout
  std::uint64_t objects_freed = 0;
  std::uint64_t bytes_freed = 0;
  std::uint64_t live_objects = 0;     // tracked objects allocated and not yet freed
  std::uint64_t live_bytes = 0;
  std::uint64_t threads = 0;          // registered threads
  std::uint64_t last_candidates = 0;  // tracked objects examined by the last cycle
  std::uint64_t last_roots = 0;       // non-null guard slots and Roots copied by the last cycle
  std::uint64_t last_words_scanned = 0;
  std::chrono::nanoseconds last_pause{0};  // threads held: handshake + in-pause mark or clone
  std::chrono::nanoseconds last_handshake{0};  // part of last_pause: until all were held
  std::chrono::nanoseconds max_pause{0};
  std::chrono::nanoseconds total_pause{0};
  std::chrono::nanoseconds last_scan{0};   // the last mark, in the pause or in the child
  std::chrono::nanoseconds max_scan{0};
  const char* allocator = "";         // the program's malloc (CMR_ALLOCATOR): system, jemalloc, mimalloc
  std::uint64_t dense_scans = 0;      // completed cycles (each looks words up in O(1))
  bool snapshot_isolated = false;     // isolate_snapshot is in effect (not under ASan)
  std::uint64_t last_isolated_bytes = 0;  // program memory kept out of the last child
  std::uint64_t paced_waits = 0;      // allocations held back because cycles fell behind
  std::uint64_t limit_failures = 0;   // allocations refused at heap_limit
  std::uint64_t marked_in_pause = 0;  // completed cycles marked with the threads held
  std::uint64_t pause_marks_over_budget = 0;  // in-pause marks abandoned for a child
};

Stats stats();

}  // namespace cmr
