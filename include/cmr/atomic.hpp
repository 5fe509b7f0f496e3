// cmr/atomic.hpp: Atomic<T>, a pointer slot for tracked objects, and Root<T>, one that is
// also a root of the tracked heap while it exists.
//
// Atomic<T> is std::atomic<T*> with the same operations and default orders; it may live
// inside a tracked object or in ordinary memory. A T* loaded from it is safe to dereference
// only once a Guard protects it (Guard::protect does both). Low-bit tags are allowed: a
// tagged pointer keeps its target alive.
//
// Root<T> registers itself with the runtime for its lifetime (registration takes the
// runtime's registry lock: create Roots for long-lived entry points such as a queue's head,
// not per operation). The scanner reads a Root's value as of the snapshot. Writing a Root
// (store, exchange, compare_exchange) registers the calling thread, so that every thread
// that can change a Root is held by the handshake while the collector reads the Roots one
// by one (invariant 3 of docs/design.md): a thread that moves an object from one Root to another is
// never seen half-way. A thread that never registers may read Roots, create and destroy
// them, and use Atomics in ordinary memory; it must not dereference tracked objects (that
// needs a Guard, which registers it). Write a Root through the Root itself: a write through
// an Atomic<T>& that refers to it skips the registration.
#pragma once

#include <atomic>

#include "cmr/detail/thread_record.hpp"

namespace cmr {

template <class T>
class Atomic {
 public:
  constexpr Atomic() noexcept = default;
  constexpr explicit Atomic(T* p) noexcept : value_(p) {}
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T* load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
    return value_.load(order);
  }
  void store(T* p, std::memory_order order = std::memory_order_seq_cst) noexcept {
    value_.store(p, order);
  }
  T* exchange(T* p, std::memory_order order = std::memory_order_seq_cst) noexcept {
    return value_.exchange(p, order);
  }
  bool compare_exchange_weak(T*& expected, T* desired,
                             std::memory_order order = std::memory_order_seq_cst) noexcept {
    return value_.compare_exchange_weak(expected, desired, order);
  }
  bool compare_exchange_weak(T*& expected, T* desired, std::memory_order success,
                             std::memory_order failure) noexcept {
    return value_.compare_exchange_weak(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T*& expected, T* desired,
                               std::memory_order order = std::memory_order_seq_cst) noexcept {
    return value_.compare_exchange_strong(expected, desired, order);
  }
  bool compare_exchange_strong(T*& expected, T* desired, std::memory_order success,
                               std::memory_order failure) noexcept {
    return value_.compare_exchange_strong(expected, desired, success, failure);
  }

 protected:
  // Roots hand this cell's address to the registry.
  std::atomic<T*>& cell() noexcept { return value_; }

 private:
  std::atomic<T*> value_{nullptr};
};

namespace detail {
// An entry of the runtime's intrusive root list (src/threads/registry.cpp). Linked and unlinked
// under the registry lock, which the collector holds for the whole pause, so the list is
// never seen half-updated.
struct RootNode {
  RootNode* prev = nullptr;
  RootNode* next = nullptr;
  const void* cell = nullptr;  // a std::atomic<T*>, read as one word
};
void register_root(RootNode* node);
void unregister_root(RootNode* node) noexcept;
}  // namespace detail

template <class T>
class Root : public Atomic<T> {
 public:
  // `p` must be null, just made, or protected by a guard of the calling thread.
  explicit Root(T* p = nullptr) : Atomic<T>(p) {
    node_.cell = &this->cell();
    detail::register_root(&node_);
  }
  ~Root() { detail::unregister_root(&node_); }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;

  // Atomic<T>'s writes, after registering the calling thread if it is not yet.
  void store(T* p, std::memory_order order = std::memory_order_seq_cst) noexcept {
    writer();
    Atomic<T>::store(p, order);
  }
  T* exchange(T* p, std::memory_order order = std::memory_order_seq_cst) noexcept {
    writer();
    return Atomic<T>::exchange(p, order);
  }
  bool compare_exchange_weak(T*& expected, T* desired,
                             std::memory_order order = std::memory_order_seq_cst) noexcept {
    writer();
    return Atomic<T>::compare_exchange_weak(expected, desired, order);
  }
  bool compare_exchange_weak(T*& expected, T* desired, std::memory_order success,
                             std::memory_order failure) noexcept {
    writer();
    return Atomic<T>::compare_exchange_weak(expected, desired, success, failure);
  }
  bool compare_exchange_strong(T*& expected, T* desired,
                               std::memory_order order = std::memory_order_seq_cst) noexcept {
    writer();
    return Atomic<T>::compare_exchange_strong(expected, desired, order);
  }
  bool compare_exchange_strong(T*& expected, T* desired, std::memory_order success,
                               std::memory_order failure) noexcept {
    writer();
    return Atomic<T>::compare_exchange_strong(expected, desired, success, failure);
  }

 private:
  static void writer() noexcept {
    if (detail::tls_record == nullptr) [[unlikely]] detail::register_root_writer();
  }

  detail::RootNode node_;
};

}  // namespace cmr
