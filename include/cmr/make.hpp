// cmr/make.hpp: creating tracked objects.
//
// make<T>(guard, args...) constructs a T in the tracked heap and returns it protected by
// `guard`. The order is the point (DESIGN invariant 2): construct, publish in the guard,
// then record as a collection candidate. A handshake that lands anywhere in between sees
// an object that is either not yet a candidate or already guarded.
//
// The object lives until no root reaches it; its destructor then runs on the collector's
// thread, in no particular order relative to other garbage: a destructor must not
// dereference other tracked objects.
#pragma once

#include <chrono>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "cmr/detail/hooks.hpp"
#include "cmr/detail/object.hpp"
#include "cmr/detail/thread_record.hpp"
#include "cmr/guard.hpp"

namespace cmr {

namespace detail {
template <class T>
T* publish_new(Guard<T>& guard, void* memory, T* object) {
  guard.set(object);
  CMR_DETAIL_HOOK(make_after_publish);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // guarded before it is a candidate
  record_allocation(memory);
  return object;
}

// Constructs a T in `memory` (or gives the memory back if the constructor throws), then
// publishes it.
template <class T, class... Args>
T* construct_and_publish(Guard<T>& guard, void* memory, Args&&... args) {
  T* object;
  try {
    object = ::new (memory) T(std::forward<Args>(args)...);
  } catch (...) {
    discard_object(memory);
    throw;
  }
  return publish_new(guard, memory, object);
}
}  // namespace detail

// Direct-initialises a T (explicit constructors work). Throws std::bad_alloc when memory
// is short and cmr::Error after shutdown().
template <class T, class... Args>
T* make(Guard<T>& guard, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  void* memory = detail::allocate_object(&detail::type_info_v<T>, 1);
  return detail::construct_and_publish(guard, memory, std::forward<Args>(args)...);
}

// Like make(), but returns null instead of throwing when memory is short, or when the
// tracked heap is at Options::heap_limit and `max_wait` passed without a cycle making
// room. Exceptions from T's constructor still propagate.
template <class T, class Rep, class Period, class... Args>
T* try_make_for(Guard<T>& guard, std::chrono::duration<Rep, Period> max_wait, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  void* memory = detail::try_allocate_object(
      &detail::type_info_v<T>, 1,
      std::chrono::duration_cast<std::chrono::nanoseconds>(max_wait).count());
  if (memory == nullptr) return nullptr;
  return detail::construct_and_publish(guard, memory, std::forward<Args>(args)...);
}

// try_make_for() without waiting: null at once when memory is short or at heap_limit.
template <class T, class... Args>
T* try_make(Guard<T>& guard, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
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
  void* memory = detail::allocate_object(&detail::type_info_v<T>, count);
  T* first = static_cast<T*>(memory);
  std::size_t built = 0;
  try {
    for (; built < count; ++built) ::new (static_cast<void*>(first + built)) T();
  } catch (...) {
    detail::destroy_objects<T>(first, built);
    detail::discard_object(memory);
    throw;
  }
  return detail::publish_new(guard, memory, first);
}

}  // namespace cmr
