// tests/invariants/unreachable_set_test.cpp: invariants 6 and 7 together, on random graphs.
//
// Random object graphs with tagged and interior pointers, rooted by Roots and by guards
// held in several threads. After collect(), the set of destroyed objects must equal
// exactly the set a reference breadth-first search finds unreachable: nothing reachable is
// freed (7), everything unreachable is, once (6); the survivors carry over unchanged, and
// once every root is dropped the rest is freed, each object once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

#include "invariants/invariants.hpp"

namespace {

constexpr int kWords = 6;
std::vector<std::atomic<int>>* g_destroyed;

struct Node {
  explicit Node(int i) : id(i) {}
  ~Node() { (*g_destroyed)[id].fetch_add(1); }
  int id;
  // Scanned conservatively: edges are stored as plain, tagged or interior words.
  std::uintptr_t words[kWords] = {};
};

std::uintptr_t encode(Node* target, std::mt19937_64& rng) {
  auto base = reinterpret_cast<std::uintptr_t>(target);
  switch (rng() % 4) {
    case 0: return base;                                   // plain
    case 1: return base | (1 + rng() % 3);                 // Harris-style low-bit tag
    case 2: return base + 8 * (1 + rng() % kWords);        // interior: a field's address
    default: return base + sizeof(Node) - 1;               // last byte
  }
}

void run_model(std::uint64_t seed, int objects, int edges_per_node, int roots, int threads,
               int guards_per_thread) {
  std::mt19937_64 rng(seed);
  std::vector<std::atomic<int>> destroyed(objects);
  g_destroyed = &destroyed;

  std::vector<cmr::Guard<Node>> birth(objects);
  std::vector<Node*> nodes(objects);
  for (int i = 0; i < objects; ++i) nodes[i] = cmr::make<Node>(birth[i], i);

  std::vector<std::vector<int>> adj(objects);
  for (int i = 0; i < objects; ++i) {
    for (int k = 0; k < kWords; ++k) {
      if (k < edges_per_node && rng() % 3 != 0) {
        int j = static_cast<int>(rng() % objects);
        nodes[i]->words[k] = encode(nodes[j], rng);
        adj[i].push_back(j);
      } else {
        nodes[i]->words[k] = rng() & 0xffff'ffff;  // junk that points nowhere
      }
    }
  }

  std::vector<std::unique_ptr<cmr::Root<Node>>> root_slots;
  std::vector<int> seeds;
  for (int r = 0; r < roots; ++r) {
    int j = static_cast<int>(rng() % objects);
    root_slots.push_back(std::make_unique<cmr::Root<Node>>(nodes[j]));
    seeds.push_back(j);
  }

  // Guards held by other threads, published with set() while `birth` still protects.
  std::atomic<int> ready{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> holders;
  std::vector<std::vector<int>> held(threads);
  for (int t = 0; t < threads; ++t)
    for (int g = 0; g < guards_per_thread; ++g) held[t].push_back(static_cast<int>(rng() % objects));
  for (int t = 0; t < threads; ++t) {
    seeds.insert(seeds.end(), held[t].begin(), held[t].end());
    holders.emplace_back([&, t] {
      std::vector<cmr::Guard<Node>> guards(held[t].size());
      for (std::size_t g = 0; g < guards.size(); ++g) guards[g].set(nodes[held[t][g]]);
      ready.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (ready.load() != threads) std::this_thread::yield();
  birth.clear();

  std::vector<char> reachable(objects, 0);
  std::vector<int> work(seeds);
  for (int s : seeds) reachable[s] = 1;
  while (!work.empty()) {
    int i = work.back();
    work.pop_back();
    for (int j : adj[i])
      if (!reachable[j]) {
        reachable[j] = 1;
        work.push_back(j);
      }
  }

  ASSERT_TRUE(cmr::collect());
  int wrong_freed = 0, wrong_kept = 0, live = 0;
  for (int i = 0; i < objects; ++i) {
    if (reachable[i]) {
      ++live;
      if (destroyed[i].load() != 0) ++wrong_freed;
    } else if (destroyed[i].load() != 1) {
      ++wrong_kept;
    }
  }
  EXPECT_EQ(wrong_freed, 0) << "reachable objects were destroyed (seed " << seed << ")";
  EXPECT_EQ(wrong_kept, 0) << "unreachable objects survived or died twice (seed " << seed << ")";
  EXPECT_GT(live, 0);
  EXPECT_LT(live, objects);

  // The survivors carry over to the next cycle unchanged.
  ASSERT_TRUE(cmr::collect());
  for (int i = 0; i < objects; ++i)
    ASSERT_EQ(destroyed[i].load(), reachable[i] ? 0 : 1) << "object " << i;

  // Dropping every root frees the rest, each exactly once.
  release = true;
  for (auto& h : holders) h.join();
  root_slots.clear();
  ASSERT_TRUE(cmr::collect());
  for (int i = 0; i < objects; ++i) ASSERT_EQ(destroyed[i].load(), 1) << "object " << i;
  g_destroyed = nullptr;
}

TEST(Model, DestroyedSetEqualsUnreachableSetOnSparseGraphs) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) run_model(seed, 4000, 1, 8, 3, 20);
}

TEST(Model, DestroyedSetEqualsUnreachableSetOnDenseGraphs) {
  for (std::uint64_t seed = 10; seed <= 12; ++seed) run_model(seed, 3000, 3, 3, 2, 5);
}

TEST(Model, ChainsLongerThanAnyStackAreMarkedIteratively) {
  run_model(99, 20000, 1, 1, 1, 1);
}

}  // namespace
