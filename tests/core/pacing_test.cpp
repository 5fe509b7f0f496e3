// tests/core/pacing_test.cpp: allocation cannot outrun reclamation, and heap_limit holds.
//
// The collector is made slow on purpose (a test hook sleeps in every cycle, as a big scan
// would), while threads allocate garbage as fast as they can. Without back-pressure the
// tracked heap grows with the allocation rate times the run time; with it, it stays within
// a few triggers. Options::heap_limit: allocation waits for cycles and then fails (try_make
// null, make std::bad_alloc), and succeeds once a cycle frees room.
#include <gtest/gtest.h>

#include <cmr/cmr.hpp>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kTrigger = std::size_t{1} << 20;
constexpr std::size_t kLimit = std::size_t{48} << 20;

struct Blob {
  unsigned char bytes[240];
};

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    cmr::init({.trigger_bytes = kTrigger, .diagnostics = nullptr, .heap_limit = kLimit,
               .limit_wait = 300ms});
    // Every cycle takes at least 20 ms after the threads are released: a slow scanner.
    cmr::detail::g_test_hooks.collector_released = [] { std::this_thread::sleep_for(20ms); };
  }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new Environment);

TEST(Pacing, GarbageAllocatedFasterThanCyclesRunStaysBounded) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> made{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      cmr::Guard<Blob> g;
      cmr::make<Blob>(g);
      started.fetch_add(1);
      std::uint64_t n = 1;
      while (!stop.load(std::memory_order_relaxed)) {
        cmr::make<Blob>(g);
        ++n;
      }
      made += n;
    });
  while (started.load() < 4) std::this_thread::sleep_for(1ms);
  // 2 s at least, and until the collector fell behind once (at most 60 s): a loaded
  // machine may give the allocating threads too little time to outrun it sooner.
  const std::uint64_t paced_before = cmr::stats().paced_waits;
  std::uint64_t peak = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + 2s;
  while (std::chrono::steady_clock::now() < end ||
         (cmr::stats().paced_waits == paced_before && std::chrono::steady_clock::now() < start + 60s)) {
    peak = std::max<std::uint64_t>(peak, cmr::stats().live_bytes);
    std::this_thread::sleep_for(2ms);
  }
  stop = true;
  for (auto& t : threads) t.join();
  const cmr::Stats s = cmr::stats();
  std::printf("[ stats    ] %llu made, %llu cycles, %llu paced waits, peak live %llu KiB\n",
              static_cast<unsigned long long>(made.load()),
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.paced_waits),
              static_cast<unsigned long long>(peak >> 10));
  EXPECT_GT(s.paced_waits, 0u) << "the collector never fell behind: the test proves nothing";
  // Pacing holds allocation near kPaceFactor (4) triggers per cycle, plus each thread's
  // unflushed batch and what was allocated during a cycle; well under the heap_limit.
  EXPECT_LE(peak, 16 * kTrigger) << "allocation outran reclamation";
  EXPECT_EQ(s.limit_failures, 0u);
}

TEST(HeapLimit, AllocationWaitsThenFailsAtTheLimitAndSucceedsOnceACycleFreesRoom) {
  ASSERT_TRUE(cmr::collect());
  std::vector<cmr::Root<Blob>> live(kLimit / sizeof(Blob) + 1000);
  std::size_t kept = 0;
  {
    cmr::Guard<Blob> g;
    for (; kept < live.size(); ++kept) {
      Blob* b = cmr::try_make(g, Blob{});
      if (b == nullptr) break;
      live[kept].store(b);
    }
    // The refusal without waiting may come up to one allocation batch (64 KiB) early; a
    // waiting allocation lets a cycle settle the count first.
    for (; kept < live.size(); ++kept) {
      Blob* b = cmr::try_make_for(g, 200ms, Blob{});
      if (b == nullptr) break;
      live[kept].store(b);
    }
  }
  const cmr::Stats at_limit = cmr::stats();
  ASSERT_LT(kept, live.size()) << "heap_limit was never enforced";
  EXPECT_GT(kept * sizeof(Blob), kLimit * 8 / 10) << "refused far below the limit";
  EXPECT_GE(at_limit.limit_failures, 1u);

  // Everything is live: waiting does not help, and the failure comes after the wait.
  cmr::Guard<Blob> g;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(cmr::try_make_for(g, 100ms, Blob{}), nullptr);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_THROW(cmr::make<Blob>(g), std::bad_alloc);

  // Dropping half makes room once a cycle runs: the waiting allocation gets it.
  for (std::size_t i = 0; i < kept; i += 2) live[i].store(nullptr);
  EXPECT_NE(cmr::try_make_for(g, 5s, Blob{}), nullptr);
  for (auto& r : live) r.store(nullptr);
  ASSERT_TRUE(cmr::collect());
}

}  // namespace
