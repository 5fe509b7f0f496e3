// tests/invariants/born_protected_test.cpp: invariant 2, born protected.
//
// make() publishes the new object in the guard before it records the allocation as a
// collection candidate, so at every interruption point the object is either not a
// candidate or guarded: a cycle is run between the publish and the record (the
// make_after_publish hook). What a constructor makes and stores in the object under
// construction is reachable too, because the object's zeroed memory is scanned from the
// moment make() starts; and a constructor that throws gives the memory back without a
// destructor, its children becoming garbage with it.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "invariants/invariants.hpp"

namespace {

using cmr_invariants::HookReset;
using cmr_test::destroyed;
using cmr_test::Tracked;

void collect_in_make() { ASSERT_TRUE(cmr::collect()); }

TEST(BornProtected, AnObjectIsGuardedBeforeItBecomesACandidate) {
  HookReset reset;
  cmr::detail::g_test_hooks.make_after_publish = &collect_in_make;
  int id;
  {
    cmr::Guard<Tracked> g;
    Tracked* t = cmr::make<Tracked>(g);
    cmr::detail::g_test_hooks.make_after_publish = nullptr;
    id = t->id;
    ASSERT_TRUE(cmr::collect());  // now a candidate, and guarded
    EXPECT_EQ(destroyed(id), 0);
  }
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(destroyed(id), 1);
}

// Any cycle that lands while the constructor runs must keep what it stored.
struct Parent {
  cmr::Atomic<Tracked> kids[64];
  Parent() {
    for (auto& k : kids) {
      cmr::Guard<Tracked> g;
      k.store(cmr::make<Tracked>(g));
    }
    EXPECT_TRUE(cmr::collect());
  }
};

TEST(BornProtected, ObjectsMadeInAConstructorSurviveACycleDuringConstruction) {
  cmr::Guard<Parent> gp;
  Parent* p = cmr::make<Parent>(gp);
  for (int round = 0; round < 2; ++round) {
    int dead = 0;
    for (auto& k : p->kids)
      if (destroyed(k.load()->id) != 0) ++dead;  // reads the child: ASan sees a use after free
    EXPECT_EQ(dead, 0) << "children freed while the parent under construction held them";
    ASSERT_TRUE(cmr::collect());
  }
}

std::atomic<int> g_half_built_destroyed{0};
struct HalfBuilt {
  cmr::Atomic<Tracked> kid;
  explicit HalfBuilt(int* kid_id) {
    {
      cmr::Guard<Tracked> g;
      Tracked* t = cmr::make<Tracked>(g);
      *kid_id = t->id;
      kid.store(t);
    }
    EXPECT_TRUE(cmr::collect());
    EXPECT_EQ(destroyed(*kid_id), 0) << "freed while the object under construction held it";
    throw std::runtime_error("constructor fails");
  }
  ~HalfBuilt() { g_half_built_destroyed.fetch_add(1); }
};

TEST(BornProtected, AConstructorThatThrowsGivesItsMemoryBackWithoutADestructor) {
  ASSERT_TRUE(cmr::collect());
  const auto before = cmr::stats();
  int kid_id = -1;
  {
    cmr::Guard<HalfBuilt> g;
    EXPECT_THROW(cmr::make<HalfBuilt>(g, &kid_id), std::runtime_error);
    EXPECT_EQ(g.get(), nullptr) << "the guard still protects the object that was never built";
  }
  ASSERT_TRUE(cmr::collect());
  ASSERT_GE(kid_id, 0);
  EXPECT_EQ(destroyed(kid_id), 1);
  EXPECT_EQ(g_half_built_destroyed.load(), 0) << "a destructor ran on an object never built";
  EXPECT_EQ(cmr::stats().live_objects, before.live_objects);
}

}  // namespace
