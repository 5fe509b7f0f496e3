// cmr/guard.hpp: Guard<T>, the one way a thread keeps a tracked object alive while it
// uses it.
//
// Claims invariant 1 of docs/design.md.
//
// Invariant 1 (protect validates).
//
// A guard owns one root slot of the calling thread. Publishing a pointer in it is a plain
// store with no memory fence: the collector reads slots only while every thread is paused
// in the handshake handler, and entering the handler orders this thread's earlier stores
// before the collector's reads (see src/threads/handshake.cpp). That is the whole cost advantage
// over hazard pointers, which need a full fence per protect.
//
// Memory ordering: protect() loads the source, publishes, then re-loads it with the
// caller's order (acquire or stronger pairs with the release/seq_cst store that published
// the object). std::atomic_signal_fence keeps the compiler from moving the re-load above
// the publish; the handler can only interrupt between whole instructions.
//
// A guard must be destroyed (or reset) on the thread that created it. A moved-from guard
// holds no slot: get() returns null and reset() does nothing; protect(), set() and make()
// re-arm it with a slot of the calling thread, as a new guard would.
#pragma once

#include <atomic>
#include <utility>

#include "cmr/atomic.hpp"
#include "cmr/detail/hooks.hpp"
#include "cmr/detail/thread_record.hpp"

namespace cmr {

template <class T>
class Guard;

namespace detail {
// What make() needs of a guard beyond the public API: a moved-from guard is re-armed
// before any memory is allocated, so that arming can throw without leaking.
template <class T>
struct GuardAccess {
  static void arm(Guard<T>& guard) {
    if (guard.slot_ == nullptr) [[unlikely]] guard.slot_ = acquire_slot(guard.owner_);
  }
};
}  // namespace detail

template <class T>
class Guard {
  friend struct detail::GuardAccess<T>;

 public:
  // Takes a slot of the calling thread, registering the thread on first use.
  Guard() { slot_ = detail::acquire_slot(owner_); }
  ~Guard() {
    if (slot_ != nullptr) detail::release_slot(owner_, slot_);
  }
  Guard(Guard&& other) noexcept
      : slot_(std::exchange(other.slot_, nullptr)), owner_(other.owner_) {}
  Guard& operator=(Guard&& other) noexcept {
    if (this != &other) {
      if (slot_ != nullptr) detail::release_slot(owner_, slot_);
      slot_ = std::exchange(other.slot_, nullptr);
      owner_ = other.owner_;
    }
    return *this;
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // Loads `src`, publishes the value and re-loads until both loads agree (invariant 1
  // of docs/design.md): the returned pointer (tag bits included) is then protected. A thread
  // paused between the load and the publish re-reads after the pause, so it never uses a
  // pointer that a snapshot without its guard found unreachable.
  T* protect(const Atomic<T>& src, std::memory_order order = std::memory_order_seq_cst) {
    detail::GuardAccess<T>::arm(*this);
    // In a local: the signal fence below would otherwise make the compiler reload the
    // member at every retry, and keep it in memory across a caller's loop.
    auto* const slot = slot_;
    // relaxed: the value is only a candidate until the validating load below.
    T* p = src.load(std::memory_order_relaxed);
    for (;;) {
      CMR_DETAIL_HOOK(protect_after_load);
      // relaxed: read by the collector only during a pause (ordered by the handler).
      slot->store(p, std::memory_order_relaxed);
      // Publish before validate; pairs with the handler's interruption point.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      T* q = src.load(order);
      if (q == p) return p;
      p = q;
    }
  }

  // Protects a pointer that is already protected (by another guard, a Root, or a reachable
  // tracked object that is itself protected), or null.
  void set(T* p) noexcept {
    if (slot_ == nullptr) [[unlikely]] {
      if (p == nullptr) return;
      slot_ = detail::acquire_slot_or_die(owner_);  // noexcept: ends the process on failure
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);  // earlier uses stay above
    slot_->store(p, std::memory_order_relaxed);  // see protect()
    std::atomic_signal_fence(std::memory_order_seq_cst);  // later uses stay below
  }

  T* get() const noexcept {
    // relaxed: only this thread writes its slot.
    return slot_ != nullptr ? static_cast<T*>(slot_->load(std::memory_order_relaxed))
                            : nullptr;
  }

  // Stops protecting (keeps the slot for reuse by this guard).
  void reset() noexcept {
    if (slot_ != nullptr) set(nullptr);
  }

 private:
  std::atomic<void*>* slot_;      // null only in a moved-from guard
  detail::ThreadRecord* owner_;   // the thread whose slot this is
};

}  // namespace cmr
