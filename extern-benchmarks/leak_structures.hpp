// extern-benchmarks/leak_structures.hpp: a Michael-Scott queue and a Treiber stack that never
// free a node — the throughput upper bound for any reclamation scheme, and the memory lower
// bound's opposite.
//
// Never freeing is also what makes them correct without reclamation: an address is never
// reused, so the Treiber stack has no ABA problem and a stale pointer is always readable.
// Nodes come from counted_new, so the harness sees the leak grow.
//
// Progress: push and try_pop are lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "harness/counting.hpp"

namespace cmr::bench::leak {

// Michael & Scott, "Simple, fast, and practical non-blocking and blocking concurrent queue
// algorithms", PODC 1996.
template <class T>
class MsQueue {
 public:
  MsQueue() {
    Node* dummy = counted_new<Node>();
    // relaxed: the queue is not shared until construction is complete.
    head_.store(dummy, std::memory_order_relaxed);
    tail_.store(dummy, std::memory_order_relaxed);
  }
  MsQueue(const MsQueue&) = delete;
  MsQueue& operator=(const MsQueue&) = delete;
  // Leaks every node, including those still queued: that is the point of this variant.
  ~MsQueue() = default;

  void push(T value) {
    Node* node = counted_new<Node>(value);
    for (;;) {
      // (Q1) acquire: pairs with the release CASes on tail_ (Q4, Q5, P3) so the node tail_
      // names is fully constructed when we read its next.
      Node* tail = tail_.load(std::memory_order_acquire);
      // (Q2) acquire: pairs with the linking CAS (Q3) of whoever appended `next`.
      Node* next = tail->next.load(std::memory_order_acquire);
      if (next == nullptr) {
        // (Q3) release: publishes node->value to the consumer's acquire load (P2) and to
        // producers' (Q2).
        if (tail->next.compare_exchange_weak(next, node, std::memory_order_release,
                                             std::memory_order_relaxed)) {
          // (Q4) release: pairs with (Q1)/(P1b); failure means someone helped already.
          tail_.compare_exchange_strong(tail, node, std::memory_order_release,
                                        std::memory_order_relaxed);
          return;
        }
      } else {
        // (Q5) release: help a lagging tail; pairs with (Q1)/(P1b).
        tail_.compare_exchange_weak(tail, next, std::memory_order_release,
                                    std::memory_order_relaxed);
      }
    }
  }

  std::optional<T> try_pop() {
    for (;;) {
      // (P1) acquire: pairs with the head-advancing CAS (P4).
      Node* head = head_.load(std::memory_order_acquire);
      // (P1b) acquire: pairs with (Q4)/(Q5)/(P3).
      Node* tail = tail_.load(std::memory_order_acquire);
      // (P2) acquire: pairs with the linking CAS (Q3): next->value is visible.
      Node* next = head->next.load(std::memory_order_acquire);
      if (next == nullptr) return std::nullopt;
      if (head == tail) {
        // (P3) release: tail lags behind a linked node; help, so head never passes tail.
        tail_.compare_exchange_weak(tail, next, std::memory_order_release,
                                    std::memory_order_relaxed);
        continue;
      }
      // Safe to read before the CAS: `next` is never freed and its value never changes.
      T value = next->value;
      // (P4) release: pairs with (P1) of the next consumer.
      if (head_.compare_exchange_weak(head, next, std::memory_order_release,
                                      std::memory_order_relaxed))
        return value;  // `head` is now unreachable and deliberately leaked
    }
  }

 private:
  struct Node {
    Node() = default;
    explicit Node(T v) : value(v) {}
    std::atomic<Node*> next{nullptr};
    T value{};
  };
  alignas(64) std::atomic<Node*> head_;
  alignas(64) std::atomic<Node*> tail_;
};

// Treiber, "Systems programming: coping with parallelism", IBM RJ 5118, 1986.
template <class T>
class TreiberStack {
 public:
  TreiberStack() = default;
  TreiberStack(const TreiberStack&) = delete;
  TreiberStack& operator=(const TreiberStack&) = delete;
  ~TreiberStack() = default;  // leaks, see MsQueue

  void push(T value) {
    Node* node = counted_new<Node>(value);
    // relaxed: the value we link to is re-checked by the CAS.
    node->next = top_.load(std::memory_order_relaxed);
    // (S1) release: publishes node->value and node->next to the popper's acquire (S2/S3).
    while (!top_.compare_exchange_weak(node->next, node, std::memory_order_release,
                                       std::memory_order_relaxed)) {
    }
  }

  std::optional<T> try_pop() {
    // (S2) acquire: pairs with (S1): top->next and top->value are visible.
    Node* top = top_.load(std::memory_order_acquire);
    // next is written only before the node is published and never after, and the node is
    // never freed or reused, so reading it here is race-free and ABA cannot happen.
    // (S3) acquire on failure: the reloaded top is dereferenced next round; pairs with (S1).
    while (top != nullptr && !top_.compare_exchange_weak(top, top->next,
                                                         std::memory_order_acquire,
                                                         std::memory_order_acquire)) {
    }
    if (top == nullptr) return std::nullopt;
    return top->value;  // `top` is leaked
  }

 private:
  struct Node {
    explicit Node(T v) : value(v) {}
    Node* next = nullptr;
    T value;
  };
  alignas(64) std::atomic<Node*> top_{nullptr};
};

}  // namespace cmr::bench::leak
