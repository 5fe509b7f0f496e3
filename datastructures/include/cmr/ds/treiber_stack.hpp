// cmr/ds/treiber_stack.hpp: TreiberStack<T>, an unbounded multi-producer/multi-consumer
// LIFO stack whose nodes are reclaimed by cmr.
//
// Responsibility: Treiber's stack on top of the public cmr API only.
//
// Invariants:
//  - head_ -> next -> ... -> null is the stack; every node on it holds an engaged value.
//  - A node's `next` is written while the node is private (before push's CAS publishes
//    it) and once more, to null, by the thread that popped it; nothing else writes it.
//  - A node's value is touched (moved out, then reset) only by the one thread whose CAS
//    unlinked that node, and by ~TreiberStack.
//  - A Node destructor destroys only its own value; it never follows `next` (cmr runs
//    destructors on its collector thread, in no order).
#pragma once

#include <atomic>
#include <optional>
#include <type_traits>
#include <utility>

#include <cmr/cmr.hpp>

namespace cmr::ds {

/// An unbounded lock-free MPMC LIFO stack.
///
/// R. K. Treiber. "Systems Programming: Coping with Parallelism." IBM Almaden Research
/// Center, Research Report RJ 5118, April 1986.
///
/// T may be move-only. It must be move constructible; it need not be default
/// constructible or copyable.
///
/// Moving values out. A node's value is kept in std::optional<T>. The thread whose CAS
/// swings head_ from h to h->next is the only one that ever touches h->value: it moves the
/// value out and resets the optional at once, so the moved-from shell is destroyed on that
/// thread and the node's destructor (run later by the collector) finds nothing to destroy.
/// Losers never read the value. If T's move constructor throws inside try_pop, the element
/// has already been removed: it is lost (destroyed with its node by the collector) and the
/// exception propagates.
///
/// Cutting popped nodes loose. The winner also sets h->next to null. cmr's scan is
/// conservative: a stale word that happens to point at a popped node (say, padding bytes
/// of recycled memory) keeps that node alive, and without the cut it would also keep every
/// node that was below it and has been popped since, a chain as long as the run. With the
/// cut a false reference retains one node. Losers still holding h may read the null; their CAS fails
/// anyway, because once h is popped head_ never holds h again (see No ABA).
///
/// Destruction. ~TreiberStack destroys the remaining elements synchronously, on the calling
/// thread, before it returns (like a standard container). The nodes become unreachable when
/// head_ unregisters and are freed by the next cmr cycle (observable with cmr::collect()).
/// ~TreiberStack must not run concurrently with any other member call.
///
/// Synchronization (labels refer to the comments in the code):
///
///   | op  | where                      | order   | pairs with                           |
///   |-----|----------------------------|---------|--------------------------------------|
///   | (1) | push: head_.load           | relaxed | - (only the CAS's expected value)    |
///   | (2) | push: head_ CAS old -> n   | release | (3): n's value and next              |
///   | (3) | try_pop: protect(head_)    | acquire | (2), and through release sequences   |
///   |     |                            |         | every earlier (2)                    |
///   | (4) | try_pop: head_ CAS h->next | relaxed | - (see below)                        |
///   | (5) | empty: head_.load          | acquire | (2)                                  |
///   | (6) | try_pop: h->next.load      | relaxed | - (h's fields were acquired by (3))  |
///   | (7) | try_pop: cut h->next       | relaxed | - (publishes nothing)                |
///
/// (4) can be relaxed because every write to head_ after construction is a
/// read-modify-write: a release sequence headed by a push's (2) therefore runs through
/// every later (2) and (4), and a popper whose (3) reads the value written by a (4)
/// synchronizes with the push that published that node.
///
/// No ABA. The classic Treiber ABA (h popped, freed, reallocated and pushed again between a
/// popper's read of h->next and its CAS) cannot happen: the popper holds h in a cmr::Guard,
/// so h stays reachable, cmr does not free it and its address cannot be reused while the
/// CAS is pending; and a popped node is never pushed again (push always makes a fresh
/// node). Once h is popped, head_ never holds h again (head_ returns to h only when a node
/// pushed on top of h is popped, and all of those are popped before h). So if head_ still
/// equals h, h is still on top and h->next, which does not change while h is on the stack,
/// is still its successor. push's expected value `old` is not guarded and may be freed and reused
/// before the CAS; that is harmless because push never dereferences it: if the CAS
/// succeeds, head_ held exactly `old` at that moment, which is what n->next says.
///
/// Progress:
///  - push: lock-free (a CAS fails only because another push or pop succeeded); it
///    allocates through cmr::make, which is as lock-free as the backing allocator.
///  - try_pop: lock-free.
///  - empty: wait-free (one load).
/// As with every cmr structure, a collection briefly pauses all registered threads; the
/// guarantees above hold between pauses.
template <class T>
class TreiberStack {
  static_assert(std::is_move_constructible_v<T>,
                "TreiberStack<T> needs a move constructible T");
  static_assert(!std::is_reference_v<T> && std::is_destructible_v<T>);

 public:
  TreiberStack() = default;

  // Destroys the elements still on the stack; see the class comment.
  ~TreiberStack() {
    // No guards needed: head_ is a Root and nothing is unlinked, so every node stays
    // reachable from it until the members are destroyed. relaxed: the caller guarantees
    // every other member call happened-before this destructor.
    for (Node* n = head_.load(std::memory_order_relaxed); n != nullptr;
         n = n->next.load(std::memory_order_relaxed)) {
      n->value.reset();
    }
  }

  TreiberStack(const TreiberStack&) = delete;
  TreiberStack& operator=(const TreiberStack&) = delete;

  /// Pushes `value` on top. Lock-free. Throws what cmr::make throws (std::bad_alloc,
  /// cmr::Error after cmr::shutdown) and T's move constructor's exceptions; the stack is
  /// then unchanged.
  void push(T value) {
    cmr::Guard<Node> guard;
    Node* n = cmr::make<Node>(guard, std::move(value));
    // (1) relaxed: never dereferenced, only the CAS's expected value.
    Node* old = head_.load(std::memory_order_relaxed);
    do {
      // relaxed: n is still private; (2) publishes it.
      n->next.store(old, std::memory_order_relaxed);
      // (2) release: pairs with (3), (5). Linearisation point.
    } while (!head_.compare_exchange_weak(old, n, std::memory_order_release,
                                          std::memory_order_relaxed));
  }

  /// Removes and returns the top element, or std::nullopt if the stack was empty.
  /// Lock-free.
  std::optional<T> try_pop() {
    cmr::Guard<Node> guard;
    for (;;) {
      // (3) acquire: pairs with (2).
      Node* h = guard.protect(head_, std::memory_order_acquire);
      // Linearisation point of an empty pop.
      if (h == nullptr) return std::nullopt;
      // (6) relaxed: h's fields were made visible by (3). h is guarded, so its successor
      // is reachable through it and needs no guard: we never dereference it. If another
      // popper already cut h loose we read null, and the CAS below fails.
      Node* next = h->next.load(std::memory_order_relaxed);
      Node* expected = h;
      // (4) relaxed: see the class comment. Linearisation point of a successful pop.
      if (head_.compare_exchange_weak(expected, next, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        // (7) relaxed: see "Cutting popped nodes loose" in the class comment.
        h->next.store(nullptr, std::memory_order_relaxed);
        // Only the CAS winner gets here for h. Reset at once so that the node's
        // destructor never sees a value (moved-from or not) a second time.
        std::optional<T> result(std::in_place, std::move(*h->value));
        h->value.reset();
        return result;
      }
    }
  }

  /// True if the stack was empty at the moment of the call. Wait-free.
  bool empty() const {
    // (5) acquire: pairs with (2). Nothing is read through the pointer, but a caller that
    // sees `false` gets the same happens-before with the push as a pop would.
    return head_.load(std::memory_order_acquire) == nullptr;
  }

 private:
  struct Node {
    explicit Node(T&& v) : value(std::in_place, std::move(v)) {}

    // Engaged from push until the pop that unlinks this node.
    std::optional<T> value;
    // Atomic only because the popper's cut (7) may race with a losing popper's read (6).
    cmr::Atomic<Node> next;
  };

  // Its own cache line: every push and pop writes it; neighbours should not suffer.
  alignas(64) cmr::Root<Node> head_;
};

}  // namespace cmr::ds
