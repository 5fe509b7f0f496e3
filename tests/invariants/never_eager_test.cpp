// tests/invariants/never_eager_test.cpp: invariant 7, conservative, never eager.
//
// A word that looks like a pointer into a candidate keeps it alive, wherever in the object
// it points. A large object spans several blocks: a word pointing into a later block of
// the span must find the object through the span's first block. Here the only reference
// is a pointer 150 KiB into a 200 KiB object (its third block). (Random graphs of tagged
// and interior pointers: unreachable_set_test.cpp.)
#include <gtest/gtest.h>

#include <atomic>

#include "invariants/invariants.hpp"

namespace {

std::atomic<int> g_big_destroyed{0};
struct Big {
  unsigned char bytes[200 << 10] = {};
  ~Big() { g_big_destroyed.fetch_add(1); }
};

TEST(NeverEager, ALargeObjectHeldOnlyByADeepInteriorPointerSurvives) {
  g_big_destroyed = 0;
  cmr::Root<Big> deep;  // holds an interior pointer, 150 KiB into the object
  {
    cmr::Guard<Big> g;
    Big* big = cmr::make<Big>(g);
    big->bytes[150000] = 7;
    deep.store(reinterpret_cast<Big*>(&big->bytes[150000]));
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_big_destroyed.load(), 0) << "freed while a pointer into it was reachable";
  EXPECT_EQ(*reinterpret_cast<unsigned char*>(deep.load()), 7);
  deep.store(nullptr);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_big_destroyed.load(), 1) << "the test cannot observe a free";
}

}  // namespace
