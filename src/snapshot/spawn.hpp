// src/snapshot/spawn.hpp: creating the copy-on-write scanner child and collecting its answer.
#pragma once

#include <cstdint>

#include "snapshot/scanner.hpp"

namespace cmr::detail::snapshot {

struct Child {
  int pid = -1;
  int pidfd = -1;
};

// Creates the child with the raw clone system call (exit signal 0, so the program's
// wait()/waitpid(-1)/SIGCHLD never see it). The child runs scanner_child_main(plan, faults).
// Returns 0, or the errno of the failed process creation. Allocation-free: called while
// threads are paused.
int spawn(const ScanPlan& plan, const ChildFaults& faults, Child& child) noexcept;

// Lets the child begin its scan. Called once the paused threads have been released: a
// child that ran at once could preempt the collector before it released them (measured:
// clone 2.2 ms, then up to 4.8 ms more before the release on two cores).
void start(ScanResult* result) noexcept;

enum class Outcome { kExited, kCrashed, kTimedOut };

// Waits for the child to end (at most timeout_ns, then kills it) and reaps it, so no
// zombie remains. `detail` receives the exit code or the signal number.
Outcome wait(Child& child, std::int64_t timeout_ns, int& detail) noexcept;

}  // namespace cmr::detail::snapshot
