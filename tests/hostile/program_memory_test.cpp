// tests/hostile/program_memory_test.cpp: the program's memory, of every kind, and its own
// fork flags, against snapshot isolation.
//
// The scanner child must hold only the tracked region and the runtime's buffers, never the
// program's memory (it would be copied into every child, and the pause would grow with
// it): a child that reads the program's memory faults, and its cycle frees nothing. The
// program's own fork() children must see none of this: they read every mapping, the
// program's own MADV_DONTFORK and MADV_WIPEONFORK marks stay as they were, cmr's marks
// exist only inside the pause (under the lock the program's fork() takes first), and a
// mapping unmapped under the mark is left unmarked. Each kind of private memory a program
// holds (harness/program_memory.hpp) is tested at 1 GiB, made before cmr starts and after,
// each in a fresh process.
// Isolation.* run in a helper process each (support/helper.hpp), with cmr's default
// options; IsolationOfEveryKind.* in a fresh process per statement (support/verdict.hpp).
// Isolation is off under AddressSanitizer (its shadow memory is program memory the child
// needs); these tests then skip.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>

#include "harness/program_memory.hpp"
#include "support/helper.hpp"
#include "support/verdict.hpp"

namespace {

using ::testing::ExitedWithCode;
using cmr_test::run_in_helper;
using cmr::bench::MemoryKind;
using cmr::bench::ProgramMemory;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kIsolationBuilt = false;
#else
constexpr bool kIsolationBuilt = true;
#endif

struct IsolationBlob {
  std::uint64_t words[3] = {};
};

// The VmFlags line of the mapping that holds `address` (the kernel may have merged it with
// a neighbour), from /proc/self/smaps, read with plain system calls into a static buffer:
// this also runs inside the pause (a hook), where malloc could meet a lock that a held
// thread owns.
bool parse_range(const char* line, unsigned long& lo, unsigned long& hi) {
  auto hex = [](const char*& p, unsigned long& v) {
    const char* start = p;
    for (v = 0;; ++p) {
      if (*p >= '0' && *p <= '9') v = v * 16 + static_cast<unsigned long>(*p - '0');
      else if (*p >= 'a' && *p <= 'f') v = v * 16 + static_cast<unsigned long>(*p - 'a' + 10);
      else return p != start;
    }
  };
  const char* p = line;
  if (!hex(p, lo) || *p++ != '-') return false;
  return hex(p, hi) && *p == ' ';
}

const char* vm_flags_of(const void* address) {
  static char text[32 << 20];
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
    if (parse_range(line, lo, hi)) {  // not sscanf: it measures the whole rest of the text
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

// A touched mapping fenced by PROT_NONE pages, which keep the kernel from merging it with
// a neighbour (the allocator maps segments wherever it likes); unmap with unmap_touched.
constexpr std::size_t kFence = 4096;
char* map_touched(std::size_t bytes, char fill) {
  auto* f = static_cast<char*>(::mmap(nullptr, bytes + 2 * kFence, PROT_NONE,
                                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (f == MAP_FAILED) return nullptr;
  char* p = f + kFence;
  if (::mprotect(p, bytes, PROT_READ | PROT_WRITE) != 0) return nullptr;
  std::memset(p, fill, bytes);
  return p;
}
void unmap_touched(char* p, std::size_t bytes) { ::munmap(p - kFence, bytes + 2 * kFence); }

// In the pause of a cycle: is `g_probe`'s mapping marked (kept out of the child)?
const char* g_probe = nullptr;
std::atomic<bool> g_probe_marked{false};
void look_at_probe_in_pause() {
  if (has_flag(vm_flags_of(g_probe), "dc")) g_probe_marked = true;
}

// Runs cycles until one keeps `p`'s mapping out of its child. A mapping made just now has
// unknown fork flags until smaps is read again, which cmr does once the time since the
// last read is ten times that read's cost: a few cycles, never more than kLearnSeconds.
constexpr int kLearnSeconds = 30;
bool learn(const char* p) {
  g_probe = p;
  g_probe_marked = false;
  cmr::detail::g_test_hooks.collector_paused = &look_at_probe_in_pause;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(kLearnSeconds);
  while (!g_probe_marked.load() && std::chrono::steady_clock::now() < until) cmr::collect();
  cmr::detail::g_test_hooks.collector_paused = nullptr;
  return g_probe_marked.load();
}

// The child of one cycle reads `address`: true if that cycle failed as a crashed child.
bool child_faults_reading(const volatile char* address) {
  {
    cmr::Guard<IsolationBlob> g;
    cmr::make<IsolationBlob>(g);  // garbage once the guard is gone: a cycle that works frees it
  }
  const cmr::Stats before = cmr::stats();
  cmr::detail::g_test_faults.child_reads = address;
  const bool ok = cmr::collect();
  cmr::detail::g_test_faults.child_reads = nullptr;
  const cmr::Stats after = cmr::stats();
  return !ok && after.scanner_crashes == before.scanner_crashes + 1 &&
         after.objects_freed == before.objects_freed;
}

TEST(Isolation, AChildThatReadsProgramMemoryFailsSafely) {
  run_in_helper([] {
    const std::size_t bytes = std::size_t{16} << 20;
    char* program = map_touched(bytes, 1);
    ASSERT_NE(program, nullptr);
    ASSERT_TRUE(cmr::collect());  // initialises the runtime, so stats() knows the mode
    if (cmr::stats().snapshot_isolated) {
      ASSERT_TRUE(learn(program)) << "no cycle in " << kLearnSeconds << " s kept the mapping out";
      EXPECT_TRUE(child_faults_reading(program + bytes / 2))
          << "the child could read program memory it was not given";
      EXPECT_GE(cmr::stats().last_isolated_bytes, bytes);
    } else {
      cmr::detail::g_test_faults.child_reads = program + bytes / 2;
      EXPECT_TRUE(cmr::collect()) << "without isolation the child reads the program's memory";
      cmr::detail::g_test_faults.child_reads = nullptr;
    }
    const std::uint64_t freed = cmr::stats().objects_freed;
    {
      cmr::Guard<IsolationBlob> g;
      cmr::make<IsolationBlob>(g);
    }
    ASSERT_TRUE(cmr::collect());  // the next cycle works and frees the garbage
    EXPECT_GT(cmr::stats().objects_freed, freed);
    unmap_touched(program, bytes);
  });
}

// The program's MADV_DONTFORK and MADV_WIPEONFORK marks (as RDMA libraries set them) are
// still there after cycles; the mapping cmr did mark during the pause is unmarked again;
// and a child of the program's own fork() sees its memory as the kernel promises.
TEST(Isolation, TheProgramsOwnForkFlagsAreKeptAndOnlyOursAreUndone) {
  run_in_helper([] {
    ASSERT_TRUE(cmr::collect());
    if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
    const std::size_t bytes = std::size_t{4} << 20;
    char* plain = map_touched(bytes, 1);
    char* dontfork = map_touched(bytes, 2);
    char* wipe = map_touched(bytes, 3);
    ASSERT_TRUE(plain != nullptr && dontfork != nullptr && wipe != nullptr);
    ASSERT_EQ(::madvise(dontfork, bytes, MADV_DONTFORK), 0);
    ASSERT_EQ(::madvise(wipe, bytes, MADV_WIPEONFORK), 0);
    ASSERT_TRUE(learn(plain)) << "the program's mapping was not kept out of the child";
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(cmr::collect());

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
    unmap_touched(plain, bytes);
    unmap_touched(dontfork, bytes);
    unmap_touched(wipe, bytes);
  });
}

// The marks exist only under the lock the program's fork() takes first (atfork): children
// forked while cycles run back to back read all of the program's memory.
TEST(Isolation, AProgramForkDuringCyclesNeverSeesOurMarks) {
  run_in_helper([] {
    ASSERT_TRUE(cmr::collect());
    if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
    const std::size_t bytes = std::size_t{4} << 20;
    char* canary = map_touched(bytes, 0x5a);
    ASSERT_NE(canary, nullptr);
    ASSERT_TRUE(learn(canary));

    std::atomic<bool> stop{false};
    std::atomic<int> cycles{0};
    std::thread collector([&] {
      while (!stop.load()) cycles.fetch_add(cmr::collect() ? 1 : 0);
    });
    int forks = 0, failures = 0;
    // At least 200 forks, and at least 50 cycles beside them, however the machine schedules.
    while (forks < 200 || cycles.load() < 50) {
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
    unmap_touched(canary, bytes);
  });
}

// A mapping unmapped after the cycle listed the mappings and before it marked them makes
// the mark fail over a range the kernel marked around the hole. Nothing may stay marked
// there: a later fork() of the program would lose those mappings in its child for good.
char* g_gone = nullptr;
std::size_t g_gone_bytes = 0;
void unmap_the_middle_page() {
  if (g_gone == nullptr) return;
  ::munmap(g_gone + g_gone_bytes / 2, 4096);
  g_gone = nullptr;
}

TEST(Isolation, AMappingThatShrinksBeforeTheMarkIsLeftUnmarked) {
  run_in_helper([] {
    ASSERT_TRUE(cmr::collect());
    if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
    const std::size_t bytes = std::size_t{1} << 20;
    char* p = map_touched(bytes, 7);
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(learn(p));  // known and marked in every cycle from now on
    g_gone_bytes = bytes;
    g_gone = p;
    cmr::detail::g_test_hooks.collector_before_isolation = &unmap_the_middle_page;
    ASSERT_TRUE(cmr::collect());
    cmr::detail::g_test_hooks.collector_before_isolation = nullptr;
    ASSERT_EQ(g_gone, nullptr) << "the hook did not run: the test proves nothing";
    EXPECT_FALSE(has_flag(vm_flags_of(p), "dc")) << "left marked: " << vm_flags_of(p);
    EXPECT_FALSE(has_flag(vm_flags_of(p + bytes - 1), "dc")) << "left marked: " << vm_flags_of(p + bytes - 1);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(p[0] == 7 && p[bytes - 1] == 7 ? 0 : 1);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the program's child lost the mapping (status " << status << ")";
    ::munmap(p - kFence, bytes / 2 + kFence);
    ::munmap(p + bytes / 2 + 4096, bytes / 2 - 4096 + kFence);
  });
}

// The scanner child runs on a copy of the collector thread's stack, so that mapping is
// kept whole. The kernel merges neighbouring mappings of equal flags into one, and since
// Linux 6.7 a thread stack is NOHUGEPAGE like a database's mapping advised so: a program
// mapping made next to a plain stack became part of it and was copied into every child.
// So the stack is fenced on both sides by pages of its own that no program mapping can
// merge with (PROT_NONE, which a program's mapping never has when it holds data).
std::atomic<const char*> g_collector_frame{nullptr};
void note_collector_frame() {
  volatile char here = 0;
  g_collector_frame = const_cast<const char*>(&here);
}

// The mapping holding `address` and its two neighbours' permissions ("" where unmapped).
struct Neighbourhood {
  unsigned long lo = 0, hi = 0;
  std::string below, above;
};
Neighbourhood neighbourhood_of(const void* address) {
  Neighbourhood n;
  FILE* f = std::fopen("/proc/self/maps", "r");
  if (f == nullptr) return n;
  char line[512], previous[512] = "";
  unsigned long prev_hi = 0;
  const auto a = reinterpret_cast<unsigned long>(address);
  bool found = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    if (!parse_range(line, lo, hi)) continue;
    const char* perms = std::strchr(line, ' ') + 1;
    if (found) {
      if (lo == n.hi) n.above.assign(perms, 4);
      break;
    }
    if (lo <= a && a < hi) {
      found = true;
      n.lo = lo;
      n.hi = hi;
      if (prev_hi == lo && previous[0] != 0) n.below.assign(std::strchr(previous, ' ') + 1, 4);
    }
    std::strcpy(previous, line);
    prev_hi = hi;
  }
  std::fclose(f);
  return n;
}

TEST(Isolation, TheCollectorsStackIsFencedSoNoProgramMappingMergesWithIt) {
  run_in_helper([] {
    ASSERT_TRUE(cmr::collect());
    if (!cmr::stats().snapshot_isolated) GTEST_SKIP() << "no snapshot isolation in this build";
    cmr::detail::g_test_hooks.collector_paused = &note_collector_frame;
    ASSERT_TRUE(cmr::collect());
    cmr::detail::g_test_hooks.collector_paused = nullptr;
    ASSERT_NE(g_collector_frame.load(), nullptr);
    const Neighbourhood n = neighbourhood_of(g_collector_frame.load());
    ASSERT_NE(n.hi, 0u) << "the collector's frame is in no mapping";
    EXPECT_EQ(n.below, "---p") << "below the collector's stack";
    EXPECT_EQ(n.above, "---p") << "above the collector's stack: a program mapping placed there "
                                  "with the stack's flags would merge with it";
  });
}

// ---- every kind of private memory, made before and after cmr starts -------------------

struct KindCase {
  MemoryKind kind;
  bool before_init;
};

std::string case_name(const ::testing::TestParamInfo<KindCase>& info) {
  return std::string(cmr::bench::memory_kind_name(info.param.kind)) +
         (info.param.before_init ? "_MadeBeforeInit" : "_MadeAfterInit");
}

constexpr std::size_t kKindBytes = std::size_t{1} << 30;  // 1 GiB of each kind
constexpr std::size_t kKindTouch = std::size_t{64} << 20;  // of which 64 MiB written

#define KIND_CHECK(cond, ...) CMR_STATEMENT_CHECK(cond, __VA_ARGS__)

void keeps_kind_out_of_the_child(KindCase c) {
  const std::size_t flag_bytes = std::size_t{1} << 20;
  char* dontfork = map_touched(flag_bytes, 2);
  char* wipe = map_touched(flag_bytes, 3);
  KIND_CHECK(dontfork != nullptr && wipe != nullptr, "mmap");
  KIND_CHECK(::madvise(dontfork, flag_bytes, MADV_DONTFORK) == 0, "MADV_DONTFORK");
  KIND_CHECK(::madvise(wipe, flag_bytes, MADV_WIPEONFORK) == 0, "MADV_WIPEONFORK");

  std::unique_ptr<ProgramMemory> memory;
  if (c.before_init) memory = std::make_unique<ProgramMemory>(c.kind, kKindBytes, kKindTouch);
  cmr::init({.isolate_snapshot = true});
  cmr::detail::g_test_faults.use_child = true;
  KIND_CHECK(cmr::collect(), "the first cycle");
  if (!c.before_init) memory = std::make_unique<ProgramMemory>(c.kind, kKindBytes, kKindTouch);
  KIND_CHECK(memory->ok(), "%s%s", memory->error().c_str(), memory->skipped().c_str());
  KIND_CHECK(cmr::stats().snapshot_isolated, "isolation is off");

  const auto& pieces = memory->readable();
  const char* probes[] = {pieces.front().begin, pieces[pieces.size() / 2].begin + pieces[pieces.size() / 2].bytes / 2,
                          pieces.back().begin + pieces.back().bytes - 1};
  char seen[3];
  for (int i = 0; i < 3; ++i) seen[i] = *probes[i];
  KIND_CHECK(learn(probes[0]), "no cycle in %d s kept the first piece out", kLearnSeconds);
  for (const char* p : probes) KIND_CHECK(learn(p), "no cycle kept %p out", static_cast<const void*>(p));
  KIND_CHECK(cmr::stats().last_isolated_bytes >= memory->readable_bytes(),
             "the last child was kept from %llu bytes, the program holds %zu of this kind",
             static_cast<unsigned long long>(cmr::stats().last_isolated_bytes), memory->readable_bytes());
  for (const char* p : probes)
    KIND_CHECK(child_faults_reading(p), "the child read %p of the program's memory", static_cast<const void*>(p));
  KIND_CHECK(cmr::collect(), "the cycle after the faults");

  KIND_CHECK(has_flag(vm_flags_of(dontfork), "dc"), "the program's DONTFORK is gone: %s", vm_flags_of(dontfork));
  KIND_CHECK(has_flag(vm_flags_of(wipe), "wf") && !has_flag(vm_flags_of(wipe), "dc"),
             "the program's WIPEONFORK changed: %s", vm_flags_of(wipe));
  for (const char* p : probes)
    KIND_CHECK(!has_flag(vm_flags_of(p), "dc"), "cmr's mark stayed: %s", vm_flags_of(p));

  const pid_t pid = ::fork();
  KIND_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    unsigned char vec = 0;
    bool same = true;
    for (int i = 0; i < 3; ++i) same = same && *probes[i] == seen[i];
    ::_exit(same && wipe[0] == 0 && ::mincore(dontfork, 4096, &vec) != 0 ? 0 : 1);
  }
  int status = 0;
  KIND_CHECK(::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "the program's own child did not see its memory as the kernel promises (status %d)", status);
}

class IsolationOfEveryKind : public cmr_test::InFreshProcess,
                             public ::testing::WithParamInterface<KindCase> {};

TEST_P(IsolationOfEveryKind, IsKeptOutOfTheChildAndTheProgramsFlagsStay) {
  if (!kIsolationBuilt) GTEST_SKIP() << "no snapshot isolation under AddressSanitizer";
  if (GetParam().kind == MemoryKind::mlocked) {
    rlimit lock{};
    getrlimit(RLIMIT_MEMLOCK, &lock);
    if (geteuid() != 0 && lock.rlim_cur < kKindBytes)
      GTEST_SKIP() << "mlock of 1 GiB needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK";
  }
  EXPECT_EXIT(cmr_test::exit_expecting_success([c = GetParam()] { keeps_kind_out_of_the_child(c); }),
              ExitedWithCode(0), "");
}

std::vector<KindCase> every_kind() {
  std::vector<KindCase> cases;
  for (MemoryKind k : cmr::bench::kAllMemoryKinds) {
    cases.push_back({k, true});
    cases.push_back({k, false});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kinds, IsolationOfEveryKind, ::testing::ValuesIn(every_kind()), case_name);

}  // namespace
