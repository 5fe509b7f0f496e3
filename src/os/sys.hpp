// src/os/sys.hpp: thin wrappers over the raw system calls the runtime needs.
//
// Everything here is async-signal-safe and allocation-free, so it may be used by the
// handshake handler, by the collector while threads are paused, and by the scanner child
// (which must not touch malloc or any lock: invariant 5 of docs/design.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cmr::detail::sys {

int gettid() noexcept;
// 0 on success, else the errno value.
int tgkill(int tid, int sig) noexcept;
// Monotonic clock, nanoseconds.
std::int64_t now_ns() noexcept;
// Sleeps for `ns` (a signal ends it early).
void sleep_ns(std::int64_t ns) noexcept;
// now_ns() + timeout_ns, saturated: INT64_MAX (never) when the sum would overflow.
std::int64_t deadline_after(std::int64_t timeout_ns) noexcept;

// Waits while *word == expected, at most timeout_ns (< 0, or more than a year: forever).
// Returns on wake-up, value change, timeout or signal; callers re-check their condition.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::int64_t timeout_ns = -1) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;
// The same for a word in a MAP_SHARED mapping, waited on by another process.
void futex_wait_shared(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::int64_t timeout_ns = -1) noexcept;
void futex_wake_shared(std::atomic<std::uint32_t>* word) noexcept;

// Anonymous private mapping of at least `bytes`, zero-filled; null on failure (MAP_NORESERVE:
// no commit charge until touched).
void* map_private(std::size_t bytes) noexcept;
// The same, between two PROT_NONE pages: the kernel never merges it with a neighbour, so
// a mapping of the program never becomes part of one the scanner child needs (snapshot
// isolation keeps those whole). Give it back with unmap_fenced.
void* map_fenced(std::size_t bytes) noexcept;
void unmap_fenced(void* p, std::size_t bytes) noexcept;
inline constexpr std::size_t kPage = 4096;
// Anonymous shared mapping (stays shared with a child created after it).
void* map_shared(std::size_t bytes) noexcept;
void unmap(void* p, std::size_t bytes) noexcept;
std::size_t page_round(std::size_t bytes) noexcept;

// Immediately ends the calling process, bypassing atexit and sanitizer exit hooks.
[[noreturn]] void exit_group(int code) noexcept;

}  // namespace cmr::detail::sys
