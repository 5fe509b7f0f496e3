// cmr/detail/object.hpp: what the runtime knows of a tracked object's type, and the
// allocation entry points behind make().
//
// Trivially destructible objects carry no header at all: their size comes from their
// block's class. Objects whose type has a destructor start their slot with a TypeHeader
// (cmr/detail/heap_layout.hpp) so that the collector can destroy them; large objects keep
// their type in their span's block record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

namespace cmr::detail {

struct TypeInfo {
  void (*destroy)(void* object, std::size_t count) noexcept;  // null: trivially destructible
  std::size_t size;   // sizeof(T)
  std::size_t align;  // alignof(T)
};

template <class T>
void destroy_objects(void* object, std::size_t count) noexcept {
  T* p = static_cast<T*>(object);
  for (std::size_t i = count; i > 0; --i) p[i - 1].~T();
}

template <class T>
inline constexpr TypeInfo type_info_v{
    std::is_trivially_destructible_v<T> ? nullptr : &destroy_objects<T>, sizeof(T),
    alignof(T)};

struct Slot;
struct ThreadRecord;

// The slow paths of allocation (src/heap/allocate.cpp): registration, shutdown, heap_limit,
// large objects, arrays, and a cursor that ran out of slots. They return a slot whose
// memory is zeroed (and, for a typed slot, whose TypeHeader is written), not yet a
// candidate: the caller publishes it in a guard, then commit()s it.
// allocate_slow throws cmr::Error (after shutdown) or std::bad_alloc; try_allocate_slow
// returns false instead, after waiting up to max_wait_ns for cycles to make room under
// Options::heap_limit.
void allocate_slow(const TypeInfo* type, std::size_t count, Slot& out);
bool try_allocate_slow(const TypeInfo* type, std::size_t count, std::int64_t max_wait_ns,
                       Slot& out) noexcept;
// A thread's allocation count reached its flush point: adds the batch to the global count
// (which may start a cycle, or make the thread wait for one when cycles fall behind).
void flush_allocation_count(ThreadRecord* r);
// The constructor of a committed slot threw: the slot stops being a candidate and is free
// again at once (no destructor runs). The caller still guards it, and drops the guard after.
void abandon(const Slot& slot) noexcept;

}  // namespace cmr::detail
