// tests/core/allocator_test.cpp: the backing allocator keeps its promises.
//
// With a region-backed allocator (jemalloc, mimalloc) every tracked block lies inside the
// reserved region and the program's own allocations never do, across threads, sizes,
// alignments and reuse after cycles: the pause work (copying only the region into the
// scanner) and the scanner's dense index both rely on it. With system malloc there is no
// region. The scanner must use its O(1) index for a region-backed heap.
#include <gtest/gtest.h>

#include <cmr/cmr.hpp>

#include <sys/mman.h>

#include <chrono>
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
