// tests/core/sanitizer_test.cpp: the sanitizer build checks the tracked heap itself.
//
// Tracked objects live in cmr's own blocks, not in malloc, so AddressSanitizer knows them
// only through cmr's manual poisoning: free slots (never used, or freed by a cycle) are
// poisoned, a slot is unpoisoned when make() hands it out. A read of an object after the
// cycle that freed it must then be reported, as ASan reports one for malloc'd memory.
// Without AddressSanitizer the tests skip.
#include <gtest/gtest.h>

#include <cstdint>

#include <cmr/cmr.hpp>

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

struct Plain {  // 16 bytes: exactly one slot of the smallest class
  std::uint64_t value = 42;
  std::uint64_t other = 0;
};
struct WithDestructor {
  ~WithDestructor() { value = 0; }
  std::uint64_t value = 42;
};

template <class T>
void read_after_free() {
  T* p;
  {
    cmr::Guard<T> g;
    p = cmr::make<T>(g);
  }
  if (!cmr::collect()) return;
  volatile std::uint64_t v = p->value;  // the cycle freed it: a use after free
  (void)v;
}

TEST(Sanitizer, AReadOfAFreedTrackedObjectIsReported) {
  if (!kAsan) GTEST_SKIP() << "not an AddressSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(read_after_free<Plain>(), "use-after-poison");
  EXPECT_DEATH(read_after_free<WithDestructor>(), "use-after-poison");
}

TEST(Sanitizer, AReadIntoASlotNeverHandedOutIsReported) {
  if (!kAsan) GTEST_SKIP() << "not an AddressSanitizer build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        cmr::Guard<Plain> g;
        Plain* p = cmr::make<Plain>(g);
        volatile std::uint64_t v = p[1].value;  // the next slot of its block: free
        (void)v;
      },
      "use-after-poison");
}

TEST(Sanitizer, ASlotHandedOutAgainIsUsableAndTheLiveOnesStayReadable) {
  // Poisoning must never cover what is in use: every object made reads back.
  for (int round = 0; round < 3; ++round) {
    std::uint64_t sum = 0;
    {
      cmr::Guard<Plain> g;
      for (int i = 0; i < 10000; ++i) sum += cmr::make<Plain>(g)->value;
    }
    EXPECT_EQ(sum, 420000u);
    ASSERT_TRUE(cmr::collect());
  }
}

}  // namespace
