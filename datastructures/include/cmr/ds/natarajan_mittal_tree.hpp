// cmr/ds/natarajan_mittal_tree.hpp: NatarajanMittalTree<K>, a lock-free set kept as an
// external (leaf-oriented) unbalanced binary search tree, whose nodes are reclaimed by cmr.
//
// Responsibility: the Natarajan-Mittal tree on top of the public cmr API only.
//
// Invariants:
//  - Every internal node has exactly two children, every leaf none. The keys of the set are
//    the keys of the real leaves reachable from the root; an internal node routes: keys that
//    order before its key go left, the others right.
//  - A node's rank and key never change once the node is published. Real keys rank below
//    the three sentinels inf0 < inf1 < inf2, which have no key at all.
//  - The low bits of an edge (a child pointer): flag (bit 0) says the leaf it points to is
//    being deleted, tag (bit 1) says the edge is frozen. A flagged or tagged edge never
//    changes again, except that a flagged edge may also get its tag. Both edges of an
//    internal node are flagged or tagged before it is removed from the tree, and a removed
//    internal node never comes back.
//  - A node's destructor destroys only its own key; it never follows an edge.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>

#include <cmr/ds/detail/natarajan_mittal_tree_hooks.hpp>

namespace cmr::ds {

/// A lock-free set of unique keys: an external binary search tree whose edges carry a flag
/// (the leaf below is being deleted) and a tag (the edge is frozen) in their low bits.
///
/// A. Natarajan and N. Mittal. "Fast Concurrent Lock-Free Binary Search Trees." PPoPP 2014,
/// pp. 317-328.
///
/// The algorithm. seek(key) walks from the root to a leaf and records four nodes: the
/// leaf, its parent, and the ancestor -> successor edge, the last untagged edge above the
/// parent -> leaf edge. insert replaces the leaf with a new internal node whose children
/// are the old leaf and a new leaf, by one CAS on the parent's edge. erase first flags the
/// parent's edge to its leaf (injection), then cleanup tags the parent's other edge and
/// swings the ancestor's edge from the successor to that other child (flag kept), which
/// splices out in one CAS the parent, the flagged leaf, and every node between successor
/// and parent whose deletion was already pending there (their edges on the path are
/// tagged). An insert or erase whose CAS fails on a flagged or tagged edge helps by running
/// the same cleanup. contains is the seek without a record: it never writes.
///
/// Sentinels without infinite keys. The tree starts as R(inf2) -> {S(inf1), leaf inf2} and
/// S -> {leaf inf0, leaf inf1}; every real key lands under S's left edge. A node carries a
/// rank: real, inf0, inf1 or inf2, and only a real node has a key; (rank, key) is compared
/// lexicographically, so K needs no values of its own beyond its keys.
///
/// Routing keys. An internal node made by insert routes on the larger of its two leaves'
/// keys. If K is copy constructible the node holds a copy. A move-only K cannot be copied:
/// the node then points to the leaf whose key it routes on, and that pointer keeps the
/// leaf (and its key) alive as long as the internal node, even after the key was erased.
/// So with a move-only K an erased key may be destroyed only when the last internal node
/// routing on it is gone: at most one retained leaf per internal node.
///
/// Keys and destruction. Like cmr::ds::HashSet: a published node may still be read after
/// it is removed, so an erased key is destroyed by the collector, on its thread, once no
/// guard (and, for move-only K, no internal node) reaches its leaf; ~NatarajanMittalTree
/// drops the root and the next cycle destroys every node and its key. K's destructor must
/// be safe on another thread and must not touch tracked objects. A key that insert does not
/// insert is destroyed before insert returns, unless an exception (from cmr::make or K's
/// copy constructor) ends the call; the tree is then unchanged and the key goes with a
/// node the collector frees.
///
/// Why guarding the held nodes is enough. cmr frees by reachability: a node is freed only
/// once no guard or Root reaches it through any chain of tracked objects, and the frozen
/// edges of nodes already cut out of the tree are such chains as much as the live edges
/// are. A seek keeps the node it stands on in a guard X; Guard::protect(X->child) publishes
/// the child Y and re-reads X->child. If the re-read still gives Y, then at that instant Y
/// was pointed to by X, which this thread's guard reached, so Y was reachable from a root
/// after Y's own guard was published, and from then on that guard keeps it (README's one
/// rule, invariant 1 of docs/design.md). Nothing there asks whether X or Y is still in the tree. A seek
/// standing on a removed node therefore walks on through its frozen edges to nodes that
/// were its children when it was frozen, which may have been removed since as well: each
/// hop is safe for the same reason. That is why a seek may run through flagged and tagged
/// edges and past unlinked nodes, and why the guards needed are just the nodes that the
/// algorithm itself holds across steps: ancestor, successor, parent and leaf (read by
/// cleanup, and the expected values of its CASes), the node the descent stands on, and
/// insert's two new nodes (erase adds the leaf it flagged, compared by address later).
/// Under hazard pointers the same re-read proves nothing: a frozen edge re-reads equal
/// forever, also after its target was retired and freed, so HP and HP-like schemes (hazard
/// eras, IBR) cannot run this tree unchanged (M. A. H. Arovi and R. Nikolaev, "Fixing
/// Non-blocking Data Structures for Better Compatibility with Memory Reclamation Schemes",
/// arXiv:2504.06254, 2025, discuss this and the fixes it needs).
///
/// Synchronization (labels refer to the comments in the code). The paper's proof assumes
/// sequentially consistent memory, so every access to a published edge is seq_cst: one
/// total order over all of them, as the proof reasons. Loads cost what acquire loads cost
/// on x86-64 and AArch64, and every write to a published edge is a read-modify-write.
///
///   | op  | where                           | order   | pairs with                     |
///   |-----|---------------------------------|---------|--------------------------------|
///   | (1) | seek: protect(edge)             | seq_cst | (4), (7): the rank, key and    |
///   |     |                                 |         | edges of the node it reaches   |
///   | (2) | contains: protect(edge)         | seq_cst | (4), (7), like (1)             |
///   | (3) | cleanup: load of its own edge   | seq_cst | (5): only the flag is read     |
///   | (4) | insert: CAS leaf -> new node    | seq_cst | (1), (2): publishes the new    |
///   |     |                                 |         | internal node and leaf         |
///   | (5) | erase: CAS leaf -> flagged leaf | seq_cst | (3), and fails (4), (5), (7)   |
///   |     |                                 |         | expecting the unflagged edge   |
///   | (6) | cleanup: tag the kept edge      | seq_cst | fails (4), (5), (7) on it from |
///   |     |                                 |         | now on; reads the child it     |
///   |     |                                 |         | freezes                        |
///   | (7) | cleanup: CAS ancestor's edge    | seq_cst | (1), (2): hands on the kept    |
///   |     |                                 |         | child, published by its (4)    |
///
/// The fields of a new node (rank, key, routing leaf, edges) are written with plain or
/// relaxed stores while the node is private; (4) publishes them. (5), (6) and (7) rewrite
/// edges of published nodes with read-modify-writes, which continue the release sequence
/// of the (4) or (7) that stored the address, so a (1) or (2) that reads a flagged, tagged
/// or moved edge still synchronizes with the store that published its target.
///
/// No ABA. Every CAS compares against a node this thread holds in a guard (insert and
/// erase: the leaf; cleanup: the successor), and erase compares its flagged leaf with a
/// later seek's leaf by address while a guard holds it. A guarded node is reachable, so
/// cmr does not free it and no new node can take its address while the comparison is
/// pending. What is left is the same node leaving an edge and coming back (a leaf moved
/// down by an insert moves back up when its new sibling is erased): the edge then holds
/// the same node, unmarked, so the owner of the edge is still in the tree (its edges
/// would be marked otherwise) and the tree around it is as the seek saw it: the CAS is
/// right to succeed, as in the paper, whose model is memory that is never reused.
///
/// Progress:
///  - insert, erase: lock-free. A failed CAS means another operation changed the edge;
///    if that left the edge flagged or tagged, this one helps that operation's cleanup.
///    Tagging an edge is a CAS loop (cmr::Atomic has no fetch_or), which also fails only
///    when another operation changed the edge. insert allocates through cmr::make, twice.
///  - contains: lock-free, and bounded by the tree's height in the absence of contention:
///    it writes no shared memory, never restarts and never helps; each step goes one level
///    down. Only Guard::protect may retry a step, while the one edge it reads changes
///    between its two loads.
/// As with every cmr structure, a collection briefly pauses all registered threads; the
/// guarantees above hold between pauses.
///
/// Cost. insert holds seven guards, erase six, contains two. A guard takes a slot from the
/// calling thread's free list with no fence and no shared write, and a thread's slots grow
/// as needed, so holding several is cheap. The tree is not balanced: keys inserted in
/// order make it a path.
///
/// Memory. A removed node becomes garbage once no guard or tracked object reaches it. A
/// removed node cannot be cut loose from its children (a seek standing on it must walk on),
/// so a stale word that falsely references one (cmr's scan is conservative) also keeps
/// what it pointed to when it was frozen: the leaves deleted with it and a path of nodes
/// removed since below it, whose key ranges nest strictly, so no longer than the keys in
/// that node's range.
template <class K, class Less = std::less<K>>
class NatarajanMittalTree {
  static_assert(std::is_move_constructible_v<K>,
                "NatarajanMittalTree<K> needs a move constructible K");
  static_assert(!std::is_reference_v<K> && std::is_destructible_v<K>);

 public:
  NatarajanMittalTree() : NatarajanMittalTree(Less()) {}

  explicit NatarajanMittalTree(Less less) : less_(std::move(less)) {
    cmr::Guard<Node> g[5];
    Node* inf0 = cmr::make<Node>(g[0], Rank::kInf0);
    Node* inf1 = cmr::make<Node>(g[1], Rank::kInf1);
    Node* inf2 = cmr::make<Node>(g[2], Rank::kInf2);
    Node* s = cmr::make<Node>(g[3], Rank::kInf1);
    Node* r = cmr::make<Node>(g[4], Rank::kInf2);
    // relaxed: the nodes are private; the tree reaches other threads through whatever
    // hands them its address.
    s->left.store(inf0, std::memory_order_relaxed);
    s->right.store(inf1, std::memory_order_relaxed);
    r->left.store(s, std::memory_order_relaxed);
    r->right.store(inf2, std::memory_order_relaxed);
    root_.store(r, std::memory_order_relaxed);
    r_ = r;
    s_ = s;
  }

  // The remaining keys are destroyed by the collector; see the class comment.
  ~NatarajanMittalTree() {
    // Dropping the root (it unregisters right after) leaves every node unreachable; the
    // next cycle destroys them. Storing null first says so explicitly.
    root_.store(nullptr, std::memory_order_relaxed);
  }

  NatarajanMittalTree(const NatarajanMittalTree&) = delete;
  NatarajanMittalTree& operator=(const NatarajanMittalTree&) = delete;

  /// Inserts `key` unless an equivalent key is present. Returns true if it inserted.
  /// Lock-free. Throws what cmr::make (or K's copy constructor) throws; the tree is then
  /// unchanged.
  bool insert(K key) {
    Seek s;
    cmr::Guard<Node> fresh_guard;
    cmr::Guard<Node> internal_guard;
    Node* fresh = nullptr;     // the new leaf, made on the first miss and kept by retries
    Node* internal = nullptr;  // its new parent, refilled before each attempt
    for (;;) {
      seek(fresh != nullptr ? *fresh->key : key, s);
      if (holds(s.leaf, fresh != nullptr ? *fresh->key : key)) {
        // fresh was never published: its key can be destroyed here rather than on the
        // collector's thread.
        if (fresh != nullptr) fresh->key.reset();
        return false;
      }
      if (fresh == nullptr) {
        fresh = cmr::make<Node>(fresh_guard, std::in_place, std::move(key));
        internal = cmr::make<Node>(internal_guard, Rank::kKey);
      }
      const K& k = *fresh->key;
      join(internal, fresh, s.leaf);
      Node* expected = s.leaf;
      // (4) seq_cst: publishes internal and fresh to (1), (2). Fails if the edge no longer
      // holds the leaf, or holds it flagged or tagged. Linearisation point of a successful
      // insert.
      if (child_edge(k, s.parent).compare_exchange_strong(expected, internal)) return true;
      if (address(expected) == s.leaf && bits(expected) != 0) {
        CMR_DS_NM_TREE_EVENT(kInsertHelps);
        cleanup(k, s);
      }
    }
  }

  /// Removes the key equivalent to `key`, if present. Returns true if this call removed it.
  /// Lock-free. The removal takes effect when the leaf is spliced out (by this call or by
  /// one that helps it); erase returns after that.
  bool erase(const K& key) {
    Seek s;
    cmr::Guard<Node> victim_guard;
    Node* victim = nullptr;  // the leaf this call flagged
    for (;;) {
      seek(key, s);
      if (victim == nullptr) {
        if (!holds(s.leaf, key)) return false;
        Node* expected = s.leaf;
        // (5) seq_cst: injection. Only the thread whose flag lands owns this erase; every
        // other one fails here (the edge is no longer the unmarked leaf).
        if (child_edge(key, s.parent).compare_exchange_strong(expected, flagged(s.leaf))) {
          victim = s.leaf;
          victim_guard.set(victim);  // held by s's leaf guard until now
          CMR_DS_NM_TREE_EVENT(kFlagged);
          if (cleanup(key, s)) return true;
        } else if (address(expected) == s.leaf && bits(expected) != 0) {
          CMR_DS_NM_TREE_EVENT(kEraseHelps);
          cleanup(key, s);
        }
      } else {
        // Cleanup mode. A seek that no longer ends at the victim means some cleanup spliced
        // it out; the guard keeps its address from being reused by a new leaf meanwhile.
        if (s.leaf != victim) {
          CMR_DS_NM_TREE_EVENT(kEraseFinishedByOther);
          return true;
        }
        if (cleanup(key, s)) return true;
      }
    }
  }

  /// True if a key equivalent to `key` was in the set at some point during the call.
  /// Lock-free (see the class comment); takes no lock, writes no shared memory and never
  /// helps.
  bool contains(const K& key) const {
    cmr::Guard<Node> guards[2];
    // The two guards trade roles by pointer (see HashSet::contains for why not std::swap).
    cmr::Guard<Node>* here = &guards[0];
    cmr::Guard<Node>* next = &guards[1];
    // (2) seq_cst: S itself is kept alive by root_ and never leaves R's left edge.
    Node* node = address(here->protect(s_->left));
    for (;;) {
      CMR_DS_NM_TREE_EVENT(kContainsStep);
      // (2) seq_cst: node is guarded, so a child that protect validates against node's
      // edge is alive, whether or not node is still in the tree (see the class comment).
      Node* child = address(next->protect(child_edge(key, node)));
      if (child == nullptr) return holds(node, key);
      std::swap(here, next);
      node = child;
    }
  }

 private:
  // Sentinel ranks order after every real key: inf0 < inf1 < inf2.
  enum class Rank : std::uint8_t { kKey = 0, kInf0 = 1, kInf1 = 2, kInf2 = 3 };

  static constexpr bool kCopiesRoutingKeys = std::is_copy_constructible_v<K>;
  struct NoOwner {};

  struct Node {
    // A sentinel, or an internal node that join() fills in before publishing it.
    explicit Node(Rank r) noexcept : rank(r) {}
    // A leaf holding a real key.
    Node(std::in_place_t, K&& k) : rank(Rank::kKey), key(std::move(k)) {
      if constexpr (!kCopiesRoutingKeys) owner = this;
    }

    cmr::Atomic<Node> left;   // both null in a leaf; low bits: flag, tag
    cmr::Atomic<Node> right;
    // Written only while the node is private (join() may refill a never-published node).
    Rank rank;
    // Move-only K: the node whose `key` this node routes on (a leaf, or this leaf itself);
    // this pointer is what keeps that leaf alive. Unused when routing keys are copied.
    [[no_unique_address]] std::conditional_t<kCopiesRoutingKeys, NoOwner, const Node*> owner{};
    // A real leaf's key; with a copyable K also an internal node's routing key. Not const
    // only so that insert can destroy the key of a leaf it never published.
    std::optional<K> key;
  };
  static_assert(alignof(Node) >= 4, "two low bits of a Node* carry the flag and the tag");

  static constexpr std::uintptr_t kFlag = 1;
  static constexpr std::uintptr_t kTag = 2;
  static std::uintptr_t bits(Node* p) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) & (kFlag | kTag);
  }
  static bool is_flagged(Node* p) noexcept { return (bits(p) & kFlag) != 0; }
  static bool is_tagged(Node* p) noexcept { return (bits(p) & kTag) != 0; }
  static Node* address(Node* p) noexcept {
    return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(p) & ~(kFlag | kTag));
  }
  static Node* flagged(Node* p) noexcept {
    return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(p) | kFlag);
  }
  static Node* tagged(Node* p) noexcept {
    return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(p) | kTag);
  }

  // The routing key of a node of rank kKey.
  static const K& key_of(const Node* n) noexcept {
    if constexpr (kCopiesRoutingKeys) {
      return *n->key;
    } else {
      return *n->owner->key;
    }
  }
  // (rank, key) order: a real key goes left of every sentinel.
  bool goes_left(const K& key, const Node* n) const {
    return n->rank != Rank::kKey || less_(key, key_of(n));
  }
  static cmr::Atomic<Node>& left_or_right(bool left, Node* n) noexcept {
    return left ? n->left : n->right;
  }
  cmr::Atomic<Node>& child_edge(const K& key, Node* n) const {
    return left_or_right(goes_left(key, n), n);
  }
  // True if the leaf holds a key equivalent to `key`.
  bool holds(const Node* leaf, const K& key) const {
    return leaf->rank == Rank::kKey && !less_(key, key_of(leaf)) && !less_(key_of(leaf), key);
  }

  // Fills in a private internal node so that it routes between `fresh` and `leaf`: the
  // larger of the two goes right, and its (rank, key) becomes the routing key.
  void join(Node* internal, Node* fresh, Node* leaf) {
    const bool fresh_left = goes_left(*fresh->key, leaf);
    Node* larger = fresh_left ? leaf : fresh;
    internal->rank = larger->rank;
    if constexpr (kCopiesRoutingKeys) {
      if (larger->rank == Rank::kKey) {
        internal->key.emplace(*larger->key);
      } else {
        internal->key.reset();
      }
    } else {
      internal->owner = larger->rank == Rank::kKey ? larger : nullptr;
    }
    // relaxed: internal is private until (4) publishes it.
    internal->left.store(fresh_left ? fresh : leaf, std::memory_order_relaxed);
    internal->right.store(fresh_left ? leaf : fresh, std::memory_order_relaxed);
  }

  // A seek record and the guards that hold it. Each role's node is either R or S (kept by
  // root_) or held by that role's guard; the guards rotate by pointer as the seek descends.
  struct Seek {
    cmr::Guard<Node> slots[5];
    cmr::Guard<Node>* g_ancestor = &slots[0];
    cmr::Guard<Node>* g_successor = &slots[1];
    cmr::Guard<Node>* g_parent = &slots[2];
    cmr::Guard<Node>* g_leaf = &slots[3];
    cmr::Guard<Node>* g_current = &slots[4];
    Node* ancestor = nullptr;
    Node* successor = nullptr;
    Node* parent = nullptr;
    Node* leaf = nullptr;
  };

  // The paper's seek: descends to the leaf for `key`, recording parent and leaf, and as
  // ancestor -> successor the last untagged edge above the parent -> leaf edge.
  void seek(const K& key, Seek& s) const {
    s.ancestor = r_;
    s.successor = s_;
    s.parent = s_;
    // (1) seq_cst: S never leaves R's left edge, so it needs no guard.
    Node* parent_field = s.g_leaf->protect(s_->left);
    s.leaf = address(parent_field);
    // (1) seq_cst: the leaf is guarded, see the class comment.
    Node* current_field = s.g_current->protect(child_edge(key, s.leaf));
    Node* current = address(current_field);
    while (current != nullptr) {
      CMR_DS_NM_TREE_EVENT(kSeekStep);
      if (!is_tagged(parent_field)) {
        // ancestor := parent (its guard moves along), successor := leaf (a second guard).
        std::swap(s.g_ancestor, s.g_parent);
        s.g_successor->set(s.leaf);
        s.ancestor = s.parent;
        s.successor = s.leaf;
      } else {
        CMR_DS_NM_TREE_EVENT(kSeekSkippedTag);
      }
      // parent := leaf, leaf := current; the freed guard takes the next child.
      std::swap(s.g_parent, s.g_leaf);
      std::swap(s.g_leaf, s.g_current);
      s.parent = s.leaf;
      s.leaf = current;
      parent_field = current_field;
      // (1) seq_cst: as above.
      current_field = s.g_current->protect(child_edge(key, current));
      current = address(current_field);
    }
  }

  // The paper's cleanup: freezes the parent's edge that stays, then swings the ancestor's
  // edge from the successor to the child that edge holds, with its flag. True if this
  // call's splice landed. Reads only nodes of the seek record, all held.
  bool cleanup(const K& key, Seek& s) {
    cmr::Atomic<Node>& successor_edge = child_edge(key, s.ancestor);
    const bool left = goes_left(key, s.parent);
    cmr::Atomic<Node>* child = &left_or_right(left, s.parent);
    cmr::Atomic<Node>* sibling = &left_or_right(!left, s.parent);
    // (3) seq_cst: if our own edge is not flagged, the leaf being deleted is the sibling
    // (this call helps it), so our edge is the one that stays.
    if (!is_flagged(child->load())) {
      CMR_DS_NM_TREE_EVENT(kCleanupKeptChild);
      sibling = child;
    }
    // (6) seq_cst: tag the edge that stays; once tagged it never changes. The node it
    // holds stays alive through the guarded parent's frozen edge until (7) relinks it.
    Node* kept = sibling->load();
    while (!is_tagged(kept) && !sibling->compare_exchange_weak(kept, tagged(kept))) {
    }
    CMR_DS_NM_TREE_EVENT(kTagged);
    if (is_flagged(kept)) CMR_DS_NM_TREE_EVENT(kCleanupCarriedFlag);
    Node* expected = s.successor;
    Node* replacement = is_flagged(kept) ? flagged(address(kept)) : address(kept);
    // (7) seq_cst: splices successor..parent out and hands on the kept child. Fails if the
    // ancestor's edge changed, or got flagged or tagged. Linearisation point of the erase
    // of the flagged leaf removed here.
    if (successor_edge.compare_exchange_strong(expected, replacement)) return true;
    CMR_DS_NM_TREE_EVENT(kCleanupLost);
    return false;
  }

  // The only root of the tree: R, and through it every node.
  cmr::Root<Node> root_;
  // Plain copies for the fast paths; root_ keeps R alive, and R's left edge never changes.
  Node* r_ = nullptr;
  Node* s_ = nullptr;
  [[no_unique_address]] Less less_;
};

}  // namespace cmr::ds

#undef CMR_DS_NM_TREE_EVENT
