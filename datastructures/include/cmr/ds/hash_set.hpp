// cmr/ds/hash_set.hpp: HashSet<K>, a lock-free set with a fixed number of buckets, each an
// ordered Harris-Michael list, whose nodes are reclaimed by cmr.
//
// Responsibility: the Harris-Michael list-based set on top of the public cmr API only.
//
// Invariants:
//  - Each bucket is a singly linked list sorted strictly by key (Less); the keys on it are
//    the keys that hash to that bucket.
//  - The low bit of a node's `next` is its deletion mark. A node is in the set iff it is
//    reachable from its bucket and its mark is clear. A marked `next` never changes again,
//    and only marked nodes are unlinked.
//  - A node's key never changes once the node is published.
//  - The bucket array is one tracked object reached from buckets_root_, so it lives as long
//    as the set; buckets_ is a plain copy of that pointer for the fast paths.
//  - A Node destructor destroys only its key; it never follows `next`.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>
#include <cmr/ds/detail/marked_ptr.hpp>

namespace cmr::ds {

/// A lock-free set of unique keys: a fixed array of buckets, each a Harris-Michael ordered
/// linked list with logical deletion marks in the low bit of `next`.
///
/// T. L. Harris. "A Pragmatic Implementation of Non-blocking Linked-Lists." DISC 2001,
/// LNCS 2180, pp. 300-314.
/// M. M. Michael. "High Performance Dynamic Lock-Free Hash Tables and List-Based Sets."
/// SPAA 2002, pp. 73-82.
/// contains() is the traversal of M. Herlihy and N. Shavit, "The Art of Multiprocessor
/// Programming", section 9.8: it walks through marked nodes and never helps unlink.
///
/// K may be move-only. Hash maps a key to a bucket; Less orders the keys of one bucket
/// (equivalence is !less(a, b) && !less(b, a); equivalent keys must hash alike).
///
/// Keys and destruction. A key lives in its node. A published node may still be read by
/// concurrent traversals after it is erased, so an erased key is destroyed by the collector,
/// on its thread, once no guard reaches the node (observable with cmr::collect()). For the
/// same reason ~HashSet does not destroy the remaining keys itself: it drops the only root
/// of the bucket array, and the next cmr cycle destroys every node and its key. K's
/// destructor must therefore be safe to run on another thread and must not touch tracked
/// objects. A key passed to insert() that is not inserted is destroyed before insert
/// returns (its moved-from shell may go with a node the collector frees).
///
/// Synchronization (labels refer to the comments in the code):
///
///   | op  | where                            | order   | pairs with                   |
///   |-----|----------------------------------|---------|------------------------------|
///   | (1) | find: protect(bucket)            | acquire | (4), (5), (7): the first     |
///   |     |                                  |         | node's key and next          |
///   | (2) | find: protect(cur->next)         | acquire | (4), (5), (7)                |
///   | (3) | contains: protect(bucket / next) | acquire | (4), (5), (7)                |
///   | (4) | find: unlink a marked node       | release | (1), (2), (3): hands on the  |
///   |     |                                  |         | successor that (2) acquired  |
///   | (5) | insert: link n after prev        | release | (1), (2), (3): n's key, next |
///   | (6) | erase: mark cur->next            | relaxed | - (see below)                |
///   | (7) | erase: unlink cur                | release | (1), (2), (3), like (4)      |
///   | (8) | contains: load of the last next  | acquire | (4), (5), (7)                |
///
/// (6) publishes no data: the successor in a marked `next` was published by the (4), (5)
/// or (7) that stored it, and since every write to a published `next` is a CAS (a
/// read-modify-write), (6) continues their release sequences, so a reader whose acquire
/// load sees the marked value still synchronizes with them. The initial store of n->next
/// is relaxed: n is private until (5) publishes it.
///
/// No ABA. Every CAS compares against a pointer the thread holds in a cmr::Guard (cur, the
/// node that owns prev) or null. A guarded node is reachable from a root, so cmr cannot
/// free it and its address cannot be reused by a new node while the CAS is pending; and an
/// erased node is never inserted again (insert always makes a fresh node). So if prev
/// still holds cur, unmarked, then the node owning prev is not deleted and cur is still its
/// successor: exactly the condition Harris's CAS needs, with no version counters. Guards
/// hold pointers with the mark bit set as they were loaded; a marked pointer points inside
/// its node and keeps it alive. The mark is stripped before any dereference.
///
/// Progress:
///  - insert, erase: lock-free (a failed CAS or a restart means another operation on the
///    same bucket succeeded); insert allocates through cmr::make.
///  - contains: lock-free. It writes no shared memory and never restarts, but each
///    Guard::protect re-reads its source while a concurrent update changes it, and keys
///    inserted between the walker and its target lengthen its walk.
/// As with every cmr structure, a collection briefly pauses all registered threads; the
/// guarantees above hold between pauses.
///
/// Memory. An erased node becomes garbage once it is unlinked and no guard holds it.
/// Unlike the queue and the stack, an erased node cannot be cut loose from its successor:
/// a contains() standing on it must be able to walk on. So a stale word that falsely
/// references an erased node (cmr's scan is conservative) also keeps the erased nodes that
/// followed it; such a chain's keys strictly increase, so it is no longer than the bucket's
/// key range past that node.
template <class K, class Hash = std::hash<K>, class Less = std::less<K>>
class HashSet {
  static_assert(std::is_move_constructible_v<K>, "HashSet<K> needs a move constructible K");
  static_assert(!std::is_reference_v<K> && std::is_destructible_v<K>);

 public:
  /// Creates an empty set with `buckets` buckets (at least one). The count never changes:
  /// choose it near the expected number of keys.
  explicit HashSet(std::size_t buckets, Hash hash = Hash(), Less less = Less())
      : bucket_count_(buckets == 0 ? 1 : buckets),
        hash_(std::move(hash)),
        less_(std::move(less)) {
    cmr::Guard<Bucket> guard;
    buckets_ = cmr::make_array<Bucket>(guard, bucket_count_);
    // relaxed: the set reaches other threads through whatever hands them its address.
    buckets_root_.store(buckets_, std::memory_order_relaxed);
  }

  // The remaining keys are destroyed by the collector; see the class comment.
  ~HashSet() {
    // Dropping the root (it unregisters right after) leaves the array and every node
    // unreachable; the next cycle destroys them. Storing null first says so explicitly.
    buckets_root_.store(nullptr, std::memory_order_relaxed);
  }

  HashSet(const HashSet&) = delete;
  HashSet& operator=(const HashSet&) = delete;

  std::size_t bucket_count() const noexcept { return bucket_count_; }

  /// Inserts `key` unless an equivalent key is present. Returns true if it inserted.
  /// Lock-free. Throws what cmr::make throws; the set is then unchanged.
  bool insert(K key) {
    Bucket& bucket = bucket_for(key);
    Guards g;
    cmr::Guard<Node> new_guard;
    Node* n = nullptr;  // made once, on the first miss, and reused by every retry
    for (;;) {
      Window w = find(bucket, n != nullptr ? n->key : key, g);
      if (w.found) {
        // Present already. If n exists we lost a race to an equal key; n was never
        // published, so its key can be taken back and destroyed here rather than on the
        // collector thread.
        if (n != nullptr) {
          [[maybe_unused]] K discarded(std::move(n->key));
        }
        return false;
      }
      if (n == nullptr) n = cmr::make<Node>(new_guard, std::move(key));
      // relaxed: n is private until (5).
      n->next.store(w.cur, std::memory_order_relaxed);
      Node* expected = w.cur;
      // (5) release: pairs with (1), (2), (3); publishes n's key and next. Fails if prev
      // changed or its node got marked. Linearisation point of a successful insert.
      if (w.prev->compare_exchange_strong(expected, n, std::memory_order_release,
                                          std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  /// Removes the key equivalent to `key`, if present. Returns true if this call removed it.
  /// Lock-free.
  bool erase(const K& key) {
    Bucket& bucket = bucket_for(key);
    Guards g;
    Window w;
    for (;;) {
      w = find(bucket, key, g);
      if (!w.found) return false;
      Node* expected = w.next;
      // (6) relaxed: see the class comment. Linearisation point of a successful erase:
      // from here on the key is logically absent. Fails if cur got marked by another
      // eraser or its successor changed; either way, look again.
      if (w.cur->next.compare_exchange_strong(expected, marked(w.next),
                                              std::memory_order_relaxed,
                                              std::memory_order_relaxed)) {
        break;
      }
    }
    Node* expected = w.cur;
    // (7) release: pairs with (1), (2), (3). If it fails, prev changed under us; a find
    // unlinks cur on its way (and any other marked node before it).
    if (!w.prev->compare_exchange_strong(expected, w.next, std::memory_order_release,
                                         std::memory_order_relaxed)) {
      find(bucket, key, g);
    }
    return true;
  }

  /// True if a key equivalent to `key` was in the set at some point during the call.
  /// Lock-free; takes no lock, writes no shared memory and never helps unlink.
  bool contains(const K& key) const {
    cmr::Guard<Node> guards[2];
    // The two guards trade roles by pointer, not by std::swap: swapping the Guard objects
    // goes through the stack each hop (16-byte moves read back as 8-byte halves), and the
    // store-forwarding stalls tripled the cost of a traversal (measured with perf).
    cmr::Guard<Node>* cur_guard = &guards[0];
    cmr::Guard<Node>* next_guard = &guards[1];
    // (3) acquire: pairs with (4), (5), (7). Bucket heads are never marked.
    Node* cur = cur_guard->protect(bucket_for(key), std::memory_order_acquire);
    while (cur != nullptr) {
      if (!less_(cur->key, key)) {
        // (8) acquire: pairs with (4), (5), (7). Only the mark is read, so no guard.
        Node* next = cur->next.load(std::memory_order_acquire);
        return !less_(key, cur->key) && !is_marked(next);
      }
      // Walk on even if cur is marked: a marked node's next is frozen and leads back into
      // the list, with keys still in order. Guarded before the hand-over, so cur's
      // successor stays alive even if cur is unlinked and collected meanwhile.
      // (3) acquire: as above.
      cur = unmarked(next_guard->protect(cur->next, std::memory_order_acquire));
      std::swap(cur_guard, next_guard);
    }
    return false;
  }

 private:
  struct Node {
    explicit Node(K&& k) : key(std::move(k)) {}

    // Not const only so that insert can take a key back out of a node it never published.
    K key;
    cmr::Atomic<Node> next;  // low bit: this node is logically deleted
  };
  using Bucket = cmr::Atomic<Node>;

  // The three hand-over-hand guards of a find: the node that owns prev (none while prev is
  // a bucket, which buckets_root_ keeps alive), cur, and cur's successor.
  // Roles rotate by pointer (see contains() for why the Guard objects never move).
  struct Guards {
    cmr::Guard<Node> slots[3];
    cmr::Guard<Node>* prev_owner = &slots[0];
    cmr::Guard<Node>* cur = &slots[1];
    cmr::Guard<Node>* next = &slots[2];
  };

  // Where find stopped: cur is the first node with key >= the searched key (or null),
  // prev the link that pointed to it, next cur's unmarked successor as read. All three are
  // protected by the Guards passed to find.
  struct Window {
    Bucket* prev = nullptr;
    Node* cur = nullptr;
    Node* next = nullptr;
    bool found = false;  // cur holds an equivalent key and was unmarked when read
  };

  static bool is_marked(Node* p) noexcept { return detail::is_marked(p); }
  static Node* marked(Node* p) noexcept { return detail::marked(p); }
  static Node* unmarked(Node* p) noexcept { return detail::unmarked(p); }

  Bucket& bucket_for(const K& key) const noexcept {
    return buckets_[hash_(key) % bucket_count_];
  }

  // Harris-Michael search: returns the window around `key`, unlinking every marked node it
  // meets on the way (only insert and erase call it; contains never writes).
  Window find(Bucket& bucket, const K& key, Guards& g) {
  retry:
    Bucket* prev = &bucket;
    g.prev_owner->reset();
    // (1) acquire: pairs with (4), (5), (7). Bucket heads are never marked.
    Node* cur = g.cur->protect(*prev, std::memory_order_acquire);
    for (;;) {
      if (cur == nullptr) return Window{prev, nullptr, nullptr, false};
      // (2) acquire: pairs with (4), (5), (7). cur is guarded, so protect's validation
      // against cur->next is enough to make next safe.
      Node* next = g.next->protect(cur->next, std::memory_order_acquire);
      if (is_marked(next)) {
        // cur is logically deleted: unlink it before going on. The CAS fails if prev
        // changed or the node owning prev got marked itself; restart from the bucket.
        Node* expected = cur;
        // (4) release: pairs with (1), (2), (3); hands on next, which (2) acquired.
        if (!prev->compare_exchange_strong(expected, unmarked(next), std::memory_order_release,
                                           std::memory_order_relaxed)) {
          goto retry;
        }
        // The guard keeps the marked form it loaded; it protects the node all the same.
        cur = unmarked(next);
        std::swap(g.cur, g.next);
        continue;
      }
      // Unmarked: when (2) read it, cur was in the list and prev's link pointed to it
      // (or pointed to it until cur was unlinked; a changed prev fails the caller's CAS).
      if (!less_(cur->key, key)) {
        return Window{prev, cur, next, !less_(key, cur->key)};
      }
      prev = &cur->next;
      std::swap(g.prev_owner, g.cur);  // cur now owns prev
      std::swap(g.cur, g.next);        // next becomes cur
      cur = next;
    }
  }

  // The only root of the bucket array and, through it, of every node.
  cmr::Root<Bucket> buckets_root_;
  // A plain copy for the fast paths; the Root above is what keeps the array alive.
  Bucket* buckets_ = nullptr;
  std::size_t bucket_count_;
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] Less less_;
};

}  // namespace cmr::ds
