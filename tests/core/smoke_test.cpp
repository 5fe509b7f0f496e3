#include <gtest/gtest.h>
#include <cmr/cmr.hpp>
#include <atomic>

namespace {
std::atomic<int> g_destroyed{0};
struct Node {
  explicit Node(int v) : value(v) {}
  ~Node() { g_destroyed.fetch_add(1); }
  int value;
  cmr::Atomic<Node> next;
};
}

TEST(Smoke, UnreachableObjectIsDestroyedAndReachableOneIsNot) {
  cmr::Root<Node> root;
  {
    cmr::Guard<Node> g;
    Node* a = cmr::make<Node>(g, 1);
    root.store(a);
    Node* b = cmr::make<Node>(g, 2);
    (void)b;
  }
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_destroyed.load(), 1);
  root.store(nullptr);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_destroyed.load(), 2);
}
