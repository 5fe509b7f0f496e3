// cmr/ds/harris_list.hpp: HarrisList<K>, a lock-free ordered set: Harris's original list,
// whose search unlinks a whole chain of marked nodes with one CAS, reclaimed by cmr.
//
// Responsibility: T. L. Harris's list-based set, exactly as in the paper (search, insert,
// erase), on top of the public cmr API only.
//
// Invariants:
//  - The list is singly linked from head_ and sorted strictly by key (Less). head_ is the
//    head sentinel: a link with no node or key around it, never marked. The end is null.
//  - The low bit of a node's `next` is its deletion mark. A node is in the set iff it is
//    reachable from head_ and its mark is clear. A marked `next` never changes again.
//  - Only marked nodes are unlinked: every node that search's one CAS cuts out lies strictly
//    between left_node and right_node and was seen marked.
//  - A node's key never changes once the node is published; a node is never inserted twice.
//  - A Node destructor destroys only its key; it never follows `next`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>
#include <cmr/ds/detail/marked_ptr.hpp>

namespace cmr::ds {

/// Test-only access to HarrisList's internals (tests/ds/harris_list_stress_test.cpp defines
/// it to mark nodes without unlinking them and to run one search by itself, so that a chain
/// of marked nodes can be built and its one-CAS unlink observed). Declared here, defined by
/// no header: a friend declaration costs nothing in the code that uses the list. Programs
/// must not define it.
struct HarrisListTestAccess;

/// A lock-free set of unique keys kept in one sorted linked list: Harris's list.
///
/// T. L. Harris. "A Pragmatic Implementation of Non-blocking Linked-Lists." DISC 2001,
/// LNCS 2180, pp. 300-314. search, insert and erase (the paper's delete) follow its
/// figures: erase marks the node's `next` (logical deletion), then tries one CAS to unlink
/// it, and calls search if that fails. search walks on through marked nodes without
/// restarting and unlinks every marked node between left_node and right_node with a single
/// CAS on left_node->next, from left_node_next to right_node. contains() does not call
/// search, as the paper's find does: it is a read-only walk (M. Herlihy, N. Shavit, "The Art
/// of Multiprocessor Programming", section 9.8) so that a const lookup writes no shared
/// memory and never helps unlink. cmr::ds::HashSet uses the Harris-Michael variant instead,
/// which unlinks one node at a time and restarts whenever that fails.
///
/// K may be move-only; it needs no minimum or maximum value (the sentinels are a link and
/// null). Equivalence is !less(a, b) && !less(b, a). Every operation is O(n) in the number
/// of nodes on the list, marked ones included: use it for small sets, or as a bucket.
///
/// Why Harris's search is safe under cmr and not under hazard pointers. The search reads
/// through marked nodes, and a marked node may already have been unlinked by another
/// thread's chain CAS. With hazard pointers, the traversal publishes a hazard on t_next and
/// validates by re-reading t->next; but once t is marked, t->next is frozen, so the check
/// passes even when t and t_next were unlinked together, retired and freed before the hazard
/// was published: the walk then reads freed memory. A hazard-pointer list must validate that
/// t is still linked (its predecessor still points to it, unmarked) and restart when it is
/// not, which means unlinking each marked node before stepping past it: Michael's variant.
/// Under cmr a guarded node keeps what it reaches alive, since the scan follows reachable
/// tracked objects (and tagged pointers count). A marked node's frozen `next` leads through
/// the rest of its chain into the list, so a chain reached from a guarded node stays
/// readable however many other threads unlink it meanwhile, and search may walk the whole
/// chain and cut it out with one CAS. The cut nodes are freed only once no guard reaches
/// any of them: a thread standing inside the chain keeps that node and every node after it.
///
/// The guards of a search, and why they suffice. (A cmr::Guard is a slot of the calling
/// thread: taking one pops a thread-local free list, which grows by blocks of 63 slots, so
/// the four of an operation never run out; a publish is a plain store with no fence; see
/// cmr/guard.hpp.)
///  - the cursor t: its `next` is read, so it must be alive. Guard::protect validated it
///    against the `next` of the previous node, which was itself guarded (or head_).
///  - t_next: protected as it is read from t->next; it becomes the next cursor.
///  - left_node: search's CAS, insert's and erase's CASes write left_node->next. Guarded, it
///    is not freed, so its address is not reused while the CAS is pending.
///  - left_node_next: the expected value of the chain CAS. If it were not guarded, the chain
///    could be unlinked by another thread, freed, and a new node allocated at its address
///    and inserted after left_node: the CAS would then succeed against the new node and cut
///    it out (ABA). Guarded, it also keeps the whole chain up to the cursor alive (each link
///    on the way was read marked, hence frozen).
///  - right_node: the cursor when search stops; the caller reads its key and CASes its
///    `next` (erase) or links before it (insert).
/// Every pointer a CAS compares against is therefore held by a guard, and every node
/// dereferenced is guarded. The cursor and right_node are, besides, reachable from the
/// guarded left_node_next through frozen links (or equal to it), so under cmr their own
/// guards are a second line rather than the only one; they cost no store of their own,
/// since the roles rotate by pointer and each step's one guard write is the protect that
/// reads t_next. The one extra store is left_next's set() on each unmarked step.
///
/// Keys and destruction. A key lives in its node. An erased key is destroyed by the
/// collector, on its thread, once no guard reaches its node (observable with
/// cmr::collect()). ~HarrisList does not destroy the remaining keys itself: it drops head_,
/// the only root of the nodes, and the next cycle destroys every node and its key. K's
/// destructor must be safe to run on another thread and must not touch tracked objects. A
/// key passed to insert() that is not inserted is destroyed before insert returns.
///
/// Synchronization (labels refer to the comments in the code):
///
///   | op  | where                               | order   | pairs with                 |
///   |-----|-------------------------------------|---------|----------------------------|
///   | (1) | search: protect(head_)              | acquire | (4), (5), (7): the first   |
///   |     |                                     |         | node's key and next        |
///   | (2) | search: protect(t->next)            | acquire | (4), (5), (7)              |
///   | (3) | search: load right_node->next       | acquire | -: only the mark is used   |
///   | (4) | search: unlink the chain (one CAS)  | release | (1), (2), (8): hands on    |
///   |     |                                     |         | right_node, which (2) got  |
///   | (5) | insert: link n after left_node      | release | (1), (2), (8): n's key and |
///   |     |                                     |         | next                       |
///   | (6) | mark: mark right_node->next         | relaxed | - (see below)              |
///   | (7) | erase: unlink right_node            | release | (1), (2), (8), like (4)    |
///   | (8) | contains: protect(head_ / next)     | acquire | (4), (5), (7)              |
///   | (9) | contains: load of the last next     | acquire | -: only the mark is used   |
///   | (10)| mark: protect(right_node->next)     | acquire | (4), (5), (7)              |
///
/// (6) publishes no data: the successor in a marked `next` was published by the (4), (5) or
/// (7) that stored it, and since every write to a published `next` is a CAS (a
/// read-modify-write), (6) continues their release sequences, so a reader whose acquire
/// sees the marked value still synchronizes with them. The initial store of n->next is
/// relaxed: n is private until (5) publishes it (and the inserter had acquired its
/// successor before). Failed CASes are relaxed: they publish nothing and their callers only
/// retry or restart. (3) and (9) read only the mark and could be relaxed; acquire costs
/// nothing on x86-64 and keeps every load of a `next` alike. (3) is the paper's re-check
/// that right_node is still unmarked when search returns; if it is not, search again.
///
/// No ABA. Every CAS compares against a pointer the thread holds in a cmr::Guard
/// (left_node_next, right_node, right_node's successor) or null, and writes a link of a
/// guarded node (left_node, right_node) or head_. A guarded node is reachable from a root,
/// so cmr cannot free it and no new node can take its address while the CAS is pending; an
/// erased node is never inserted again (insert always makes a fresh node). So if
/// left_node->next still holds left_node_next, unmarked, then left_node is not deleted and
/// the chain after it is the one search walked (its links are frozen): exactly the
/// condition of Harris's CAS, with no version counters. Guards hold pointers with the mark
/// bit set as they were loaded; a marked pointer points inside its node and keeps it
/// alive. The mark is stripped before any dereference.
///
/// Progress:
///  - search, insert, erase: lock-free. A failed CAS or a restart means that another
///    operation changed the list (a link, a mark) and so completed a step of its own;
///    insert allocates through cmr::make.
///  - contains: lock-free. It writes no shared memory and never restarts, but each
///    Guard::protect re-reads its source while a concurrent update changes it, and keys
///    inserted between the walker and its target lengthen its walk.
/// As with every cmr structure, a collection briefly pauses all registered threads; the
/// guarantees above hold between pauses.
///
/// Memory. An erased node becomes garbage once it is unlinked and no guard reaches it. An
/// erased node cannot be cut loose from its successor (a walker standing on it must be
/// able to walk on), so a stale word that falsely references an erased node (cmr's scan is
/// conservative) also keeps the erased nodes that followed it; such a chain's keys strictly
/// increase, so it is no longer than the key range past that node.
template <class K, class Less = std::less<K>>
class HarrisList {
  static_assert(std::is_move_constructible_v<K>, "HarrisList<K> needs a move constructible K");
  static_assert(!std::is_reference_v<K> && std::is_destructible_v<K>);

 public:
  HarrisList() = default;
  explicit HarrisList(Less less) : less_(std::move(less)) {}

  // The remaining keys are destroyed by the collector; see the class comment.
  ~HarrisList() {
    // Dropping the root (it unregisters right after) leaves every node unreachable; the
    // next cycle destroys them. Storing null first says so explicitly.
    head_.store(nullptr, std::memory_order_relaxed);
  }

  HarrisList(const HarrisList&) = delete;
  HarrisList& operator=(const HarrisList&) = delete;

  /// Inserts `key` unless an equivalent key is present. Returns true if it inserted.
  /// Lock-free. Throws what cmr::make throws; the list is then unchanged.
  bool insert(K key) {
    Guards g;
    cmr::Guard<Node> new_guard;
    Node* n = nullptr;  // made once, on the first miss, and reused by every retry
    for (;;) {
      const K& k = n != nullptr ? n->key : key;
      Window w = search(k, g);
      if (w.right != nullptr && !less_(k, w.right->key)) {
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
      n->next.store(w.right, std::memory_order_relaxed);
      Node* expected = w.right;
      // (5) release: pairs with (1), (2), (8); publishes n's key and next. Fails if
      // left_node->next changed or got marked. Linearisation point of a successful insert.
      if (w.left_link->compare_exchange_strong(expected, n, std::memory_order_release,
                                               std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  /// Removes the key equivalent to `key`, if present. Returns true if this call removed it.
  /// Lock-free.
  bool erase(const K& key) {
    Guards g;
    Window w;
    Node* right_next;
    if (!mark(key, g, w, right_next)) return false;
    Node* expected = w.right;
    // (7) release: pairs with (1), (2), (8). If it fails, left_node->next changed under us;
    // a search unlinks right_node on its way, with any marked nodes around it.
    if (!w.left_link->compare_exchange_strong(expected, right_next, std::memory_order_release,
                                              std::memory_order_relaxed)) {
      search(key, g);
    }
    return true;
  }

  /// True if a key equivalent to `key` was in the set at some point during the call.
  /// Lock-free; writes no shared memory and never helps unlink.
  bool contains(const K& key) const {
    cmr::Guard<Node> guards[2];
    // Roles trade by pointer: swapping Guard objects costs store-forwarding stalls (see
    // HashSet::contains).
    cmr::Guard<Node>* cur_guard = &guards[0];
    cmr::Guard<Node>* next_guard = &guards[1];
    // (8) acquire: pairs with (4), (5), (7). head_ is never marked.
    Node* cur = cur_guard->protect(head_, std::memory_order_acquire);
    while (cur != nullptr) {
      if (!less_(cur->key, key)) {
        // (9) acquire: only the mark is read, so no guard.
        Node* next = cur->next.load(std::memory_order_acquire);
        return !less_(key, cur->key) && !is_marked(next);
      }
      // Walk on even if cur is marked: its next is frozen and leads back into the list, with
      // keys still in order, and cur (guarded) keeps it alive even if cur was unlinked.
      // (8) acquire: as above.
      cur = unmarked(next_guard->protect(cur->next, std::memory_order_acquire));
      std::swap(cur_guard, next_guard);
    }
    return false;
  }

 private:
  friend struct HarrisListTestAccess;

  struct Node {
    explicit Node(K&& k) : key(std::move(k)) {}

    // Not const only so that insert can take a key back out of a node it never published.
    K key;
    cmr::Atomic<Node> next;  // low bit: this node is logically deleted
  };
  using Link = cmr::Atomic<Node>;

  // The four guards of a search (see the class comment). Roles rotate by pointer, so the
  // Guard objects never move. After search returns: left guards left_node, left_next guards
  // left_node_next, cur guards right_node, and next is free for the caller.
  struct Guards {
    cmr::Guard<Node> slots[4];
    cmr::Guard<Node>* left = &slots[0];
    cmr::Guard<Node>* left_next = &slots[1];
    cmr::Guard<Node>* cur = &slots[2];
    cmr::Guard<Node>* next = &slots[3];
  };

  // What search found: right_node is the first node with key >= the searched key (or null)
  // and was unmarked when last read; left_link is left_node's `next` (or head_) and held
  // right_node, unmarked, when search returned. left_next is the left_node_next of the last
  // pass: equal to right, or the first node of the chain that pass's CAS unlinked.
  struct Window {
    Link* left_link = nullptr;
    Node* left_next = nullptr;
    Node* right = nullptr;
  };

  static bool is_marked(Node* p) noexcept { return detail::is_marked(p); }
  static Node* marked(Node* p) noexcept { return detail::marked(p); }
  static Node* unmarked(Node* p) noexcept { return detail::unmarked(p); }

  // The first half of erase: finds the node of `key` and marks it (logical deletion).
  // Returns false if no such node is in the list; otherwise w is the window search found
  // around it (w.right is the node, guarded by g.cur) and right_next its successor as
  // marked, guarded by g.next. Apart from erase, only HarrisListTestAccess calls it, to mark
  // nodes that no one then unlinks.
  bool mark(const K& key, Guards& g, Window& w, Node*& right_next) {
    for (;;) {
      w = search(key, g);
      if (w.right == nullptr || less_(key, w.right->key)) return false;
      // (10) acquire: pairs with (4), (5), (7). right_node is guarded (g.cur); g.next is free
      // once search returned.
      right_next = g.next->protect(w.right->next, std::memory_order_acquire);
      if (is_marked(right_next)) continue;  // erased by another thread: search again
      Node* expected = right_next;
      // (6) relaxed: see the class comment. Linearisation point of a successful erase: from
      // here on the key is logically absent. Fails if another eraser marked it or its
      // successor changed; either way, search again.
      if (w.right->next.compare_exchange_strong(expected, marked(right_next),
                                                std::memory_order_relaxed,
                                                std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  // Harris's search (the paper's Figure 5). The calling thread is registered (Guards made
  // it so), so the CASes on head_ through Link& need not go through Root's own members.
  Window search(const K& key, Guards& roles) {
    // The roles move between guards at every step. Kept in locals, not in `roles`: each
    // protect() and set() carries a signal fence, which would force pointers held in the
    // caller's struct back to memory at every step (measured: an erase-heavy mix ran at
    // a sixth of the speed). They are handed back once the window is found.
    struct Roles {
      cmr::Guard<Node>* left;
      cmr::Guard<Node>* left_next;
      cmr::Guard<Node>* cur;
      cmr::Guard<Node>* next;
    } g{roles.left, roles.left_next, roles.cur, roles.next};
    auto found = [&](Window w) {
      roles.left = g.left;
      roles.left_next = g.left_next;
      roles.cur = g.cur;
      roles.next = g.next;
      return w;
    };
    for (;;) {
      // ---- 1: find left_node and right_node ----
      Link* left_link = &head_;   // left_node = head (needs no guard: head_ is a Root)
      Node* left_next = nullptr;
      Link* t_link = &head_;      // t = head
      Node* t = nullptr;
      g.cur->reset();
      // (1) acquire: pairs with (4), (5), (7). head_ is never marked.
      Node* t_next = g.next->protect(head_, std::memory_order_acquire);
      for (;;) {
        if (!is_marked(t_next)) {
          // t is unmarked: it becomes left_node. Its guard (cur) takes the left role; the
          // old left guard becomes scratch and is overwritten below.
          std::swap(g.left, g.cur);
          left_link = t_link;
          left_next = t_next;
          g.left_next->set(t_next);  // already protected by g.next
        }
        // Step on, even past a marked t: the marked link is frozen, and the chain from
        // left_node_next to here stays alive since left_next is guarded.
        t = unmarked(t_next);
        std::swap(g.cur, g.next);  // cur guards t (in the form it was loaded)
        if (t == nullptr) break;
        t_link = &t->next;
        // (2) acquire: pairs with (4), (5), (7). t is guarded, so protect's validation
        // against t->next is enough to make t_next safe.
        t_next = g.next->protect(t->next, std::memory_order_acquire);
        if (!is_marked(t_next) && !less_(t->key, key)) break;
      }
      Node* right = t;

      // ---- 2: check that the nodes are adjacent ----
      if (left_next == right) {
        // (3) acquire: only the mark is read.
        if (right != nullptr && is_marked(right->next.load(std::memory_order_acquire))) {
          continue;  // right_node got marked meanwhile: search again
        }
        return found(Window{left_link, left_next, right});
      }

      // ---- 3: remove the marked nodes between them, all with one CAS ----
      Node* expected = left_next;
      // (4) release: pairs with (1), (2), (8); hands on right_node, which (2) acquired.
      // Fails if left_node->next changed (a node linked, the chain unlinked by another
      // search) or left_node got marked; search again then.
      if (left_link->compare_exchange_strong(expected, right, std::memory_order_release,
                                             std::memory_order_relaxed)) {
        // (3) acquire: only the mark is read.
        if (right != nullptr && is_marked(right->next.load(std::memory_order_acquire))) {
          continue;
        }
        return found(Window{left_link, left_next, right});
      }
    }
  }

  // The head sentinel and the only root of the nodes.
  cmr::Root<Node> head_;
  [[no_unique_address]] Less less_;
};

}  // namespace cmr::ds
