// cmr/ds/skip_list_set.hpp: SkipListSet<K>, a lock-free ordered set (Fraser's skip list, as
// presented by Herlihy and Shavit) with ordered range scans, whose nodes are reclaimed by cmr.
//
// Responsibility: the lock-free skip list on top of the public cmr API only.
//
// Invariants:
//  - Level 0 is a singly linked list sorted strictly by key (Less). A node is in the set iff
//    it is reachable at level 0 from the head and its level-0 link is unmarked.
//  - Level l > 0 holds only nodes of height > l, in non-decreasing key order (a key repeats
//    only on marked nodes that wait to be unlinked); it is a shortcut, never the truth.
//  - The low bit of a link is its mark. An eraser marks every link of its node, top level
//    first, level 0 last; a marked link never changes again, and a node is unlinked at a
//    level only once its link at that level is marked.
//  - Every value ever stored in a level-0 link points to a node with a larger key (or is
//    null), so any walk along level-0 links, even through unlinked nodes, sees strictly
//    increasing keys.
//  - A node's key, height and `upper` pointer (to its own trailing links) never change once
//    the node is published.
//  - The head array is one tracked object reached from head_root_, so it lives as long as
//    the set; head_ is a plain copy of that pointer for the fast paths.
//  - A Node destructor destroys only its key; it never follows a link.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>
#include <cmr/ds/detail/marked_ptr.hpp>
#include <cmr/ds/detail/random_height.hpp>

namespace cmr::ds {

/// A lock-free ordered set of unique keys: a skip list whose every level is a Harris list
/// with deletion marks in the low bit of each link, plus ordered range scans.
///
/// K. Fraser. "Practical lock-freedom." PhD thesis, University of Cambridge, 2004
/// (Technical Report UCAM-CL-TR-579), section 4.3.3.
/// M. Herlihy and N. Shavit. "The Art of Multiprocessor Programming", section 14.4
/// (LockFreeSkipList): find(), insert() (add), erase() (remove) and the wait-free-style
/// contains() that walks through marked nodes without helping. Two of Fraser's refinements
/// are kept that the textbook leaves out: before each upper-level link attempt insert
/// points the new node's link at the current successor (so a retried level does not keep a
/// stale one), and insert stops building a tower as soon as the node is being erased.
///
/// Algorithm. A node of height h (1 <= h <= MaxLevel, geometric with p = 1/2 from a
/// per-thread xorshift64* generator) is linked at levels 0..h-1. find(key) walks down from
/// the highest level in use, at each level moving right while the next key is smaller,
/// unlinking every marked node it meets (restarting from the top if that CAS fails) and
/// recording the window (pred, succ) of that level. insert links the new node at level 0
/// (its linearisation point), then at each higher level, re-running find whenever a window
/// went stale. erase marks the node's links top-down; marking level 0 is its linearisation
/// point; a final find unlinks it. contains and for_each_in never write shared memory.
///
/// K may be move-only. Less orders the keys (equivalence is !less(a, b) && !less(b, a)) and
/// must not throw. MaxLevel bounds the tower height: choose about log2 of the largest
/// expected size (the default 24 serves up to ~16 million keys; a larger set still works,
/// with longer walks on the top level).
///
/// Keys and destruction. A key lives in its node. A published node may still be read by
/// concurrent traversals after it is erased, so an erased key is destroyed by the collector,
/// on its thread, once no guard reaches the node (observable with cmr::collect()). For the
/// same reason ~SkipListSet does not destroy the remaining keys itself: it drops the only
/// root of the head array, and the next cmr cycle destroys every node and its key. K's
/// destructor must therefore be safe to run on another thread and must not touch tracked
/// objects. A key passed to insert() that is not inserted is destroyed before insert
/// returns (its moved-from shell may go with a node the collector frees).
///
/// Layout. A node holds its key, its level-0 link and, for height h > 1, its h-1 upper
/// links (the textbook's `next[]`) in the same object: a node of height h is a
/// TallNode<h>, whose `upper` points at its own trailing links. A step at an upper level
/// therefore costs one cache miss, not two (a separate array of upper links measured 0.45x
/// the same algorithm with the links in the node, at 10^6 keys). Half the nodes have height
/// 1 and carry no upper links at all.
///
/// Synchronization (labels refer to the comments in the code):
///
///   | op  | where                              | order   | pairs with                   |
///   |-----|------------------------------------|---------|------------------------------|
///   | (1) | find: protect(pred / cur link)     | seq_cst | (3), (4), (7): the node's    |
///   |     |                                    |         | key, links, upper links; in  |
///   |     |                                    |         | S with (5), (7), (8)         |
///   | (2) | contains, for_each_in: protect     | acquire | (3), (4), (7)                |
///   | (3) | find: unlink a marked node         | release | (1), (2): hands on the       |
///   |     |                                    |         | successor that (1) acquired  |
///   | (4) | insert: link n at level 0          | release | (1), (2): n's key, height,   |
///   |     |                                    |         | links and upper links        |
///   | (5) | erase: mark a link (level 0 last)  | seq_cst | (8), in S (see below)        |
///   | (6) | insert: aim n's level-l link at    | relaxed | - (published by (7))         |
///   |     | the current successor              |         |                              |
///   | (7) | insert: link n at level l >= 1     | seq_cst | (1), (2); in S with (5), (8) |
///   | (8) | insert: re-read n's level-l link   | seq_cst | (5), in S (see below)        |
///   | (9) | erase / insert: read an own link   | relaxed | - (only a CAS's expected     |
///   |     | before a CAS on it                 |         | value)                       |
///
/// (4) publishes a node; (7) publishes it at an upper level. A node's link at level l is
/// read only by walks that reached the node at level l (and, as a CAS's expected value, by
/// its inserter and erasers), so what the inserter wrote there before, relaxed (its
/// initial stores, (6)), is visible to them. Every later write to a link is a CAS that
/// either releases ((3), (4), (7)) or marks the pointer already there ((5)); a CAS continues
/// the release sequence of the write before it, so a walker whose acquire load sees a
/// marked value still synchronizes with the release that stored the pointer. levels_ is a
/// relaxed hint: a stale, smaller value only starts a walk lower, and a thread that found a
/// node through (4) sees levels_ at least that node's height by coherence, since the
/// inserter raised it before (4).
///
/// Why (5), (7), (8) and (1) are seq_cst: an erase may mark level l of a node whose
/// inserter has not linked that level yet; the inserter's (7) may then link a node that is
/// already marked there. Either the inserter's (8) sees the mark (and it runs find to
/// unlink the node), or (8) precedes (5) in the single total order S, and then the
/// eraser's final find reads that level after (7), meets n there and unlinks it (unless a
/// newer node with the same key stands in front of n; the next find for a larger key then
/// does). Without S a marked node could stay linked at an upper level until some later
/// find passed it: retained memory and longer walks, never a wrong answer. On
/// x86-64 these orders cost nothing over acquire/release (CAS is a locked instruction and
/// a seq_cst load an ordinary load).
///
/// What is guarded, and why that is enough. cmr frees a node only when no guard, root or
/// reachable tracked object points to it; being reached from a guarded node is enough only
/// while the link still holds the pointer. A walk (find, contains, for_each_in) holds three
/// guards hand over hand, as a Harris list does: pred (the node owning the link being
/// read; the head array needs none, head_root_ keeps it), cur, and cur's successor, each
/// protected before the one it was read from is let go. Going down a level keeps pred.
/// What the walk leaves behind is not used again, except what an operation saves:
///  - insert needs, for every level l below its node's height, the window (preds[l],
///    succs[l]) for the link CAS (4)/(7) it may attempt long after the walk moved on. Each
///    saved pred and succ gets a guard of its own (2 x height guards, made before the first
///    find so that no later step can fail to get one). A pred needs one because, once
///    unlinked by another thread, nothing else reaches it: freed and reused, the CAS would
///    write into another node. A succ needs one because its address, freed and reused by a
///    new node linked after pred, would let the CAS succeed against a different node (ABA)
///    and break the order. Levels at or above the height are never saved: the expected
///    height is 2, so an insert holds about 4 window guards, 2 x MaxLevel at worst.
///  - erase keeps only its victim, which the walk's cur guard holds until the final find.
///  - contains keeps nothing; for_each_in keeps the node it stands on and its successor
///    (two guards; the descent's pred guard is released when the level-0 scan starts).
/// Every pointer a CAS compares against, or stores, is therefore guarded, or is held in
/// the link of a guarded node (the victim's and n's own successors: the CAS succeeds only
/// if the link still holds it, and then the guarded node keeps it alive). A guard costs a
/// pop and a push on the calling thread's own slot stack (no shared write, no fence); a
/// thread may hold any number (its slots grow in blocks on demand and stay with it, each
/// one more word for the collector to read in a pause; cmr/detail/thread_record.hpp). An
/// insert of height h holds 3 + 2h + 2 (the new node and its array) guards, erase and
/// contains 3, for_each_in 3 and then 2 (plus what f takes).
///
/// No ABA. Since every CAS's target link lies in a guarded node (or the head array) and its
/// expected value is guarded as above, cmr cannot free either while the CAS is pending,
/// and no new node can appear at their addresses; an erased node is never inserted again
/// (insert always makes a fresh node). So a link that still holds cur, unmarked, means its
/// owner is not deleted at that level and cur is still its successor there: exactly the
/// condition the textbook's CAS needs, with no version counters. Guards keep pointers with
/// the mark bit set as loaded; a marked pointer points inside its node and keeps it alive.
/// The mark is stripped before any dereference.
///
/// Range scans. for_each_in(lo, hi, f) walks level 0 through marked nodes (a marked node's
/// level-0 link is frozen and leads on in key order) and reports each node that was
/// unmarked when the scan read its link. Guarantees, with other threads inserting and
/// erasing: keys come in strictly increasing order (level-0 links only point to larger
/// keys), so none is reported twice; every key present during the whole scan is reported
/// (each node the scan reaches was in the level-0 list at some moment of the scan, and
/// two such consecutive nodes were adjacent there at that moment, so the scan cannot step
/// over a key that stays in the list); a key inserted or erased during the scan may or
/// may not be reported.
///
/// Progress:
///  - insert, erase: lock-free (a failed CAS or a restart means another operation
///    succeeded on the same links); insert allocates through cmr::make.
///  - contains: never restarts, never writes shared memory and never helps: each hop moves
///    right to a larger key or down a level, so it takes at most MaxLevel descents plus one
///    hop per node passed, bounded when the key space is finite (the textbook's
///    wait-freedom). Each hop is one Guard::protect, which re-reads its link while a
///    concurrent update changes it, so in general contains is lock-free.
///  - for_each_in: the same walk, then one level-0 hop per node in [lo, hi) it passes,
///    each to a strictly larger key: lock-free, wait-free per step up to protect's
///    re-reads.
/// As with every cmr structure, a collection briefly pauses all registered threads; the
/// guarantees above hold between pauses.
///
/// Memory. An erased node becomes garbage once it is unlinked at every level and no guard
/// holds it. It cannot be cut loose from its successors: a walker standing on it must be
/// able to walk on. So a stale word that falsely references an erased node (cmr's scan is
/// conservative) also keeps the erased nodes that followed it; such chains' keys increase,
/// so each is no longer than the key range past that node. A for_each_in whose f blocks
/// keeps the node it stands on, and so what that node reaches, alive.
template <class K, class Less = std::less<K>, std::size_t MaxLevel = 24>
class SkipListSet {
  static_assert(std::is_move_constructible_v<K>, "SkipListSet<K> needs a move constructible K");
  static_assert(!std::is_reference_v<K> && std::is_destructible_v<K>);
  static_assert(MaxLevel >= 1 && MaxLevel <= 64, "MaxLevel must be in [1, 64]");

  struct Node;
  using Link = cmr::Atomic<Node>;

 public:
  static constexpr std::size_t kMaxLevel = MaxLevel;

  SkipListSet() : SkipListSet(Less()) {}
  explicit SkipListSet(Less less) : less_(std::move(less)) {
    cmr::Guard<Link> guard;
    head_ = cmr::make_array<Link>(guard, MaxLevel);
    // relaxed: the set reaches other threads through whatever hands them its address.
    head_root_.store(head_, std::memory_order_relaxed);
  }

  // The remaining keys are destroyed by the collector; see the class comment.
  ~SkipListSet() {
    // Dropping the root (it unregisters right after) leaves the head array and every node
    // unreachable; the next cycle destroys them. Storing null first says so explicitly.
    head_root_.store(nullptr, std::memory_order_relaxed);
  }

  SkipListSet(const SkipListSet&) = delete;
  SkipListSet& operator=(const SkipListSet&) = delete;

  /// Inserts `key` unless an equivalent key is present. Returns true if it inserted.
  /// Lock-free. Throws what cmr::make (or taking a guard) throws; the set is then
  /// unchanged.
  bool insert(K key) {
    const unsigned height = detail::random_height<MaxLevel>();
    raise_levels(height);
    Walk w;
    Path path(height);
    cmr::Guard<Node> node_guard;
    Node* n = nullptr;  // made once, on the first miss, and reused by every retry
    for (;;) {
      const K& k = n != nullptr ? n->key : key;
      Node* cur = find(k, w, &path, height);
      if (cur != nullptr && !less_(k, cur->key)) {
        // Present already. If n exists we lost a race to an equal key; n was never
        // published, so its key can be taken back and destroyed here rather than on the
        // collector thread.
        if (n != nullptr) {
          [[maybe_unused]] K discarded(std::move(n->key));
        }
        return false;
      }
      if (n == nullptr) n = make_node(node_guard, std::move(key), height);
      // relaxed: n is private until (4).
      for (unsigned l = 0; l < height; ++l) {
        n->link(l).store(path.succs[l], std::memory_order_relaxed);
      }
      Node* expected = path.succs[0];
      // (4) release: pairs with (1), (2); publishes n's key, height, links and array.
      // Fails if pred's link changed or got marked. Linearisation point of a successful
      // insert.
      if (link_of(path.preds[0], 0).compare_exchange_strong(expected, n, std::memory_order_release,
                                                            std::memory_order_relaxed)) {
        break;
      }
    }
    link_upper_levels(n, w, path);
    return true;
  }

  /// Removes the key equivalent to `key`, if present. Returns true if this call removed it.
  /// Lock-free.
  bool erase(const K& key) {
    Walk w;
    // The victim stays guarded by w.cur until the final find.
    Node* victim = find(key, w, nullptr, 0);
    if (victim == nullptr || less_(key, victim->key)) return false;
    for (unsigned level = victim->height; level-- > 1;) {
      Link& own = victim->link(level);
      // (9) relaxed: only the CAS's expected value.
      Node* next = own.load(std::memory_order_relaxed);
      while (!is_marked(next)) {
        // (5) seq_cst: see the class comment. A failure reloads next; a mark by a
        // concurrent eraser ends the loop.
        own.compare_exchange_weak(next, marked(next), std::memory_order_seq_cst,
                                  std::memory_order_relaxed);
      }
    }
    // (9) relaxed: as above.
    Node* next = victim->next0.load(std::memory_order_relaxed);
    for (;;) {
      // Another erase marked level 0 first: it removed the key (and this call returns
      // false just after its linearisation point).
      if (is_marked(next)) return false;
      // (5) seq_cst. Linearisation point of a successful erase: from here on the key is
      // logically absent. Fails if the successor changed (an insert or unlink right after
      // the victim) or another eraser marked it; look again.
      if (victim->next0.compare_exchange_strong(next, marked(next), std::memory_order_seq_cst,
                                                std::memory_order_relaxed)) {
        break;
      }
    }
    // Unlinks the victim at every level on which the walk meets it.
    find(key, w, nullptr, 0);
    return true;
  }

  /// True if a key equivalent to `key` was in the set at some point during the call. Takes
  /// no lock, writes no shared memory and never helps unlink (see the class comment for its
  /// progress).
  bool contains(const K& key) const {
    Walk w;
    Node* cur = lower_bound(key, w);
    return cur != nullptr && !less_(key, cur->key);
  }

  /// Calls f(const K&) for each key k with !less(k, lo) && less(k, hi), in increasing order.
  /// Safe while other threads insert and erase: every key present during the whole call is
  /// reported, none twice, in strictly increasing order; a key inserted or erased during
  /// the call may or may not be. The reference is valid during f's call only. f may call
  /// this set's methods (it runs holding two guards); an exception from f propagates and
  /// ends the scan.
  template <class F>
  void for_each_in(const K& lo, const K& hi, F&& f) const {
    if (!less_(lo, hi)) return;
    Walk w;
    Node* cur = lower_bound(lo, w);
    // Level 0 from here with two guards hand over hand: cur (w.cur) and its successor
    // (w.next). The descent's pred is not needed any more.
    w.pred->reset();
    while (cur != nullptr && less_(cur->key, hi)) {
      // (2) acquire: pairs with (3), (4), (7). cur is guarded, so protect's validation
      // against cur's link is enough to make next safe even if cur is unlinked meanwhile.
      Node* next = w.next->protect(cur->next0, std::memory_order_acquire);
      if (!is_marked(next)) f(std::as_const(cur->key));
      // Walk on even if cur is marked: its link is frozen and leads to larger keys.
      cur = unmarked(next);
      w.step();
    }
  }

  /// The number of levels walks start from: the largest height inserted so far (it never
  /// decreases). About log2 of the largest size the set had; at most MaxLevel.
  std::size_t levels_in_use() const noexcept { return levels(); }

 private:
  struct Node {
    Node(K&& k, unsigned h, Link* upper_links)
        : key(std::move(k)), height(h), upper(upper_links) {}

    Link& link(unsigned level) noexcept { return level == 0 ? next0 : upper[level - 1]; }

    // Not const only so that insert can take a key back out of a node it never published.
    K key;
    const unsigned height;    // after the key: a small key and the height share a word
    Link next0;               // level 0; low bit: this node is logically deleted
    Link* const upper;        // levels 1..height-1 (TallNode's own links), null if height == 1
  };

  // A node of height H > 1, its upper links inline (see "Layout" above). Its implicit
  // destructor destroys the key through Node's; the links are trivially destructible.
  template <unsigned H>
  struct TallNode : Node {
    TallNode(K&& k) : Node(std::move(k), H, more) {}
    Link more[H - 1];
  };

  // make() of the node type for `height`, protected by `g`.
  template <unsigned H>
  static Node* make_sized(cmr::Guard<Node>& g, K&& key) {
    if constexpr (H == 1) {
      return cmr::make<Node>(g, std::move(key), 1u, nullptr);
    } else {
      cmr::Guard<TallNode<H>> born;
      Node* n = cmr::make<TallNode<H>>(born, std::move(key));
      g.set(n);  // already protected by `born`, which lets go after this
      return n;
    }
  }
  template <std::size_t... I>
  static Node* make_node_of(cmr::Guard<Node>& g, K&& key, unsigned height,
                            std::index_sequence<I...>) {
    Node* n = nullptr;
    (void)((height == I + 1 ? (n = make_sized<I + 1>(g, std::move(key)), true) : false) || ...);
    return n;
  }
  static Node* make_node(cmr::Guard<Node>& g, K&& key, unsigned height) {
    return make_node_of(g, std::move(key), height, std::make_index_sequence<MaxLevel>{});
  }

  // The three hand-over-hand guards of a walk. Roles rotate by pointer: swapping Guard
  // objects goes through the stack on every hop (see HashSet::contains).
  struct Walk {
    cmr::Guard<Node> slots[3];
    cmr::Guard<Node>* pred = &slots[0];
    cmr::Guard<Node>* cur = &slots[1];
    cmr::Guard<Node>* next = &slots[2];

    // cur's successor becomes cur; the old cur is let go.
    void step() noexcept { std::swap(cur, next); }
    // cur becomes pred and its successor cur; the old pred is let go.
    void advance() noexcept {
      cmr::Guard<Node>* freed = pred;
      pred = cur;
      cur = next;
      next = freed;
    }
  };

  // The windows an insert keeps for the levels of its node (see the class comment): for
  // each level l < levels, preds[l] (null: the head) and succs[l] (null: the end), each
  // protected by its own guard. The guards are taken up front, so filling them never fails.
  struct Path {
    explicit Path(unsigned levels) {
      for (unsigned l = 0; l < levels; ++l) {
        pred_guards[l].emplace();
        succ_guards[l].emplace();
      }
    }
    // Called while the walk's guards protect both.
    void save(unsigned level, Node* pred, Node* succ) noexcept {
      preds[level] = pred;
      succs[level] = succ;
      pred_guards[level]->set(pred);
      succ_guards[level]->set(succ);
    }

    Node* preds[MaxLevel];
    Node* succs[MaxLevel];
    std::optional<cmr::Guard<Node>> pred_guards[MaxLevel];
    std::optional<cmr::Guard<Node>> succ_guards[MaxLevel];
  };

  static bool is_marked(Node* p) noexcept { return detail::is_marked(p); }
  static Node* marked(Node* p) noexcept { return detail::marked(p); }
  static Node* unmarked(Node* p) noexcept { return detail::unmarked(p); }

  // The link at `level` of pred, or of the head when pred is null.
  Link& link_of(Node* pred, unsigned level) const noexcept {
    return pred != nullptr ? pred->link(level) : head_[level];
  }

  unsigned levels() const noexcept {
    // relaxed: a hint; see the class comment.
    return levels_.load(std::memory_order_relaxed);
  }
  void raise_levels(unsigned height) noexcept {
    unsigned seen = levels_.load(std::memory_order_relaxed);  // relaxed: a hint
    while (seen < height &&
           !levels_.compare_exchange_weak(seen, height, std::memory_order_relaxed)) {
    }
  }

  // Herlihy-Shavit find: returns the first node at level 0 whose key is not less than `key`
  // and whose link was unmarked when read, or null; it stays protected by w.cur until w is
  // used again. Unlinks every marked node it meets (only insert and erase call it). With a
  // path, saves the window of each level below `keep`.
  Node* find(const K& key, Walk& w, Path* path, unsigned keep) {
  retry:
    Node* pred = nullptr;  // the head
    Node* cur = nullptr;
    w.pred->reset();
    for (unsigned level = std::max(levels(), keep); level-- > 0;) {
      Link* prev = &link_of(pred, level);
      // (1) seq_cst: pairs with (3), (4), (7); see the class comment for S. A marked value
      // means pred is being erased: the CAS on prev below, or the caller's, then fails.
      cur = unmarked(w.cur->protect(*prev, std::memory_order_seq_cst));
      for (;;) {
        if (cur == nullptr) break;
        // (1) as above. cur is guarded, so protect's validation against cur's link is
        // enough to make next safe.
        Node* next = w.next->protect(cur->link(level), std::memory_order_seq_cst);
        if (is_marked(next)) {
          // cur is being erased: unlink it at this level before going on. The CAS fails if
          // prev changed or pred got marked itself; restart from the top.
          Node* expected = cur;
          // (3) release: pairs with (1), (2); hands on next, which (1) acquired.
          if (!prev->compare_exchange_strong(expected, unmarked(next), std::memory_order_release,
                                             std::memory_order_relaxed)) {
            goto retry;
          }
          // The guard keeps the marked form it loaded; it protects the node all the same.
          cur = unmarked(next);
          w.step();
          continue;
        }
        if (!less_(cur->key, key)) break;
        pred = cur;
        prev = &cur->link(level);
        w.advance();
        cur = next;
      }
      // pred and cur are protected by w.pred (or are the head / null) and w.cur.
      if (level < keep) path->save(level, pred, cur);
    }
    return cur;
  }

  // Links n at levels 1..height-1 (n is already in the set, linked at level 0).
  void link_upper_levels(Node* n, Walk& w, Path& path) {
    for (unsigned level = 1; level < n->height; ++level) {
      Link& own = n->link(level);
      for (;;) {
        Node* succ = path.succs[level];
        // (9) relaxed: only the CAS's expected value.
        Node* was = own.load(std::memory_order_relaxed);
        if (is_marked(was)) return;  // an erase began: building on would only undo it
        // (6) relaxed: n reaches level-l readers only through (7), which releases this. The
        // CAS (not a store) keeps an eraser's mark, the only other write to this link.
        if (was != succ && !own.compare_exchange_strong(was, succ, std::memory_order_relaxed,
                                                        std::memory_order_relaxed)) {
          return;  // marked meanwhile
        }
        Node* expected = succ;
        // (7) seq_cst: release pairs with (1), (2); see the class comment for S.
        if (link_of(path.preds[level], level)
                .compare_exchange_strong(expected, n, std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
          break;
        }
        // The window went stale (pred's link changed or got marked): look again. If n was
        // erased meanwhile, its link here is marked and the next round stops.
        find(n->key, w, &path, n->height);
      }
      // (8) seq_cst: an erase that marked this link before (7) linked n here may have
      // finished its final find already; unlink n for it.
      if (is_marked(own.load(std::memory_order_seq_cst))) {
        find(n->key, w, nullptr, 0);
        return;
      }
    }
  }

  // The textbook's contains() walk: at each level skips marked nodes without unlinking
  // them and moves right while the key is smaller. Returns the first level-0 node whose key
  // is not less than `key` and whose link was unmarked when read, or null; it stays
  // protected by w.cur, its predecessor (or null) by w.pred.
  Node* lower_bound(const K& key, Walk& w) const {
    Node* pred = nullptr;  // the head
    Node* cur = nullptr;
    for (unsigned level = levels(); level-- > 0;) {
      // (2) acquire: pairs with (3), (4), (7).
      cur = unmarked(w.cur->protect(link_of(pred, level), std::memory_order_acquire));
      while (cur != nullptr) {
        // (2) acquire: as above; cur is guarded, so next is safe once validated.
        Node* next = w.next->protect(cur->link(level), std::memory_order_acquire);
        if (is_marked(next)) {
          // Walk on through a marked node: its link is frozen and leads on in key order.
          cur = unmarked(next);
          w.step();
          continue;
        }
        if (!less_(cur->key, key)) break;
        pred = cur;
        w.advance();
        cur = next;
      }
    }
    return cur;
  }

  // The only root of the head array and, through it, of every node.
  cmr::Root<Link> head_root_;
  // A plain copy for the fast paths; the Root above is what keeps the array alive.
  Link* head_ = nullptr;
  // Levels in use: walks start at this level. Only grows; a hint (see the class comment).
  std::atomic<unsigned> levels_{1};
  [[no_unique_address]] Less less_;
};

}  // namespace cmr::ds
