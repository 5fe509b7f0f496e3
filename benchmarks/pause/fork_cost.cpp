// benchmarks/pause/fork_cost.cpp: what creating a copy-on-write child costs, without cmr.
//
// The numbers behind docs/decisions.md's "what the pause is made of": touches N MiB of
// anonymous memory, then forks 5 times and times each fork() in the parent. Modes:
//   4k        ordinary 4 KiB pages (MADV_NOHUGEPAGE)
//   thp       transparent huge pages (MADV_HUGEPAGE); the child exits before the parent
//             writes, so the huge pages stay whole
//   split     huge pages that the parent writes while each child still lives, so the
//             kernel splits them on copy-on-write, as under churn during a scan
//   collapse  as split, then MADV_COLLAPSE after each child, timed (Linux 6.1+)
//   vmas      N MiB as 256 KiB mappings, advice alternating so that none merge, one page
//             touched in each: what the number of mappings costs
//   vmas-dontfork  the same, every mapping MADV_DONTFORK, as snapshot isolation marks them:
//             what a mapping left out of the child still costs
// Output: one line per fork: mode, MiB, fork ms (and collapse ms).
// Usage: fork_cost <MiB> <4k|thp|split|collapse|vmas|vmas-dontfork>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

int many_mappings(std::size_t bytes, bool dontfork, const char* mode) {
  constexpr std::size_t kSmall = 256 << 10;
  for (std::size_t i = 0; i < bytes / kSmall; ++i) {
    void* m = ::mmap(nullptr, kSmall, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 3;
    ::madvise(m, kSmall, i % 2 == 0 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (dontfork) ::madvise(m, kSmall, MADV_DONTFORK);
    static_cast<char*>(m)[0] = 1;
  }
  for (int round = 0; round < 5; ++round) {
    const auto t = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    const double fork_ms = ms_since(t);
    ::waitpid(pid, nullptr, 0);
    std::printf("%s,%zu,%.3f,0\n", mode, bytes >> 20, fork_ms);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <MiB> <4k|thp|split|collapse|vmas|vmas-dontfork>\n", argv[0]);
    return 2;
  }
  const std::size_t bytes = std::strtoull(argv[1], nullptr, 10) << 20;
  const char* mode = argv[2];
  if (std::strncmp(mode, "vmas", 4) == 0) return many_mappings(bytes, std::strcmp(mode, "vmas-dontfork") == 0, mode);
  const bool huge = std::strcmp(mode, "4k") != 0;
  const bool split = std::strcmp(mode, "split") == 0 || std::strcmp(mode, "collapse") == 0;
  const bool collapse = std::strcmp(mode, "collapse") == 0;
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  // Huge-page aligned, so every 2 MiB of it can be one huge page.
  char* raw = static_cast<char*>(::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (raw == MAP_FAILED) return 3;
  char* p = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  ::madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;

  for (int round = 0; round < 5; ++round) {
    const auto t = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (split) ::usleep(20'000);  // alive while the parent writes
      ::_exit(0);
    }
    const double fork_ms = ms_since(t);
    if (!split) ::waitpid(pid, nullptr, 0);
    for (std::size_t i = 0; i < bytes; i += 4096) ++p[i];  // churn: every page written
    if (split) ::waitpid(pid, nullptr, 0);
    double collapse_ms = 0;
    if (collapse) {
      const auto c = std::chrono::steady_clock::now();
      if (::madvise(p, bytes, MADV_COLLAPSE) != 0) std::perror("madvise(MADV_COLLAPSE)");
      collapse_ms = ms_since(c);
    }
    std::printf("%s,%zu,%.3f,%.3f\n", mode, bytes >> 20, fork_ms, collapse_ms);
  }
  return 0;
}
