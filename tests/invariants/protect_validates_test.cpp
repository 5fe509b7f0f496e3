// tests/invariants/protect_validates_test.cpp: invariant 1, protect validates.
//
// Guard::protect loads the pointer, publishes it in the thread's slot, then loads the
// source again until both loads agree. A thread interrupted between its load and its
// publish must therefore never be handed an object that the snapshot found unreachable:
// a cycle is run at exactly that point (the protect_after_load hook), after the source
// was changed, and frees the old object.
#include <gtest/gtest.h>

#include "invariants/invariants.hpp"

namespace {

using cmr_invariants::HookReset;
using cmr_test::destroyed;
using cmr_test::Tracked;

cmr::Root<Tracked>* g_src;
Tracked* g_replacement;
int g_protect_hook_calls;

void unlink_and_collect() {
  if (g_protect_hook_calls++ != 0) return;
  // The value protect() just loaded is unlinked and becomes garbage before it is published.
  g_src->store(g_replacement);
  ASSERT_TRUE(cmr::collect());
}

TEST(ProtectValidates, APointerUnlinkedBeforeThePublishIsNeverReturned) {
  HookReset reset;
  cmr::Root<Tracked> src;
  g_src = &src;
  int old_id, new_id;
  {
    cmr::Guard<Tracked> g;
    Tracked* old_obj = cmr::make<Tracked>(g);
    old_id = old_obj->id;
    src.store(old_obj);
  }
  {
    cmr::Guard<Tracked> keep;  // keeps the replacement alive across the hook's cycle
    g_replacement = cmr::make<Tracked>(keep);
    new_id = g_replacement->id;
    g_protect_hook_calls = 0;
    cmr::detail::g_test_hooks.protect_after_load = &unlink_and_collect;
    cmr::Guard<Tracked> g;
    Tracked* p = g.protect(src);
    cmr::detail::g_test_hooks.protect_after_load = nullptr;
    // The first load saw the old object, which the hook's cycle freed: protect must have
    // noticed the change and returned the replacement.
    EXPECT_EQ(destroyed(old_id), 1);
    ASSERT_EQ(p, g_replacement);
    EXPECT_EQ(destroyed(p->id), 0);
    EXPECT_EQ(p->id, new_id);
  }
}

}  // namespace
