// cmr/make.hpp: creating tracked objects.
//
// make<T>(guard, args...) constructs a T in the tracked heap and returns it protected by
// `guard`. The order is the point (DESIGN invariant 2): the zeroed memory is published in
// the guard, then recorded as a collection candidate, and only then constructed. A
// handshake that lands anywhere in between sees memory that is either not yet a candidate
// or already guarded; from the moment it is a candidate its words are scanned, so what the
// constructor makes and stores in the object under construction stays reachable. A
// constructor that throws leaves the guard empty and the memory to the next cycle, which
// frees it without running a destructor.
//
// The object lives until no root reaches it; its destructor then runs on the collector's
// thread, in no particular order relative to other garbage: a destructor must not
// dereference other tracked objects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "cmr/detail/duration.hpp"
#include "cmr/detail/hooks.hpp"
#include "cmr/detail/object.hpp"
#include "cmr/detail/thread_record.hpp"
#include "cmr/guard.hpp"

namespace cmr {

namespace detail {
// Publishes `memory` (zeroed, not yet constructed) in the guard, then makes it a candidate.
template <class T>
T* publish_unbuilt(Guard<T>& guard, void* memory) {
  T* object = static_cast<T*>(memory);
  guard.set(object);
  CMR_DETAIL_HOOK(make_after_publish);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // guarded before it is a candidate
  record_allocation(memory);
  return object;
}

// A constructor threw: the memory is marked never built (no destructor will run) before
// the guard lets go of it, so no cycle can see it unguarded and unmarked.
template <class T>
void give_back_unbuilt(Guard<T>& guard, void* memory) noexcept {
  abandon_object(memory);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // marked before it is unguarded
  guard.reset();
}

// Publishes, then constructs a T in `memory`.
template <class T, class... Args>
T* construct_and_publish(Guard<T>& guard, void* memory, Args&&... args) {
  publish_unbuilt(guard, memory);
  try {
    return ::new (memory) T(std::forward<Args>(args)...);
  } catch (...) {
    give_back_unbuilt(guard, memory);
    throw;
  }
}
}  // namespace detail

// Direct-initialises a T (explicit constructors work). Throws std::bad_alloc when memory
// is short and cmr::Error after shutdown().
template <class T, class... Args>
T* make(Guard<T>& guard, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  detail::GuardAccess<T>::arm(guard);
  void* memory = detail::allocate_object(&detail::type_info_v<T>, 1);
  return detail::construct_and_publish(guard, memory, std::forward<Args>(args)...);
}

// Like make(), but returns null instead of throwing when memory is short, or when the
// tracked heap is at Options::heap_limit and `max_wait` passed without a cycle making
// room. Exceptions from T's constructor still propagate.
// A wait of zero or less is try_make(); the maximum of any duration type waits forever.
template <class T, class Rep, class Period, class... Args>
T* try_make_for(Guard<T>& guard, std::chrono::duration<Rep, Period> max_wait, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  try {
    detail::GuardAccess<T>::arm(guard);
  } catch (...) {
    return nullptr;
  }
  void* memory = detail::try_allocate_object(&detail::type_info_v<T>, 1,
                                             detail::saturating_ns(max_wait));
  if (memory == nullptr) return nullptr;
  return detail::construct_and_publish(guard, memory, std::forward<Args>(args)...);
}

// try_make_for() without waiting: null at once when memory is short or at heap_limit.
template <class T, class... Args>
T* try_make(Guard<T>& guard, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  try {
    detail::GuardAccess<T>::arm(guard);
  } catch (...) {
    return nullptr;
  }
  void* memory = detail::try_allocate_object(&detail::type_info_v<T>, 1);
  if (memory == nullptr) return nullptr;
  return detail::construct_and_publish(guard, memory, std::forward<Args>(args)...);
}

// Constructs `count` value-initialised T in one tracked object and returns the first,
// protected by `guard`. A pointer to any element keeps the whole array alive.
template <class T>
T* make_array(Guard<T>& guard, std::size_t count) {
  static_assert(std::is_default_constructible_v<T>);
  if (count == 0) count = 1;
  detail::GuardAccess<T>::arm(guard);
  void* memory = detail::allocate_object(&detail::type_info_v<T>, count);
  T* first = detail::publish_unbuilt(guard, memory);
  std::size_t built = 0;
  try {
    for (; built < count; ++built) ::new (static_cast<void*>(first + built)) T();
  } catch (...) {
    detail::destroy_objects<T>(first, built);
    detail::give_back_unbuilt(guard, memory);
    throw;
  }
  return first;
}

}  // namespace cmr
