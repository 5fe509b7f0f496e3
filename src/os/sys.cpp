// src/os/sys.cpp: raw system calls (see sys.hpp). No allocation, no locks, errno untouched
// where callers are signal handlers (they save and restore it themselves).
//
// Claims invariant 22 of docs/design.md.
#include "os/sys.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace cmr::detail::sys {

int gettid() noexcept { return static_cast<int>(::syscall(SYS_gettid)); }

int tgkill(int tid, int sig) noexcept {
  if (::syscall(SYS_tgkill, static_cast<int>(::getpid()), tid, sig) == 0) return 0;
  return errno;
}

std::int64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) noexcept {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  ::nanosleep(&ts, nullptr);
}

std::int64_t deadline_after(std::int64_t timeout_ns) noexcept {
  const std::int64_t now = now_ns();
  return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

namespace {

constexpr std::int64_t kForeverNs = std::int64_t{365} * 24 * 3600 * 1'000'000'000;

void futex_wait_op(std::atomic<std::uint32_t>* word, int op, std::uint32_t expected,
                   std::int64_t timeout_ns) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout_ns >= 0 && timeout_ns < kForeverNs) {
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    tsp = &ts;
  }
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, expected, tsp, nullptr, 0);
}

void futex_wake_op(std::atomic<std::uint32_t>* word, int op) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, 0x7fffffff, nullptr, nullptr, 0);
}

}  // namespace

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::int64_t timeout_ns) noexcept {
  futex_wait_op(word, FUTEX_WAIT_PRIVATE, expected, timeout_ns);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
  futex_wake_op(word, FUTEX_WAKE_PRIVATE);
}

void futex_wait_shared(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::int64_t timeout_ns) noexcept {
  futex_wait_op(word, FUTEX_WAIT, expected, timeout_ns);
}

void futex_wake_shared(std::atomic<std::uint32_t>* word) noexcept {
  futex_wake_op(word, FUTEX_WAKE);
}

std::size_t page_round(std::size_t bytes) noexcept {
  return (bytes + kPage - 1) & ~(kPage - 1);
}

void* map_private(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, page_round(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void* map_fenced(std::size_t bytes) noexcept {
  const std::size_t inner = page_round(bytes);
  auto* p = static_cast<char*>(::mmap(nullptr, inner + 2 * kPage, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (p == MAP_FAILED) return nullptr;
  if (::mprotect(p, kPage, PROT_NONE) != 0 || ::mprotect(p + kPage + inner, kPage, PROT_NONE) != 0) {
    ::munmap(p, inner + 2 * kPage);
    return nullptr;
  }
  return p + kPage;
}

void unmap_fenced(void* p, std::size_t bytes) noexcept {
  if (p != nullptr) ::munmap(static_cast<char*>(p) - kPage, page_round(bytes) + 2 * kPage);
}

void* map_shared(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, page_round(bytes), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap(void* p, std::size_t bytes) noexcept {
  if (p != nullptr) ::munmap(p, page_round(bytes));
}

void exit_group(int code) noexcept {
  for (;;) ::syscall(SYS_exit_group, code);
}

}  // namespace cmr::detail::sys
