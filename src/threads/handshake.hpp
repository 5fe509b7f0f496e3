// src/threads/handshake.hpp: pausing every registered thread in a signal handler (see .cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cmr/detail/thread_record.hpp"

namespace cmr::detail::handshake {

// Installs the handler for `sig` with SA_RESTART. Throws cmr::Error if the program already
// handles (or ignores) that signal, or if the signal cannot carry a handshake.
void install(int sig);

// The installed signal, or 0.
int installed_signal() noexcept;

// True if the calling thread has the handshake's signal blocked: no cycle can hold it
// until it unblocks, so it must never wait for one (a system call; slow paths only).
bool blocked_in_this_thread() noexcept;

struct PauseOutcome {
  bool paused = false;         // every target is held in the handler
  int unanswered_tid = 0;      // first thread that did not answer (when !paused)
  std::size_t unanswered = 0;  // how many did not answer
  bool handler_replaced = false;  // (when !paused) the program replaced the handler
};

// Sends the signal to each target and waits until all are held in the handler, or until
// `timeout_ns` passed. On success they stay held until release(); on timeout the caller
// must call release() too (which frees those that did answer). Targets whose thread no
// longer exists are marked `gone` and skipped. Allocation-free.
PauseOutcome pause(ThreadRecord* const* targets, std::size_t count, std::int64_t timeout_ns) noexcept;

// Lets every held thread return from the handler. Returns the monotonic time of the
// release itself, taken before the wake-up: the woken threads may preempt the caller on
// its way out of the wake-up system call (measured: with four threads on two cores the
// collector then came back 4-12 ms later, a scheduler tick or more, while the threads ran),
// and that wait is not part of the pause.
std::int64_t release() noexcept;

}  // namespace cmr::detail::handshake
