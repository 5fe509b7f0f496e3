// tests/core/allocator_test.cpp: the tracked heap keeps its promises.
//
// Every tracked object lies inside the reserved region (the child needs only the region
// and the block table), whatever thread, size, alignment or reuse; the program's own
// allocations never do. Freed slots come back to the thread that allocates, so a steady
// churn reuses memory instead of carving more. (Snapshot isolation:
// tests/hostile/program_memory_test.cpp.)
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
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "heap/blocks.hpp"
#include "cmr/detail/heap_layout.hpp"
#include "cmr/detail/hooks.hpp"
#include "threads/registry.hpp"

namespace {

template <std::size_t Bytes, std::size_t Align = 16>
struct alignas(Align) Blob {
  unsigned char bytes[Bytes];
};

bool in_region(const void* p, std::size_t bytes = 1) {
  const auto r = cmr::detail::blocks::range();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return r.size != 0 && a >= r.base && a + bytes <= r.base + r.size;
}

template <class T>
bool aligned(const T* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

struct Typed {  // a destructor: its slots carry a TypeHeader
  ~Typed() { value = 0; }
  std::uint64_t value = 1;
};

// Allocates a mix of tracked objects, half kept in Roots, and checks where they landed.
void allocate_and_check(std::vector<cmr::Root<Blob<24>>>& keep, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    cmr::Guard<Blob<24>> g24;
    cmr::Guard<Blob<200, 64>> g200;
    cmr::Guard<Blob<9000>> g9000;
    cmr::Guard<Blob<100000>> glarge;
    cmr::Guard<Blob<64, 4096>> gpage;
    cmr::Guard<Blob<24>> arr;
    cmr::Guard<Typed> gtyped;
    auto* a = cmr::make<Blob<24>>(g24);
    auto* b = cmr::make<Blob<200, 64>>(g200);
    auto* c = i % 16 == 0 ? cmr::make<Blob<9000>>(g9000) : nullptr;
    auto* l = i % 64 == 0 ? cmr::make<Blob<100000>>(glarge) : nullptr;
    auto* p = i % 32 == 0 ? cmr::make<Blob<64, 4096>>(gpage) : nullptr;
    auto* d = cmr::make_array<Blob<24>>(arr, 1 + i % 40);
    auto* t = cmr::make<Typed>(gtyped);
    ASSERT_TRUE(aligned(a) && aligned(b) && aligned(d) && aligned(t));
    ASSERT_TRUE(in_region(a, 24) && in_region(b, 200) && in_region(d, 24 * (1 + i % 40)) &&
                in_region(t, sizeof(Typed)))
        << "a tracked object outside the region";
    if (c != nullptr) {
      ASSERT_TRUE(in_region(c, 9000) && aligned(c));
    }
    if (l != nullptr) {
      ASSERT_TRUE(in_region(l, 100000) && aligned(l));
    }
    if (p != nullptr) {
      ASSERT_TRUE(in_region(p, 64) && aligned(p));
    }
    ASSERT_EQ(t->value, 1u);
    void* own = std::malloc(24 + i % 300);  // the program's allocation, interleaved
    ASSERT_FALSE(in_region(own)) << "malloc() served from the tracked region";
    std::free(own);
    if (i % 2 == 0) keep[static_cast<std::size_t>(i) % keep.size()].store(a);
  }
}

TEST(Heap, ReportsTheConfiguredMalloc) {
  EXPECT_STREQ(cmr::stats().allocator, CMR_EXPECTED_ALLOCATOR);  // before init too
  cmr::init();
  EXPECT_STREQ(cmr::stats().allocator, CMR_EXPECTED_ALLOCATOR);
  EXPECT_NE(cmr::detail::blocks::range().size, 0u);
}

TEST(Heap, TrackedObjectsStayInTheRegionAcrossThreadsSizesAndReuse) {
  std::vector<cmr::Root<Blob<24>>> keep(500);
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&] { allocate_and_check(keep, 3000); });
    for (auto& t : threads) t.join();
    // Freed slots are reused by later rounds: they must still come from the region.
    ASSERT_TRUE(cmr::collect());
  }
  const cmr::Stats s = cmr::stats();
  EXPECT_GT(s.objects_freed, 10000u);
  for (auto& r : keep) {
    if (r.load() != nullptr) {
      EXPECT_TRUE(in_region(r.load()));
    }
    r.store(nullptr);
  }
}

// Garbage freed by a cycle comes back to the thread that allocates: a second round of the
// same allocations after a cycle lands in the slots of the first, and carves nothing new.
TEST(Heap, FreedSlotsComeBackToTheThreadThatAllocates) {
  ASSERT_TRUE(cmr::collect());
  constexpr int kObjects = 20000;
  std::set<const void*> first;
  {
    // All guarded until the one collect below: cycles that run meanwhile (the triggers
    // fire during this loop) cannot free them, so they take kObjects distinct slots.
    std::vector<cmr::Guard<Blob<48>>> guards(kObjects);
    for (auto& g : guards) first.insert(cmr::make<Blob<48>>(g));
  }
  ASSERT_EQ(first.size(), static_cast<std::size_t>(kObjects));
  ASSERT_TRUE(cmr::collect());
  const std::uint32_t carved = cmr::detail::blocks::carved();
  // Each object of the second round is garbage once the next replaces it in the guard, and
  // background cycles may free and hand back some of those during the round (more of them
  // on a loaded machine): a slot seen earlier in this round is reused too. What must stay
  // rare is a slot that is neither.
  int fresh = 0;
  {
    std::set<const void*> second;
    cmr::Guard<Blob<48>> g;
    for (int i = 0; i < kObjects; ++i) {
      const void* p = cmr::make<Blob<48>>(g);
      if (first.count(p) == 0 && !second.insert(p).second) continue;  // reused from this round
      if (first.count(p) == 0) ++fresh;
    }
  }
  EXPECT_LE(fresh, kObjects / 10) << "freed slots were not reused";
  EXPECT_EQ(cmr::detail::blocks::carved(), carved) << "the second round carved new blocks";
  ASSERT_TRUE(cmr::collect());
}

// A block changes hands three times: thread A fills it with objects that need a
// destructor and exits holding one (the block becomes adoptable), a cycle empties it (it
// goes to the pool), thread B takes it for plain objects and exits holding one (adoptable
// again, for the other kind). Thread C, allocating A's kind, must not adopt it: objects
// placed in a block of the wrong kind would be freed without their destructor.
std::atomic<int> g_counted_made{0}, g_counted_destroyed{0};
struct Counted {
  Counted() { g_counted_made.fetch_add(1); }
  ~Counted() { g_counted_destroyed.fetch_add(1); }
  std::uint64_t payload[2] = {};
};
static_assert(sizeof(Counted) + 16 == 32);  // typed slots of 32 bytes, as Blob<32>'s

TEST(Heap, AnEmptiedOrphanBlockIsNeverAdoptedAsTheKindItWasBefore) {
  ASSERT_TRUE(cmr::collect());
  cmr::Root<Counted> keep_a;
  std::thread([&] {
    cmr::Guard<Counted> g;
    keep_a.store(cmr::make<Counted>(g));
    for (int i = 0; i < 100; ++i) cmr::make<Counted>(g);
  }).join();
  keep_a.store(nullptr);
  ASSERT_TRUE(cmr::collect());  // A's block is empty now: back to the pool
  cmr::Root<Blob<32>> keep_b;
  std::thread([&] {
    cmr::Guard<Blob<32>> g;
    keep_b.store(cmr::make<Blob<32>>(g));
  }).join();
  const int made_before = g_counted_made.load(), destroyed_before = g_counted_destroyed.load();
  std::thread([&] {
    cmr::Guard<Counted> g;
    for (int i = 0; i < 1000; ++i) cmr::make<Counted>(g);
  }).join();
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_counted_destroyed.load() - destroyed_before, g_counted_made.load() - made_before)
      << "objects were freed without their destructor";
  keep_b.store(nullptr);
  ASSERT_TRUE(cmr::collect());
}

// The heap's lists, checked with no thread allocating: every block in exactly one place.
std::string audit_heap() {
  auto& s = cmr::detail::registry();
  std::lock_guard lock(s.mutex);
  return cmr::detail::blocks::audit(s.records.data(), s.records.size());
}

// A block the collector frees slots in again while its owner is folding it (the owner has
// just taken it off its returned queue): the fold may find it empty while the collector,
// seeing it off the queue, queues it once more. It must not be pooled then: a pooled block
// still on a returned queue would be folded, listed or pooled again by its old owner after
// another thread took it, and two threads would hand out the same slots. The drain also
// holds a second block with a free slot, so the owner goes on allocating there and leaves
// the first where the drain put it.
using Big = Blob<32768>;  // two slots per block: the block is full after two
cmr::Root<Big>* g_second;
std::uint32_t g_watched_block;
int g_collects_in_hook = 0;
void collect_while_folding() {
  // Only once the watched block is off the queue (the drain takes blocks in queue order).
  if (g_collects_in_hook != 0 ||
      cmr::detail::blocks::meta(g_watched_block).queued.load() != 0)
    return;
  ++g_collects_in_hook;
  g_second->store(nullptr);
  ASSERT_TRUE(cmr::collect());  // frees the block's other slot and queues it again
}

TEST(Heap, ABlockQueuedAgainWhileItsOwnerFoldsItIsNotPooled) {
  struct HookReset {
    ~HookReset() { cmr::detail::g_test_hooks = {}; }
  } reset;
  ASSERT_TRUE(cmr::collect());
  std::thread([] {
    cmr::Root<Big> a1, a2, c1, c2, d;
    g_second = &a2;
    cmr::Guard<Big> g;
    a1.store(cmr::make<Big>(g));
    a2.store(cmr::make<Big>(g));  // block A is full
    c1.store(cmr::make<Big>(g));
    c2.store(cmr::make<Big>(g));  // block C is full
    d.store(cmr::make<Big>(g));   // the current block, one slot left
    g.reset();
    g_watched_block = cmr::detail::blocks::block_of(a2.load());
    ASSERT_NE(g_watched_block, cmr::detail::blocks::block_of(c2.load()));
    a1.store(nullptr);
    c1.store(nullptr);
    ASSERT_TRUE(cmr::collect());  // A and C go on our returned queue
    g_collects_in_hook = 0;
    cmr::detail::g_test_hooks.heap_dequeued = &collect_while_folding;
    cmr::Guard<Big> h;
    cmr::make<Big>(h);  // the current block's last slot
    cmr::make<Big>(h);  // refill: the queue is drained, the hook frees a2 while A is folded
    cmr::detail::g_test_hooks.heap_dequeued = nullptr;
    EXPECT_EQ(g_collects_in_hook, 1) << "the refill never took block A off its queue";
    EXPECT_EQ(audit_heap(), "");
    c2.store(nullptr);
    d.store(nullptr);
  }).join();
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(audit_heap(), "");
}

// A block full at the cut whose every object is garbage is released whole (one flag, not a
// freed bit per slot): its objects are still destroyed exactly once, its slots come back
// to its owner, and an orphaned one goes to the pool.
TEST(Heap, AFullBlockOfGarbageIsReleasedWholeAndEveryObjectDestroyedOnce) {
  ASSERT_TRUE(cmr::collect());
  constexpr std::size_t kPerBlock =
      cmr::detail::slots_of(cmr::detail::Layout<Counted>::kClass);  // exactly one block
  for (const bool exits : {false, true}) {
    const int made_before = g_counted_made.load(), destroyed_before = g_counted_destroyed.load();
    std::uint32_t block = 0;
    auto fill = [&] {
      cmr::Guard<Counted> g;
      Counted* first = cmr::make<Counted>(g);
      block = cmr::detail::blocks::block_of(first);
      // Fill the rest of its block (earlier tests may have left it partly used).
      while (cmr::detail::blocks::block_of(cmr::make<Counted>(g)) == block) {
      }
    };
    if (exits) std::thread(fill).join(); else fill();
    ASSERT_TRUE(cmr::collect());
    EXPECT_EQ(g_counted_destroyed.load() - destroyed_before, g_counted_made.load() - made_before)
        << (exits ? "orphaned" : "owned") << " block: objects not destroyed exactly once";
    EXPECT_EQ(audit_heap(), "");
    if (exits) {
      EXPECT_EQ(cmr::detail::blocks::meta(block).state.load(), cmr::detail::kBlockFree)
          << "an emptied orphaned block was not pooled";
    } else {
      // The owner takes the block back when it next refills: no new block is carved.
      const std::uint32_t carved = cmr::detail::blocks::carved();
      {
        cmr::Guard<Counted> g;
        for (std::size_t i = 0; i < 2 * kPerBlock; ++i) cmr::make<Counted>(g);
      }
      EXPECT_EQ(cmr::detail::blocks::carved(), carved);
      ASSERT_TRUE(cmr::collect());  // those too, before the next round counts
    }
  }
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_counted_destroyed.load(), g_counted_made.load());
  EXPECT_EQ(audit_heap(), "");
}

// Empty blocks left in the pool give their pages back to the kernel once they stayed
// unused from one trim (every 64 cycles) to the next.
std::size_t resident_pages(const void* p, std::size_t bytes) {
  unsigned char vec[cmr::detail::kBlockBytes / 4096];
  if (::mincore(const_cast<void*>(p), bytes, vec) != 0) return ~std::size_t{0};
  std::size_t n = 0;
  for (std::size_t i = 0; i < bytes / 4096; ++i) n += vec[i] & 1;
  return n;
}

TEST(Heap, PooledBlocksGiveTheirPagesBackOnceTheyStayUnused) {
  ASSERT_TRUE(cmr::collect());
  std::set<std::uint32_t> blocks;
  std::thread([&] {  // fills 16 blocks with garbage, then leaves them to the pool
    cmr::Guard<Blob<4096>> g;
    while (blocks.size() < 16) blocks.insert(cmr::detail::blocks::block_of(cmr::make<Blob<4096>>(g)));
  }).join();
  ASSERT_TRUE(cmr::collect());  // frees them: the exited thread's blocks go to the pool
  std::size_t before = 0;
  for (std::uint32_t b : blocks) before += resident_pages(cmr::detail::blocks::block_base(b), cmr::detail::kBlockBytes);
  ASSERT_GT(before, 0u) << "the blocks were never touched: the test proves nothing";
  for (int i = 0; i < 130; ++i) ASSERT_TRUE(cmr::collect());  // two trims at least
  std::size_t after = 0, pooled = 0;
  for (std::uint32_t b : blocks) {
    if (cmr::detail::blocks::meta(b).state.load() != cmr::detail::kBlockFree) continue;
    ++pooled;  // (a block another thread took meanwhile is in use, not pooled)
    after += resident_pages(cmr::detail::blocks::block_base(b), cmr::detail::kBlockBytes);
  }
  EXPECT_GT(pooled, 0u);
  EXPECT_EQ(after, 0u) << "pooled blocks kept " << after << " resident pages";
  EXPECT_EQ(audit_heap(), "");
}

// A constructor that throws gives its slot back for the next make at once: a million
// failed constructions take no more memory than one.
struct Throws {
  Throws() { throw 1; }
  std::uint64_t payload[3];
};

TEST(Heap, ASlotGivenBackByAThrowingConstructorIsReusedAtOnce) {
  std::thread([] {
    cmr::Guard<Throws> g;
    const std::uint32_t carved = cmr::detail::blocks::carved();
    for (int i = 0; i < 100000; ++i) {
      try {
        cmr::make<Throws>(g);
      } catch (int) {
      }
    }
    EXPECT_LE(cmr::detail::blocks::carved(), carved + 1) << "given-back slots were not reused";
  }).join();
  EXPECT_EQ(audit_heap(), "");
}

// stats().live_objects is what was allocated less what was freed. A block's slots are
// handed back during reclaim, and a thread may reuse them at once: were their objects
// counted as freed only after the whole reclaim, that reuse would be counted twice (a
// bounded-memory test saw twice the garbage it had). So each block is counted before it
// is handed back: by the last destructor, every other block of this garbage is counted.
std::atomic<std::uint64_t> g_live_at_destructor{0};
void note_live() { g_live_at_destructor = cmr::stats().live_objects; }

TEST(Heap, FreedObjectsAreCountedBeforeTheirSlotsAreHandedBack) {
  ASSERT_TRUE(cmr::collect());
  const std::uint64_t baseline = cmr::stats().live_objects;
  constexpr int kGarbage = 3 * 2048;  // typed 32-byte slots: more than two blocks' worth
  {
    std::vector<cmr::Guard<Counted>> guards(kGarbage);
    for (auto& g : guards) cmr::make<Counted>(g);
  }
  cmr::detail::g_test_hooks.collector_destroyed_one = &note_live;
  ASSERT_TRUE(cmr::collect());
  cmr::detail::g_test_hooks.collector_destroyed_one = nullptr;
  EXPECT_LE(g_live_at_destructor.load(), baseline + kGarbage - 2048)
      << "blocks already handed back were not counted as freed";
  EXPECT_EQ(cmr::stats().live_objects, baseline);
}

}  // namespace
