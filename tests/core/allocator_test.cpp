// tests/core/allocator_test.cpp: the backing allocator keeps its promises.
//
// With a region-backed allocator (jemalloc, mimalloc) every tracked block lies inside the
// reserved region and the program's own allocations never do, across threads, sizes,
// alignments and reuse after cycles: the pause work (copying only the region into the
// scanner) and the scanner's dense index both rely on it. With system malloc there is no
// region. The scanner must use its O(1) index for a region-backed heap. Snapshot isolation
// (issue 6) keeps the program's memory out of the child, never out of the program's own
// fork() children, and leaves the program's own fork flags exactly as it found them.
#include <gtest/gtest.h>

#include <cmr/cmr.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "backing_allocator.hpp"
#include "cmr/detail/hooks.hpp"

namespace {

template <std::size_t Bytes, std::size_t Align = 16>
struct alignas(Align) Blob {
  unsigned char bytes[Bytes];
};

bool in_region(const void* p) {
  const auto r = cmr::detail::backing::region();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return r.size != 0 && a >= r.base && a < r.base + r.size;
}

// Allocates a mix of tracked objects, half kept in Roots, and checks where they landed.
void allocate_and_check(std::vector<cmr::Root<Blob<24>>>& keep, int rounds) {
  const bool region = cmr::detail::backing::region().size != 0;
  for (int i = 0; i < rounds; ++i) {
    cmr::Guard<Blob<24>> g24;
    cmr::Guard<Blob<200, 64>> g200;
    cmr::Guard<Blob<9000>> gbig;
    cmr::Guard<Blob<24>> arr;
    auto* a = cmr::make<Blob<24>>(g24);
    auto* b = cmr::make<Blob<200, 64>>(g200);
    auto* c = i % 16 == 0 ? cmr::make<Blob<9000>>(gbig) : nullptr;
    auto* d = cmr::make_array<Blob<24>>(arr, 1 + i % 40);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(b) % 64, 0u);
    void* own = std::malloc(24 + i % 300);  // the program's allocation, interleaved
    if (region) {
      ASSERT_TRUE(in_region(a) && in_region(b) && in_region(d)) << "a tracked block outside";
      if (c != nullptr) {
        ASSERT_TRUE(in_region(c));
      }
      ASSERT_FALSE(in_region(own)) << "malloc() served from the tracked region";
    }
    std::free(own);
    if (i % 2 == 0) keep[static_cast<std::size_t>(i) % keep.size()].store(a);
  }
}

TEST(Allocator, ReportsTheConfiguredBacking) {
  EXPECT_STREQ(cmr::stats().allocator, CMR_EXPECTED_ALLOCATOR);  // before init too
  cmr::init();
  EXPECT_STREQ(cmr::detail::backing::name(), CMR_EXPECTED_ALLOCATOR);
  const bool region = cmr::detail::backing::region().size != 0;
  EXPECT_EQ(region, std::strcmp(CMR_EXPECTED_ALLOCATOR, "system") != 0);
}

TEST(Allocator, TrackedBlocksStayInTheRegionAcrossThreadsAndReuse) {
  std::vector<cmr::Root<Blob<24>>> keep(500);
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&] { allocate_and_check(keep, 3000); });
    for (auto& t : threads) t.join();
    // Freed blocks are reused by later rounds: they must still come from the region.
    ASSERT_TRUE(cmr::collect());
  }
  const cmr::Stats s = cmr::stats();
  EXPECT_GT(s.objects_freed, 10000u);
  for (auto& r : keep) {
    if (r.load() != nullptr && cmr::detail::backing::region().size != 0) {
      EXPECT_TRUE(in_region(r.load()));
    }
    r.store(nullptr);
  }
}

TEST(Allocator, ARegionBackedHeapIsScannedWithTheDenseIndex) {
  // A handful of candidates spread over a large span is cheaper to sort than to index;
  // thousands in a region must get the bitmap.
  std::vector<cmr::Root<Blob<24>>> keep(64);
  ASSERT_TRUE(cmr::collect());
  allocate_and_check(keep, 2000);
  const cmr::Stats before = cmr::stats();
  ASSERT_TRUE(cmr::collect());
  const cmr::Stats after = cmr::stats();
  EXPECT_GE(after.last_candidates, 6000u);
  if (cmr::detail::backing::region().size != 0) {
    EXPECT_EQ(after.dense_scans - before.dense_scans, after.cycles - before.cycles)
        << "a region-backed heap fell back to the sorted table";
  }
  for (auto& r : keep) r.store(nullptr);
}

}  // namespace

namespace {

// With isolation, the scanner child holds only the tracked region and the runtime's
// buffers: a child that reads the program's own memory faults, and its cycle frees
// nothing. Without a region there is no isolation, and the same read succeeds.
TEST(Isolation, AChildThatReadsProgramMemoryFailsSafely) {
  const std::size_t bytes = std::size_t{16} << 20;
  auto* program = static_cast<char*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(program, MAP_FAILED);
  std::memset(program, 1, bytes);
  ASSERT_TRUE(cmr::collect());  // notices the new mapping
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // flags refresh at most 1/s
  ASSERT_TRUE(cmr::collect());  // learns its fork flags

  {
    cmr::Guard<Blob<24>> g;
    cmr::make<Blob<24>>(g);  // garbage once the guard is gone
  }
  const cmr::Stats before = cmr::stats();
  EXPECT_EQ(before.snapshot_isolated, cmr::detail::backing::region().size != 0);
  cmr::detail::g_test_faults.child_reads = program + bytes / 2;
  const bool ok = cmr::collect();
  cmr::detail::g_test_faults.child_reads = nullptr;
  const cmr::Stats after = cmr::stats();
  if (before.snapshot_isolated) {
    EXPECT_FALSE(ok) << "the child could read program memory it was not given";
    EXPECT_EQ(after.scanner_crashes, before.scanner_crashes + 1);
    EXPECT_EQ(after.objects_freed, before.objects_freed) << "a failed cycle freed something";
    EXPECT_GE(after.last_isolated_bytes, bytes);
  } else {
    EXPECT_TRUE(ok);
  }
  ASSERT_TRUE(cmr::collect());  // the next cycle works and frees the garbage
  EXPECT_GT(cmr::stats().objects_freed, before.objects_freed);
  ::munmap(program, bytes);
}

}  // namespace

namespace {

// The VmFlags line of the mapping that holds `address` (the kernel may have merged it with
// a neighbour), from /proc/self/smaps, read with plain system calls into a static buffer:
// this also runs inside the pause (a hook), where malloc could meet a lock that a held
// thread owns.
const char* vm_flags_of(const void* address) {
  static char text[8 << 20];
  static char flags[256];
  flags[0] = 0;
  const int fd = ::open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return flags;
  std::size_t len = 0;
  for (ssize_t n; (n = ::read(fd, text + len, sizeof text - 1 - len)) > 0;) len += static_cast<std::size_t>(n);
  ::close(fd);
  text[len] = 0;
  const auto a = reinterpret_cast<unsigned long>(address);
  bool inside = false;
  for (char* line = text; line != nullptr && *line != 0;) {
    char* next = std::strchr(line, '\n');
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      inside = lo <= a && a < hi;
    } else if (inside && std::strncmp(line, "VmFlags:", 8) == 0) {
      const std::size_t n = std::min<std::size_t>(
          next == nullptr ? std::strlen(line) : static_cast<std::size_t>(next - line), sizeof flags - 1);
      std::memcpy(flags, line, n);
      flags[n] = 0;
      return flags;
    }
    line = next == nullptr ? nullptr : next + 1;
  }
  return flags;
}

bool has_flag(const char* vm_flags, const char* flag) {
  char word[8];
  std::snprintf(word, sizeof word, " %s", flag);
  const std::size_t n = std::strlen(word);
  for (const char* p = std::strstr(vm_flags, word); p != nullptr; p = std::strstr(p + 1, word))
    if (p[n] == ' ' || p[n] == 0) return true;
  return false;
}

char* map_touched(std::size_t bytes, char fill) {
  auto* p = static_cast<char*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p != MAP_FAILED) std::memset(p, fill, bytes);
  return p == MAP_FAILED ? nullptr : p;
}

// Lets cmr learn the fork flags of mappings created just now (smaps is re-read when a
// large unknown mapping appears, at most once a second).
void learn_mappings() {
  ASSERT_TRUE(cmr::collect());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(cmr::collect());
}

char* g_plain = nullptr;
std::atomic<bool> g_plain_marked_in_pause{false};
void look_at_plain_in_pause() {
  if (has_flag(vm_flags_of(g_plain), "dc")) g_plain_marked_in_pause = true;
}

// The program's MADV_DONTFORK and MADV_WIPEONFORK marks (as RDMA libraries set them) are
// still there after cycles; the mapping cmr did mark during the pause is unmarked again;
// and a child of the program's own fork() sees its memory as the kernel promises.
TEST(Isolation, TheProgramsOwnForkFlagsAreKeptAndOnlyOursAreUndone) {
  ASSERT_TRUE(cmr::collect());  // initialises the runtime, so stats() knows the mode
  if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
  const std::size_t bytes = std::size_t{4} << 20;
  char* plain = map_touched(bytes, 1);
  char* dontfork = map_touched(bytes, 2);
  char* wipe = map_touched(bytes, 3);
  ASSERT_TRUE(plain != nullptr && dontfork != nullptr && wipe != nullptr);
  ASSERT_EQ(::madvise(dontfork, bytes, MADV_DONTFORK), 0);
  ASSERT_EQ(::madvise(wipe, bytes, MADV_WIPEONFORK), 0);
  learn_mappings();

  g_plain = plain;
  g_plain_marked_in_pause = false;
  cmr::detail::g_test_hooks.collector_paused = &look_at_plain_in_pause;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cmr::collect());
  cmr::detail::g_test_hooks.collector_paused = nullptr;
  EXPECT_TRUE(g_plain_marked_in_pause.load())
      << "the program's mapping was not kept out of the child (the test proves nothing)";

  EXPECT_FALSE(has_flag(vm_flags_of(plain), "dc")) << vm_flags_of(plain);
  EXPECT_TRUE(has_flag(vm_flags_of(dontfork), "dc")) << vm_flags_of(dontfork);
  EXPECT_TRUE(has_flag(vm_flags_of(wipe), "wf")) << vm_flags_of(wipe);
  EXPECT_FALSE(has_flag(vm_flags_of(wipe), "dc")) << vm_flags_of(wipe);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    unsigned char vec = 0;
    const bool plain_ok = plain[0] == 1 && plain[bytes - 1] == 1;
    const bool wiped = wipe[0] == 0 && wipe[bytes - 1] == 0;
    const bool dontfork_absent = ::mincore(dontfork, 4096, &vec) != 0;  // ENOMEM: unmapped
    ::_exit(plain_ok && wiped && dontfork_absent ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  ::munmap(plain, bytes);
  ::munmap(dontfork, bytes);
  ::munmap(wipe, bytes);
}

// The marks exist only under the lock the program's fork() takes first (atfork): children
// forked while cycles run back to back read all of the program's memory.
TEST(Isolation, AProgramForkDuringCyclesNeverSeesOurMarks) {
  ASSERT_TRUE(cmr::collect());  // initialises the runtime, so stats() knows the mode
  if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
  const std::size_t bytes = std::size_t{4} << 20;
  char* canary = map_touched(bytes, 0x5a);
  ASSERT_NE(canary, nullptr);
  learn_mappings();

  std::atomic<bool> stop{false};
  std::atomic<int> cycles{0};
  std::thread collector([&] {
    while (!stop.load()) cycles.fetch_add(cmr::collect() ? 1 : 0);
  });
  int forks = 0, failures = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(canary[bytes / 2] == 0x5a ? 0 : 1);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ++forks;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  stop = true;
  collector.join();
  EXPECT_EQ(failures, 0) << failures << " of " << forks << " children could not read the "
                         << "program's memory (forked while a cycle held its marks)";
  EXPECT_GT(cycles.load(), 10) << "too few cycles ran beside the forks to mean anything";
  ::munmap(canary, bytes);
}

}  // namespace
