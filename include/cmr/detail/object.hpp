// cmr/detail/object.hpp: the layout of a tracked object and the allocation entry points.
//
// Every tracked object is preceded by a 16-byte ObjectHeader written before the object is
// logged. The scanner child reads only `bytes` (never `type`, which points into the
// program's static data): a word keeps the object alive when it points into
// [object, object + round_up(bytes, 8)), so interior pointers and low-bit tags count.
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

struct alignas(16) ObjectHeader {
  std::uint64_t bytes;     // payload size: size * count
  const TypeInfo* type;
};
static_assert(sizeof(ObjectHeader) == 16);

// The bytes after an object that keep it alive when pointed into: the payload rounded up to
// whole words, so a low-bit tag on a pointer to its last word still counts. The backing
// block always has room for this span.
inline constexpr std::size_t scan_span(std::uint64_t bytes) noexcept {
  return static_cast<std::size_t>(((bytes == 0 ? 1 : bytes) + 7) & ~std::uint64_t{7});
}

inline ObjectHeader* header_of(const void* object) noexcept {
  return reinterpret_cast<ObjectHeader*>(
      reinterpret_cast<std::uintptr_t>(object) - sizeof(ObjectHeader));
}

// Objects whose scan span is larger than this are "large" to the scanner's dense index:
// a pointer is matched to a small object by a backward search of at most this many bytes.
inline constexpr std::size_t kSmallSpan = 4096;
// Allocation-log entries are the object's address (16-byte aligned) with this bit set
// when the object is large, so the scanner child need not read the header of every
// candidate just to tell (measured: those reads were 60% of the scan, cache misses spread
// over the whole heap). Taken from the header the allocating thread has just written.
inline constexpr std::uintptr_t kLargeEntry = 2;
inline std::uintptr_t log_entry(const void* object) noexcept {
  return reinterpret_cast<std::uintptr_t>(object) |
         (scan_span(header_of(object)->bytes) > kSmallSpan ? kLargeEntry : 0);
}

template <class T>
void destroy_objects(void* object, std::size_t count) noexcept {
  T* p = static_cast<T*>(object);
  for (std::size_t i = count; i > 0; --i) p[i - 1].~T();
}

template <class T>
inline constexpr TypeInfo type_info_v{
    std::is_trivially_destructible_v<T> ? nullptr : &destroy_objects<T>, sizeof(T),
    alignof(T)};

// Allocates room for `count` objects of the type, header filled, and accounts the bytes
// (may wake the collector). Registers the calling thread if needed. The memory is not yet
// a candidate: the caller constructs, guards, then record_allocation()s it.
// allocate_object throws cmr::Error (derived from std::runtime_error) or std::bad_alloc;
// try_allocate_object returns null instead of throwing for lack of memory.
// try_allocate_object waits up to max_wait_ns for cycles to make room under
// Options::heap_limit before it gives up.
void* allocate_object(const TypeInfo* type, std::size_t count);
void* try_allocate_object(const TypeInfo* type, std::size_t count,
                          std::int64_t max_wait_ns = 0) noexcept;
// The constructor of a recorded candidate threw: marks it never built, so the cycle that
// finds it unreachable frees it without running a destructor. The caller then drops its
// guard.
void abandon_object(void* object) noexcept;

}  // namespace cmr::detail
