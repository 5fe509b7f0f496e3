// cmr/ds/ms_queue.hpp: MsQueue<T>, an unbounded multi-producer/multi-consumer FIFO queue
// whose nodes are reclaimed by cmr.
//
// Responsibility: the Michael-Scott algorithm on top of the public cmr API only, as a
// sample of how a lock-free structure is written when nobody retires anything.
//
// Invariants:
//  - The list from head_ to the last node is the queue; head_ is a dummy whose value has
//    been moved out (or never existed). Every other node on it holds an engaged value.
//  - A node's `next` goes from null to its successor once, and, after the node was
//    dequeued (it stopped being the dummy), to the node itself; nothing else writes it.
//  - tail_ is head_ or a later node (never a dequeued one); it lags the last node by at
//    most one step per concurrent push, and any thread that sees it lag helps it forward.
//  - A node's value is touched (moved out, then reset) only by the one thread whose CAS
//    made that node the new head, and by ~MsQueue.
//  - A Node destructor destroys only its own value; it never follows `next` (cmr runs
//    destructors on its collector thread, in no order).
#pragma once

#include <atomic>
#include <optional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>

namespace cmr::ds {

/// An unbounded lock-free MPMC FIFO queue: Michael & Scott's non-blocking queue, a singly
/// linked list with a dummy node at the head.
///
/// M. M. Michael and M. L. Scott. "Simple, Fast, and Practical Non-Blocking and Blocking
/// Concurrent Queue Algorithms." PODC 1996, pp. 267-275.
///
/// T may be move-only. It must be move constructible; it need not be default
/// constructible or copyable.
///
/// Moving values out. The value of the node that becomes the new dummy is moved out
/// *after* the head CAS succeeded. Values are kept in std::optional<T> so that:
///  - only the CAS winner touches next->value (the losers never read it: a copy taken
///    before the CAS, as the paper does, would need T to be copyable, and moving before
///    the CAS could destroy an element another thread is about to win);
///  - the winner resets the optional right after the move: the moved-from shell is
///    destroyed at once, on the popping thread, and the node's destructor (run later by
///    the collector) finds nothing left to destroy, so nothing is destroyed twice;
///  - a node whose value was never moved out (still in the queue when ~MsQueue runs)
///    is emptied by ~MsQueue on the destroying thread.
/// If T's move constructor throws inside try_pop, the element has already been dequeued:
/// it is lost (destroyed with its node by the collector) and the exception propagates.
///
/// Self-linking dequeued nodes. This goes beyond the paper (java.util.concurrent's
/// ConcurrentLinkedQueue does the same): after the head CAS, the winner points the old
/// dummy's `next` at the old dummy itself. cmr's scan is conservative: a stale word that
/// happens to point at a dequeued node (say, padding bytes of recycled memory) keeps that
/// node alive, and through the paper's `next` it would keep every node dequeued after it:
/// an unbounded chain, the classic worst case for conservative collectors (H.-J. Boehm,
/// "Bounding Space Usage of Conservative Garbage Collectors", POPL 2002). With the
/// self-link a false reference retains one node. Threads that still hold the old dummy read the self-link as "this node is no
/// longer in the queue" and start over; this is safe because head_ never passes tail_, so
/// tail_ never holds a dequeued node (see try_pop) and nobody links after one.
///
/// Destruction. ~MsQueue destroys the remaining elements synchronously, on the calling
/// thread, before it returns (like a standard container). The nodes themselves become
/// unreachable when head_ and tail_ unregister, and are freed by the next cmr cycle
/// (observable with cmr::collect()). ~MsQueue must not run concurrently with any other
/// member call.
///
/// Synchronization (labels refer to the comments in the code):
///
///   | op  | where                         | order   | pairs with                      |
///   |-----|-------------------------------|---------|---------------------------------|
///   | (1) | push: protect(tail_)          | acquire | (3), (5), (8): t is initialised |
///   | (2) | push: t->next.load            | acquire | (4): next is initialised before |
///   |     |                               |         | (3) hands it on through tail_   |
///   | (3) | push: help tail_ forward      | release | (1)                             |
///   | (4) | push: link n after t          | release | (2), (7), (10): n's value       |
///   | (5) | push: swing tail_ to n        | release | (1)                             |
///   | (6) | try_pop: protect(head_)       | acquire | (9): h's fields                 |
///   | (7) | try_pop: protect(h->next)     | acquire | (4): next->value is constructed |
///   | (8) | try_pop: help tail_ forward   | release | (1)                             |
///   | (9) | try_pop: head_ CAS to next    | release | (6): hands on what (7) acquired |
///   | (10)| empty: h->next.load          | acquire | (4)                             |
///   | (11)| try_pop: self-link h->next    | relaxed | - (publishes nothing)           |
///
/// Loads that only feed a comparison or a CAS's expected value (the consistency re-reads of
/// head_/tail_, try_pop's tail_ load) are relaxed: nothing is read through them. The
/// winner's move out of next->value needs no ordering of its own: only the winner touches
/// it, and cmr's handshake orders the winner's writes before the collector destroys the node.
///
/// No ABA. Every CAS here compares a pointer the thread holds in a cmr::Guard (h, t) or
/// null. A guarded node is reachable from a root, so cmr cannot free it and the allocator
/// cannot hand its address to a new node while the CAS is pending; and a dequeued node is
/// never enqueued again (push always makes a fresh node). So "head_ still equals h" really
/// means that no pop succeeded since h was read, and "t->next is still null" means t is
/// still the last node (a dequeued node's `next` is never null). No counters or tagged
/// pointers are needed.
///
/// Progress:
///  - push: lock-free (a CAS fails only because another push succeeded); it allocates
///    through cmr::make, which is as lock-free as the backing allocator.
///  - try_pop: lock-free (a retry means another push or pop made progress).
///  - empty: lock-free (Guard::protect re-reads head_ while a concurrent pop moves it).
/// As with every cmr structure, a collection briefly pauses all registered threads (the
/// signal handshake and process creation); the guarantees above hold between pauses.
///
/// Memory. A dequeued node becomes garbage as soon as no guard holds it. Thanks to the
/// self-link, a thread stalled inside push/try_pop keeps only the (at most two) nodes its
/// own guards hold, not the nodes dequeued after them.
template <class T>
class MsQueue {
  static_assert(std::is_move_constructible_v<T>, "MsQueue<T> needs a move constructible T");
  static_assert(!std::is_reference_v<T> && std::is_destructible_v<T>);

 public:
  MsQueue() {
    cmr::Guard<Node> guard;
    Node* dummy = cmr::make<Node>(guard);
    // relaxed: the queue is published to other threads by whatever synchronisation hands
    // them its address; until then nobody reads head_ or tail_.
    head_.store(dummy, std::memory_order_relaxed);
    tail_.store(dummy, std::memory_order_relaxed);
  }

  // Destroys the elements still queued; see the class comment.
  ~MsQueue() {
    // No guards needed: head_ is a Root and we do not unlink anything, so every node on
    // the list stays reachable from it until the members are destroyed. relaxed: the
    // caller guarantees every other member call happened-before this destructor.
    Node* n = head_.load(std::memory_order_relaxed);
    for (n = n->next.load(std::memory_order_relaxed); n != nullptr;
         n = n->next.load(std::memory_order_relaxed)) {
      n->value.reset();
    }
  }

  MsQueue(const MsQueue&) = delete;
  MsQueue& operator=(const MsQueue&) = delete;

  /// Appends `value`. Lock-free. Throws what cmr::make throws (std::bad_alloc, cmr::Error
  /// after cmr::shutdown) and T's move constructor's exceptions; the queue is then
  /// unchanged.
  void push(T value) {
    cmr::Guard<Node> new_guard;
    Node* n = cmr::make<Node>(new_guard, std::in_place, std::move(value));
    cmr::Guard<Node> tail_guard;
    for (;;) {
      // (1) acquire: pairs with (3), (5), (8).
      Node* t = tail_guard.protect(tail_, std::memory_order_acquire);
      // (2) acquire: pairs with (4). `next` is not dereferenced here, but (3) may publish
      // it through tail_, and readers of tail_ must then see it initialised. It needs no
      // guard: t is guarded and next is reachable through it (or is t itself).
      Node* next = t->next.load(std::memory_order_acquire);
      // relaxed: a consistency check from the paper; nothing is read through it.
      if (tail_.load(std::memory_order_relaxed) != t) continue;
      // Self-linked: t was dequeued, so tail_ has moved on already.
      if (next == t) continue;
      if (next != nullptr) {
        // Tail lags behind the last node: help it forward, then retry.
        // (3) release: pairs with (1).
        tail_.compare_exchange_strong(t, next, std::memory_order_release,
                                      std::memory_order_relaxed);
        continue;
      }
      Node* expected = nullptr;
      // (4) release: pairs with (2), (7), (10); publishes n's value. Linearisation point.
      if (t->next.compare_exchange_strong(expected, n, std::memory_order_release,
                                          std::memory_order_relaxed)) {
        // (5) release: pairs with (1). Failure means another thread already helped.
        tail_.compare_exchange_strong(t, n, std::memory_order_release,
                                      std::memory_order_relaxed);
        return;
      }
    }
  }

  /// Removes and returns the oldest element, or std::nullopt if the queue was empty.
  /// Lock-free.
  std::optional<T> try_pop() {
    cmr::Guard<Node> head_guard;
    cmr::Guard<Node> next_guard;
    for (;;) {
      // (6) acquire: pairs with (9).
      Node* h = head_guard.protect(head_, std::memory_order_acquire);
      // (7) acquire: pairs with (4). Guarded: the winner dereferences next below; h is
      // guarded, so protect's validation against h->next is enough.
      Node* next = next_guard.protect(h->next, std::memory_order_acquire);
      // relaxed: the paper's consistency check; head_ moved means our view is stale. A
      // self-linked h (next == h) always fails it.
      if (next == h || head_.load(std::memory_order_relaxed) != h) continue;
      // Linearisation point of an empty pop: (7) read null while h was the head.
      if (next == nullptr) return std::nullopt;
      // relaxed: only compared and used as the CAS's expected value. It is never older
      // than h's position: the pop that made h the head read tail_ past h before its
      // release CAS (9), which our acquire (6) read, and reads of one atomic ordered by
      // happens-before never go back in its modification order. So t != h below means
      // tail_ is already past h, and head_ never overtakes tail_.
      Node* t = tail_.load(std::memory_order_relaxed);
      if (h == t) {
        // A push linked `next` but has not swung tail_ yet. Help, so that head_ never
        // passes tail_.
        // (8) release: pairs with (1).
        tail_.compare_exchange_strong(t, next, std::memory_order_release,
                                      std::memory_order_relaxed);
        continue;
      }
      // (9) release: pairs with (6); hands on next's contents, which (7) acquired from a
      // different atomic. Linearisation point of a successful pop.
      if (head_.compare_exchange_strong(h, next, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        // (11) relaxed: see "Self-linking dequeued nodes" in the class comment.
        h->next.store(h, std::memory_order_relaxed);
        // We alone made `next` the dummy, so we alone may touch its value. Reset right
        // away: the moved-from shell is destroyed here, and the node's destructor later
        // finds an empty optional.
        std::optional<T> result(std::in_place, std::move(*next->value));
        next->value.reset();
        return result;
      }
    }
  }

  /// True if the queue was empty at some point during the call. Lock-free.
  bool empty() const {
    cmr::Guard<Node> guard;
    for (;;) {
      // acquire: pairs with (9); h's next field is initialised.
      Node* h = guard.protect(head_, std::memory_order_acquire);
      // (10) acquire: pairs with (4). Nothing is read through the pointer, but a caller
      // that sees `false` gets the same happens-before with the push as a pop would (e.g.
      // it may read what the producer wrote before pushing).
      Node* next = h->next.load(std::memory_order_acquire);
      if (next != h) return next == nullptr;
      // h was dequeued (self-linked) meanwhile: look at the new head.
    }
  }

 private:
  struct Node {
    Node() = default;  // the initial dummy
    template <class U>
    explicit Node(std::in_place_t, U&& v) : value(std::in_place, std::forward<U>(v)) {}

    // Engaged from push until the pop that makes this node the dummy; see the class
    // comment for who may touch it.
    std::optional<T> value;
    cmr::Atomic<Node> next;
  };

  // Separate cache lines: producers hammer tail_, consumers head_.
  alignas(64) cmr::Root<Node> head_;
  alignas(64) cmr::Root<Node> tail_;
};

}  // namespace cmr::ds
