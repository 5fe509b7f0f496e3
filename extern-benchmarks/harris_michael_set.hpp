// extern-benchmarks/harris_michael_set.hpp: a fixed-size hash set of Harris-Michael ordered
// lists, for the schemes whose nodes stay readable for the whole operation: leak-everything
// (nothing is ever freed) and RCU (the caller holds rcu_read_lock around every operation and
// the unlinking thread frees through call_rcu). One bucket is the `list` workload.
//
// Algorithm: Harris, "A pragmatic implementation of non-blocking linked-lists", DISC 2001,
// in Michael's form ("High performance dynamic lock-free hash tables and list-based sets",
// SPAA 2002): erase marks the victim's next pointer (logical delete), then unlinks it; a
// traversal that meets a marked node unlinks it too. Exactly one thread's unlinking CAS
// succeeds, and that thread retires the node. Unlike the hazard-pointer version there is no
// re-validation of `prev` after each step: a node is never freed while a reader can hold it,
// which is exactly the cost difference the benchmark means to show. contains() is the
// read-only traversal that walks through marked nodes without helping.
//
// Progress: insert and erase are lock-free, contains is wait-free (bounded by list length).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cmr::bench {

// Reclaim: struct with
//   using Hook = ...;                      // extra per-node state (e.g. an rcu_head)
//   template <class Node> static Node* allocate(std::uint64_t key);
//   template <class Node> static void free_unpublished(Node*);  // never shared
//   template <class Node> static void retire(Node*);            // unlinked, maybe in use
//   template <class Node> static void destroy(Node*);           // at destruction, unshared
template <class Reclaim>
class HarrisMichaelSet {
 public:
  struct Node {
    explicit Node(std::uint64_t k) : key(k) {}
    std::atomic<std::uintptr_t> next{0};  // successor | kMark
    const std::uint64_t key;
    [[no_unique_address]] typename Reclaim::Hook hook{};
  };

  // `buckets` must be a power of two.
  explicit HarrisMichaelSet(std::size_t buckets)
      : mask_(buckets - 1), heads_(std::make_unique<std::atomic<std::uintptr_t>[]>(buckets)) {
    // relaxed: the set is not shared before its construction completes.
    for (std::size_t i = 0; i < buckets; ++i) heads_[i].store(0, std::memory_order_relaxed);
  }
  HarrisMichaelSet(const HarrisMichaelSet&) = delete;
  HarrisMichaelSet& operator=(const HarrisMichaelSet&) = delete;
  ~HarrisMichaelSet() {
    // Single-threaded by now; marked-but-linked nodes are still ours to destroy.
    for (std::size_t b = 0; b <= mask_; ++b) {
      std::uintptr_t p = heads_[b].load(std::memory_order_relaxed);
      while (node_of(p) != nullptr) {
        Node* n = node_of(p);
        p = n->next.load(std::memory_order_relaxed);
        Reclaim::destroy(n);
      }
    }
  }

  bool insert(std::uint64_t key) {
    auto& head = bucket(key);
    Node* fresh = nullptr;
    for (;;) {
      Position pos = find(head, key);
      if (pos.found) {
        if (fresh != nullptr) Reclaim::free_unpublished(fresh);
        return false;
      }
      if (fresh == nullptr) fresh = Reclaim::template allocate<Node>(key);
      // relaxed: fresh is private until the CAS below publishes it.
      fresh->next.store(pos.cur, std::memory_order_relaxed);
      std::uintptr_t expected = pos.cur;
      // (H1) release: publishes fresh->key and fresh->next; pairs with the acquire loads
      // (H2) of every traversal that reaches fresh.
      if (pos.prev->compare_exchange_strong(expected, as_word(fresh), std::memory_order_release,
                                            std::memory_order_relaxed))
        return true;
    }
  }

  bool erase(const std::uint64_t& key) {
    auto& head = bucket(key);
    for (;;) {
      Position pos = find(head, key);
      if (!pos.found) return false;
      Node* victim = node_of(pos.cur);
      std::uintptr_t next = pos.next;  // unmarked, as find returned it
      // (H3) acquire/release: the logical delete; it linearizes the erase. Acquire pairs
      // with an insert (H1) that linked a new successor so `next` below is current;
      // release orders it before our unlink (H4) as seen by helpers.
      if (!victim->next.compare_exchange_strong(next, next | kMark, std::memory_order_acq_rel,
                                                std::memory_order_relaxed))
        continue;  // successor changed or someone else marked it: retry from scratch
      std::uintptr_t expected = pos.cur;
      // (H4) release: pairs with the traversals' acquire (H2) of prev.
      if (pos.prev->compare_exchange_strong(expected, next, std::memory_order_release,
                                            std::memory_order_relaxed))
        Reclaim::retire(victim);
      else
        find(head, key);  // a helper's find unlinks and retires it
      return true;
    }
  }

  bool contains(const std::uint64_t& key) const {
    // (H2) acquire loads throughout: pair with (H1)/(H4) so every node reached is complete.
    const Node* n = node_of(bucket(key).load(std::memory_order_acquire));
    while (n != nullptr && n->key < key) n = node_of(n->next.load(std::memory_order_acquire));
    return n != nullptr && n->key == key &&
           (n->next.load(std::memory_order_acquire) & kMark) == 0;
  }

 private:
  static constexpr std::uintptr_t kMark = 1;

  struct Position {
    std::atomic<std::uintptr_t>* prev;  // the link that points at cur
    std::uintptr_t cur;                 // unmarked word of the first node with key >= target
    std::uintptr_t next;                // cur's unmarked successor (when cur != 0)
    bool found;
  };

  static Node* node_of(std::uintptr_t w) { return reinterpret_cast<Node*>(w & ~kMark); }
  static std::uintptr_t as_word(Node* n) { return reinterpret_cast<std::uintptr_t>(n); }

  std::atomic<std::uintptr_t>& bucket(std::uint64_t key) const { return heads_[key & mask_]; }

  // Returns the position of `key`, unlinking (and retiring) every marked node met on the way.
  Position find(std::atomic<std::uintptr_t>& head, std::uint64_t key) {
  retry:
    std::atomic<std::uintptr_t>* prev = &head;
    std::uintptr_t cur = prev->load(std::memory_order_acquire);  // (H2)
    for (;;) {
      Node* c = node_of(cur);
      if (c == nullptr) return {prev, 0, 0, false};
      std::uintptr_t next = c->next.load(std::memory_order_acquire);  // (H2)
      if ((next & kMark) != 0) {
        std::uintptr_t expected = cur;
        // (H4) release, as in erase: unlink a logically deleted node.
        if (!prev->compare_exchange_strong(expected, next & ~kMark, std::memory_order_release,
                                           std::memory_order_relaxed))
          goto retry;  // prev changed (or was itself marked): start over
        Reclaim::retire(c);
        cur = next & ~kMark;
        continue;
      }
      if (c->key >= key) return {prev, cur, next, c->key == key};
      prev = &c->next;
      cur = next;
    }
  }

  std::size_t mask_;
  std::unique_ptr<std::atomic<std::uintptr_t>[]> heads_;
};

}  // namespace cmr::bench
