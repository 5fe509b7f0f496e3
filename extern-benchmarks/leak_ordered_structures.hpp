// extern-benchmarks/leak_ordered_structures.hpp: a lock-free skip list and a Natarajan-Mittal
// tree that never free a node: the `leak` implementation of the skiplist and tree
// workloads, i.e. what those algorithms cost with reclamation costing nothing.
//
// Never freeing is what makes them correct without any reclamation scheme: a pointer read
// from the structure always names readable memory with its key unchanged, so traversals
// need no protection or validation, and a range scan may walk through unlinked nodes.
// Nodes come from counted_new / a counted block, so the harness sees the leak grow.
//
// Keys are std::uint64_t below 2^64 - 3 (the harness's are below 2^32): the top values are
// the sentinels.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>

#include "harness/counting.hpp"

namespace cmr::bench::leak {

// The lock-free skip list of Herlihy and Shavit ("The Art of Multiprocessor Programming",
// section 14.4; after Fraser, "Practical lock-freedom", 2004), with a node's successor CAS
// checked against its mark before each upper-level link (Fraser's fix for a node erased
// while it is being linked).
//
// Invariants:
//  - Level 0 is a sorted list from head_ to tail_ of every node linked and not yet
//    unlinked; level l > 0 is a sorted sublist of it. Every link, an unlinked node's
//    included, points to a node with a greater key, so keys strictly increase along any
//    chain of next(0) a scan may follow.
//  - The low bit of next(l) is the node's mark at level l. Marks are set top-down; the mark
//    at level 0 is the logical deletion (erase linearizes on it) and a marked next(l)
//    never changes again. Only marked nodes are unlinked.
//  - A node is in the set iff it is reachable at level 0 and unmarked at level 0.
// Progress: insert and erase are lock-free; contains and for_each_in are wait-free for a
// bounded number of concurrent inserts.
class SkipList {
 public:
  static constexpr int kMaxLevel = 24;  // p = 1/2: enough for ~16 M keys

  SkipList() : head_(make_node(0, kMaxLevel)), tail_(make_node(kTailKey, kMaxLevel)) {
    // relaxed: the list is not shared until construction completes.
    for (int l = 0; l < kMaxLevel; ++l) head_->next(l).store(word(tail_), std::memory_order_relaxed);
  }
  SkipList(const SkipList&) = delete;
  SkipList& operator=(const SkipList&) = delete;
  ~SkipList() = default;  // leaks, including the live nodes: the run ends with the process

  bool insert(std::uint64_t key) {
    Node* preds[kMaxLevel];
    Node* succs[kMaxLevel];
    const int top = random_level();
    Node* fresh = nullptr;
    for (;;) {
      if (find(key, preds, succs)) {
        if (fresh != nullptr) free_unpublished(fresh);
        return false;
      }
      if (fresh == nullptr) fresh = make_node(key, top);
      // relaxed: fresh is private until the level-0 CAS below publishes it.
      for (int l = 0; l < top; ++l) fresh->next(l).store(word(succs[l]), std::memory_order_relaxed);
      std::uintptr_t expected = word(succs[0]);
      // (K1) release: publishes fresh's key and links; pairs with the traversals'
      // acquire loads (K2). This CAS linearizes a successful insert.
      if (!preds[0]->next(0).compare_exchange_strong(expected, word(fresh), std::memory_order_release,
                                                     std::memory_order_relaxed))
        continue;
      for (int l = 1; l < top; ++l) {
        for (;;) {
          std::uintptr_t mine = fresh->next(l).load(std::memory_order_acquire);
          if (marked(mine)) return true;  // erased meanwhile: stop building its tower
          // Point fresh at the current successor first; fails only when erase marked it.
          if (mine != word(succs[l]) &&
              !fresh->next(l).compare_exchange_strong(mine, word(succs[l]), std::memory_order_release,
                                                      std::memory_order_relaxed))
            return true;
          expected = word(succs[l]);
          // (K1) release, as at level 0.
          if (preds[l]->next(l).compare_exchange_strong(expected, word(fresh), std::memory_order_release,
                                                        std::memory_order_relaxed))
            break;
          find(key, preds, succs);  // the neighbourhood changed: look again
          if (succs[0] != fresh) return true;  // fresh is gone from level 0: erased
        }
      }
      return true;
    }
  }

  bool erase(const std::uint64_t& key) {
    Node* preds[kMaxLevel];
    Node* succs[kMaxLevel];
    if (!find(key, preds, succs)) return false;
    Node* victim = succs[0];
    for (int l = victim->levels - 1; l >= 1; --l) {
      // (K3) release: marks the upper levels top-down; their value is frozen from here on.
      victim->next(l).fetch_or(kMark, std::memory_order_release);
    }
    std::uintptr_t next = victim->next(0).load(std::memory_order_acquire);
    for (;;) {
      if (marked(next)) return false;  // another erase won
      // (K4) acq_rel: the logical deletion; it linearizes a successful erase.
      if (victim->next(0).compare_exchange_weak(next, next | kMark, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
        find(key, preds, succs);  // unlink it at every level
        return true;
      }
    }
  }

  bool contains(const std::uint64_t& key) const {
    const Node* n = lower_bound(key);
    return n->key == key;
  }

  // f(key) for each key in [lo, hi) that is unmarked when passed, in increasing order.
  template <class F>
  void for_each_in(const std::uint64_t& lo, const std::uint64_t& hi, F&& f) const {
    const Node* n = lower_bound(lo);
    while (n->key < hi) {
      // (K2) acquire: pairs with (K1) and the unlinking CASes.
      std::uintptr_t next = n->next(0).load(std::memory_order_acquire);
      if (!marked(next)) f(n->key);
      n = node(next);
    }
  }

 private:
  static constexpr std::uintptr_t kMark = 1;
  static constexpr std::uint64_t kTailKey = std::numeric_limits<std::uint64_t>::max();

  using Link = std::atomic<std::uintptr_t>;

  // A header followed, in the same block, by `levels` links (its tower).
  struct Node {
    std::uint64_t key;
    int levels;
    Link& next(int level) { return reinterpret_cast<Link*>(this + 1)[level]; }
    const Link& next(int level) const { return reinterpret_cast<const Link*>(this + 1)[level]; }
  };
  static_assert(sizeof(Node) % alignof(Link) == 0);

  static Node* make_node(std::uint64_t key, int levels) {
    void* raw = ::operator new(sizeof(Node) + sizeof(Link) * static_cast<std::size_t>(levels));
    AllocationCounter::on_allocate();
    Node* n = new (raw) Node{key, levels};
    for (int l = 0; l < levels; ++l) new (&n->next(l)) Link(0);
    return n;
  }

  static void free_unpublished(Node* n) {
    ::operator delete(n);
    AllocationCounter::on_free();
  }
  static bool marked(std::uintptr_t w) { return (w & kMark) != 0; }
  static Node* node(std::uintptr_t w) { return reinterpret_cast<Node*>(w & ~kMark); }
  static std::uintptr_t word(Node* n) { return reinterpret_cast<std::uintptr_t>(n); }

  static int random_level() {
    // xorshift64, one per thread; level l+1 with probability 2^-(l+1).
    thread_local std::uint64_t state =
        0x9e3779b97f4a7c15ULL ^ reinterpret_cast<std::uintptr_t>(&state);
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return 1 + std::min(std::countr_zero(state | (std::uint64_t{1} << (kMaxLevel - 1))),
                        kMaxLevel - 1);
  }

  // preds[l] / succs[l]: the neighbours of key at every level (pred.key < key <= succ.key),
  // with the marked nodes met on the way unlinked. True when succs[0] holds key, unmarked.
  bool find(std::uint64_t key, Node** preds, Node** succs) {
  retry:
    Node* pred = head_;
    for (int l = kMaxLevel - 1; l >= 0; --l) {
      Node* cur = node(pred->next(l).load(std::memory_order_acquire));  // (K2)
      for (;;) {
        std::uintptr_t succ = cur->next(l).load(std::memory_order_acquire);  // (K2)
        while (marked(succ)) {
          std::uintptr_t expected = word(cur);
          // (K5) release: unlinks a marked node at level l; pairs with (K2).
          if (!pred->next(l).compare_exchange_strong(expected, succ & ~kMark, std::memory_order_release,
                                                     std::memory_order_relaxed))
            goto retry;  // pred changed or got marked: start over
          cur = node(succ);
          succ = cur->next(l).load(std::memory_order_acquire);
        }
        if (cur->key < key) {
          pred = cur;
          cur = node(succ);
        } else {
          break;
        }
      }
      preds[l] = pred;
      succs[l] = cur;
    }
    return succs[0]->key == key;
  }

  // The first node with key >= `key` that was unmarked when reached at level 0 (tail_ if
  // none); read-only: walks through marked nodes without unlinking them.
  const Node* lower_bound(std::uint64_t key) const {
    const Node* pred = head_;
    const Node* cur = nullptr;
    for (int l = kMaxLevel - 1; l >= 0; --l) {
      cur = node(pred->next(l).load(std::memory_order_acquire));  // (K2)
      for (;;) {
        std::uintptr_t succ = cur->next(l).load(std::memory_order_acquire);  // (K2)
        while (marked(succ)) {
          cur = node(succ);
          succ = cur->next(l).load(std::memory_order_acquire);
        }
        if (cur->key < key) {
          pred = cur;
          cur = node(succ);
        } else {
          break;
        }
      }
    }
    return cur;
  }

  Node* const head_;
  Node* const tail_;
};

// The lock-free external binary search tree of Natarajan and Mittal, "Fast concurrent
// lock-free binary search trees", PPoPP 2014: keys in the leaves, internal nodes route
// (left: key < node.key, right: key >= node.key). An erase flags the edge to its leaf
// (injection, the linearization point), tags the sibling edge so that it cannot change,
// and swings the ancestor's edge from the successor to the sibling, cutting out the
// parent, the leaf and any tagged chain between ancestor and parent (cleanup); anyone who
// meets a flagged or tagged edge in its way helps.
//
// Invariants:
//  - Sentinels: root_ (key kInf2) -> left s_ (key kInf1) -> left leaf kInf0, right leaf
//    kInf1; root_'s right is leaf kInf2. Real keys live in s_'s left subtree.
//  - Every internal node has two children; leaves have none (left == 0).
//  - An edge's flag (bit 0) means its target leaf is being erased; its tag (bit 1) means the
//    edge is frozen because its parent is being cut out. A flagged or tagged edge is never
//    changed by a CAS again (bits are only ever set); an internal node is cut out only
//    after both of its edges are flagged or tagged.
// Progress: insert and erase are lock-free; contains is wait-free for a bounded number of
// concurrent inserts.
class NmTree {
 public:
  NmTree() {
    Node* leaf0 = make_node(kInf0, 0, 0);
    Node* leaf1 = make_node(kInf1, 0, 0);
    Node* leaf2 = make_node(kInf2, 0, 0);
    s_ = make_node(kInf1, word(leaf0), word(leaf1));
    root_ = make_node(kInf2, word(s_), word(leaf2));
  }
  NmTree(const NmTree&) = delete;
  NmTree& operator=(const NmTree&) = delete;
  ~NmTree() = default;  // leaks, see SkipList

  bool insert(std::uint64_t key) {
    Node* fresh_leaf = nullptr;
    Node* fresh_internal = nullptr;
    for (;;) {
      Seek sr = seek(key);
      Node* leaf = sr.leaf;
      if (leaf->key == key) {
        if ((sr.leaf_edge & kFlag) != 0) {  // its erase has linearized: finish it, look again
          cleanup(key, sr);
          continue;
        }
        if (fresh_leaf != nullptr) {  // never published
          counted_delete(fresh_leaf);
          counted_delete(fresh_internal);
        }
        return false;
      }
      std::atomic<std::uintptr_t>& edge = child_edge(sr.parent, key);
      if (fresh_leaf == nullptr) {
        fresh_leaf = make_node(key, 0, 0);
        fresh_internal = make_node(0, 0, 0);
      }
      // relaxed: private until the CAS publishes it.
      fresh_internal->key = std::max(key, leaf->key);
      fresh_internal->left.store(key < leaf->key ? word(fresh_leaf) : word(leaf), std::memory_order_relaxed);
      fresh_internal->right.store(key < leaf->key ? word(leaf) : word(fresh_leaf), std::memory_order_relaxed);
      std::uintptr_t expected = word(leaf);  // clean: no flag, no tag
      // (T1) release: publishes the new nodes; pairs with the traversals' acquire (T2).
      if (edge.compare_exchange_strong(expected, word(fresh_internal), std::memory_order_release,
                                       std::memory_order_acquire))
        return true;
      // Blocked by an erase on this edge: help it before retrying.
      if (node(expected) == leaf && (expected & (kFlag | kTag)) != 0) cleanup(key, sr);
    }
  }

  bool erase(const std::uint64_t& key) {
    bool injected = false;
    Node* leaf = nullptr;
    for (;;) {
      Seek sr = seek(key);
      if (!injected) {
        leaf = sr.leaf;
        if (leaf->key != key) return false;
        std::atomic<std::uintptr_t>& edge = child_edge(sr.parent, key);
        std::uintptr_t expected = word(leaf);
        // (T3) acq_rel: injection, the logical deletion that linearizes the erase.
        if (edge.compare_exchange_strong(expected, word(leaf) | kFlag, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
          injected = true;
          if (cleanup(key, sr)) return true;
        } else if (node(expected) == leaf && (expected & (kFlag | kTag)) != 0) {
          cleanup(key, sr);  // someone else's erase is in the way: help it
        }
      } else {
        if (sr.leaf != leaf) return true;  // a helper finished our cleanup
        if (cleanup(key, sr)) return true;
      }
    }
  }

  bool contains(const std::uint64_t& key) const {
    std::uintptr_t edge = s_->left.load(std::memory_order_acquire);  // (T2)
    const Node* n = node(edge);
    for (;;) {
      std::uintptr_t next = (key < n->key ? n->left : n->right).load(std::memory_order_acquire);
      if (node(next) == nullptr) break;  // n is a leaf
      edge = next;
      n = node(next);
    }
    // A flagged edge: the leaf's erase has linearized.
    return n->key == key && (edge & kFlag) == 0;
  }

 private:
  static constexpr std::uintptr_t kFlag = 1;
  static constexpr std::uintptr_t kTag = 2;
  static constexpr std::uint64_t kInf2 = std::numeric_limits<std::uint64_t>::max();
  static constexpr std::uint64_t kInf1 = kInf2 - 1;
  static constexpr std::uint64_t kInf0 = kInf2 - 2;

  struct Node {
    Node(std::uint64_t k, std::uintptr_t l, std::uintptr_t r) : key(k), left(l), right(r) {}
    std::uint64_t key;
    std::atomic<std::uintptr_t> left;
    std::atomic<std::uintptr_t> right;
  };

  struct Seek {
    Node* ancestor;   // the last node whose edge to successor was untagged
    Node* successor;
    Node* parent;
    Node* leaf;
    std::uintptr_t leaf_edge;  // the edge parent -> leaf as read
  };

  static Node* make_node(std::uint64_t key, std::uintptr_t left, std::uintptr_t right) {
    return counted_new<Node>(key, left, right);
  }
  static Node* node(std::uintptr_t w) { return reinterpret_cast<Node*>(w & ~(kFlag | kTag)); }
  static std::uintptr_t word(Node* n) { return reinterpret_cast<std::uintptr_t>(n); }
  static std::atomic<std::uintptr_t>& child_edge(Node* parent, std::uint64_t key) {
    return key < parent->key ? parent->left : parent->right;
  }

  Seek seek(std::uint64_t key) const {
    std::uintptr_t parent_edge = s_->left.load(std::memory_order_acquire);  // (T2)
    Seek sr{root_, s_, s_, node(parent_edge), parent_edge};
    std::uintptr_t current_edge = child_edge(sr.leaf, key).load(std::memory_order_acquire);
    Node* current = node(current_edge);
    while (current != nullptr) {
      // The edge parent -> leaf is untagged: it is the one a cleanup may swing.
      if ((parent_edge & kTag) == 0) {
        sr.ancestor = sr.parent;
        sr.successor = sr.leaf;
      }
      sr.parent = sr.leaf;
      sr.leaf = current;
      parent_edge = current_edge;
      current_edge = child_edge(current, key).load(std::memory_order_acquire);  // (T2)
      current = node(current_edge);
    }
    sr.leaf_edge = parent_edge;
    return sr;
  }

  // Cuts out sr.parent and the flagged leaf below it (or, when the key's own leaf is not
  // the flagged one, its flagged sibling); true when this call's CAS did it.
  bool cleanup(std::uint64_t key, const Seek& sr) {
    std::atomic<std::uintptr_t>& successor_edge = child_edge(sr.ancestor, key);
    std::atomic<std::uintptr_t>* child = &sr.parent->left;
    std::atomic<std::uintptr_t>* sibling = &sr.parent->right;
    if (!(key < sr.parent->key)) std::swap(child, sibling);
    if ((child->load(std::memory_order_acquire) & kFlag) == 0) {
      sibling = child;  // the flagged leaf is the other one: keep the key's side
    }
    // (T4) acq_rel: freezes the edge that survives, so that it moves up intact.
    sibling->fetch_or(kTag, std::memory_order_acq_rel);
    const std::uintptr_t moved = sibling->load(std::memory_order_acquire);
    std::uintptr_t expected = word(sr.successor);
    // (T5) release: the physical removal; keeps the moved edge's flag, drops its tag.
    return successor_edge.compare_exchange_strong(expected, moved & ~kTag, std::memory_order_release,
                                                  std::memory_order_relaxed);
  }

  Node* root_;
  Node* s_;
};

}  // namespace cmr::bench::leak
