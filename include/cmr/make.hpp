// cmr/make.hpp: creating tracked objects.
//
// Claims invariants 2 and 27 of docs/design.md.
//
// make<T>(guard, args...) constructs a T in the tracked heap and returns it protected by
// `guard`. The order is the point (invariant 2 of docs/design.md): the zeroed slot is published in
// the guard, then committed as a collection candidate, and only then constructed. A
// handshake that lands anywhere in between sees a slot that is either not yet a
// candidate or already guarded; from the moment it is a candidate its words are scanned,
// so what the constructor makes and stores in the object under construction stays
// reachable. A constructor that throws gives the slot back at once (no destructor runs)
// and leaves the guard empty. The type is written into the slot's header only once the
// object is built (seal()): the collector destroys what has a type, so an object whose
// constructor never finished (its thread vanished in a fork's child) is released unbuilt.
//
// The fast path is inline: a free slot of the calling thread's current block for the
// type's size class (cmr/detail/heap_layout.hpp), with no shared write and no call. The
// object lives until no root reaches it; its destructor then runs on the collector's
// thread, in no particular order relative to other garbage: a destructor must not
// dereference other tracked objects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "cmr/detail/duration.hpp"
#include "cmr/detail/heap_layout.hpp"
#include "cmr/detail/hooks.hpp"
#include "cmr/detail/object.hpp"
#include "cmr/detail/thread_record.hpp"
#include "cmr/guard.hpp"

namespace cmr {

namespace detail {

template <class T>
struct Layout {
  static constexpr bool kTyped = !std::is_trivially_destructible_v<T>;
  static constexpr std::size_t kPrefix = kTyped ? typed_prefix(alignof(T)) : 0;
  static constexpr std::size_t kAlign =
      alignof(T) > sizeof(TypeHeader) || !kTyped ? alignof(T) : alignof(TypeHeader);
  static constexpr unsigned kClass = class_for(kPrefix + sizeof(T), kAlign);
};

// The slot for one T: the calling thread's current block when it has room, else the slow
// path (which also handles registration, shutdown, heap_limit and large objects).
template <class T>
inline void allocate_for(Slot& s) {
  using L = Layout<T>;
  if constexpr (L::kClass != kLargeClass) {
    ThreadRecord* r = tls_record;
    // relaxed: fast_make is the owner's flag (shutdown() may clear it; a make racing with
    // shutdown() may pass, as documented).
    if (r != nullptr && r->fast_make.load(std::memory_order_relaxed) &&
        take_from<L::kClass>(r->cursors[cursor_index(L::kClass, L::kTyped)], s)) [[likely]] {
      constexpr std::size_t kBytes = kClassBytes[L::kClass];
      // relaxed stores: totals for stats(), this thread is their only writer.
      const std::uint64_t bytes = r->allocated_bytes.load(std::memory_order_relaxed) + kBytes;
      r->allocated_bytes.store(bytes, std::memory_order_relaxed);
      r->allocated_objects.store(r->allocated_objects.load(std::memory_order_relaxed) + 1,
                                 std::memory_order_relaxed);
      if (bytes >= r->flush_at) [[unlikely]] flush_allocation_count(r);
#if defined(__SANITIZE_ADDRESS__)
      __asan_unpoison_memory_region(s.memory, kBytes);
#endif
      // A reused slot holds its last object's words; the scan would keep what they point to.
      std::memset(s.memory, 0, kBytes);
      if constexpr (L::kTyped) {
        s.header = static_cast<TypeHeader*>(s.memory);  // written by seal(), once built
        s.memory = static_cast<char*>(s.memory) + L::kPrefix;
      }
      return;
    }
  }
  allocate_slow(&type_info_v<T>, 1, s);
}

// Publishes the slot (zeroed, not yet constructed) in the guard, then makes it a candidate.
template <class T>
T* publish_unbuilt(Guard<T>& guard, const Slot& s) {
  T* object = static_cast<T*>(s.memory);
  guard.set(object);
  CMR_DETAIL_HOOK(make_after_publish);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // guarded before it is a candidate
  commit(s);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // a candidate before it is built
  return object;
}

// A constructor threw: the slot stops being a candidate before the guard lets go of it, so
// no cycle can see it unguarded and still a candidate.
template <class T>
void give_back_unbuilt(Guard<T>& guard, const Slot& s) noexcept {
  abandon(s);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // no longer a candidate, then unguarded
  guard.reset();
}

// Publishes, then constructs a T in the slot.
template <class T, class... Args>
T* construct_and_publish(Guard<T>& guard, const Slot& s, Args&&... args) {
  publish_unbuilt(guard, s);
  T* object;
  try {
    object = ::new (s.memory) T(std::forward<Args>(args)...);
  } catch (...) {
    give_back_unbuilt(guard, s);
    throw;
  }
  seal(s, &type_info_v<T>, 1);
  return object;
}
}  // namespace detail

// Direct-initialises a T (explicit constructors work). Throws std::bad_alloc when memory
// is short and cmr::Error after shutdown().
template <class T, class... Args>
T* make(Guard<T>& guard, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  detail::GuardAccess<T>::arm(guard);
  detail::Slot s;
  detail::allocate_for<T>(s);
  return detail::construct_and_publish(guard, s, std::forward<Args>(args)...);
}

// Like make(), but returns null instead of throwing when memory is short, or when the
// tracked heap is at Options::heap_limit and `max_wait` passed without a cycle making
// room. A wait of zero or less is try_make(); the maximum of any duration type waits
// forever. Exceptions from T's constructor still propagate.
template <class T, class Rep, class Period, class... Args>
T* try_make_for(Guard<T>& guard, std::chrono::duration<Rep, Period> max_wait, Args&&... args) {
  static_assert(!std::is_array_v<T>, "use make_array");
  try {
    detail::GuardAccess<T>::arm(guard);
  } catch (...) {
    return nullptr;
  }
  detail::Slot s;
  if (!detail::try_allocate_slow(&detail::type_info_v<T>, 1, detail::saturating_ns(max_wait), s))
    return nullptr;
  return detail::construct_and_publish(guard, s, std::forward<Args>(args)...);
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
  detail::Slot s;
  if (!detail::try_allocate_slow(&detail::type_info_v<T>, 1, 0, s)) return nullptr;
  return detail::construct_and_publish(guard, s, std::forward<Args>(args)...);
}

// Constructs `count` value-initialised T in one tracked object and returns the first,
// protected by `guard`. A pointer to any element keeps the whole array alive.
template <class T>
T* make_array(Guard<T>& guard, std::size_t count) {
  static_assert(std::is_default_constructible_v<T>);
  if (count == 0) count = 1;
  detail::GuardAccess<T>::arm(guard);
  detail::Slot s;
  detail::allocate_slow(&detail::type_info_v<T>, count, s);
  T* first = detail::publish_unbuilt(guard, s);
  std::size_t built = 0;
  try {
    for (; built < count; ++built) ::new (static_cast<void*>(first + built)) T();
  } catch (...) {
    detail::destroy_objects<T>(first, built);
    detail::give_back_unbuilt(guard, s);
    throw;
  }
  detail::seal(s, &detail::type_info_v<T>, count);
  return first;
}

}  // namespace cmr
