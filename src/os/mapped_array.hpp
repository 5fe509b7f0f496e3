// src/os/mapped_array.hpp: MappedArray<T>, the runtime's one growable array, backed by mmap.
//
// The runtime never uses malloc for memory it touches while threads are held or that a
// scanner child reads: a held thread may own an arena lock, and the child must find the
// memory without the C library. Fenced arrays (Placement::kFenced) sit between PROT_NONE
// pages, so no program mapping ever merges with one: snapshot isolation keeps them for
// the child, and a merged program mapping would be kept (copied) with them.
// Invariants: data is null or a mapping of `capacity` elements rounded up to whole pages;
// elements [0, size) are those pushed; growing copies them and unmaps the old mapping.
// T must be trivially copyable (elements move with memcpy, nothing is ever destroyed).
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "os/sys.hpp"

namespace cmr::detail {

enum class Placement { kPlain, kFenced };

template <class T, Placement kPlace = Placement::kPlain>
class MappedArray {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  MappedArray() = default;
  ~MappedArray() { release(); }
  MappedArray(const MappedArray&) = delete;
  MappedArray& operator=(const MappedArray&) = delete;

  // Room for at least `n` elements; false (and unchanged) if the mapping failed.
  bool reserve(std::size_t n) noexcept {
    if (n <= capacity_) return true;
    const std::size_t bytes = sys::page_round(n * sizeof(T));
    auto* fresh = static_cast<T*>(kPlace == Placement::kFenced ? sys::map_fenced(bytes)
                                                               : sys::map_private(bytes));
    if (fresh == nullptr) return false;
    if (size_ != 0) std::memcpy(static_cast<void*>(fresh), data_, size_ * sizeof(T));
    unmap();
    data_ = fresh;
    capacity_ = bytes / sizeof(T);
    return true;
  }
  // Room for `n`, growing geometrically (amortised pushes).
  bool reserve_growing(std::size_t n) noexcept {
    return n <= capacity_ || reserve(n > capacity_ * 2 + 64 ? n : capacity_ * 2 + 64);
  }
  bool push(const T& v) noexcept {
    if (!reserve_growing(size_ + 1)) return false;
    data_[size_++] = v;
    return true;
  }
  void clear() noexcept { size_ = 0; }
  void resize_within(std::size_t n) noexcept { size_ = n <= capacity_ ? n : capacity_; }
  void release() noexcept {
    unmap();
    data_ = nullptr;
    capacity_ = size_ = 0;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t bytes() const noexcept { return capacity_ * sizeof(T); }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }

 private:
  void unmap() noexcept {
    if (data_ == nullptr) return;
    if (kPlace == Placement::kFenced)
      sys::unmap_fenced(data_, capacity_ * sizeof(T));
    else
      sys::unmap(data_, capacity_ * sizeof(T));
  }

  T* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

}  // namespace cmr::detail
