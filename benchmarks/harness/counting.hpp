// harness/counting.hpp: counts node allocations minus frees, for implementations that cannot
// report their unreclaimed objects themselves (everything except cmr).
//
// "Unreclaimed" here means allocated and not yet freed, live nodes included: the same
// definition as cmr::stats().live_objects, so the columns compare like with like.
//
// Cost: each thread owns a cache-line-sized slot and bumps it with a relaxed load + store
// (single writer, no read-modify-write, no shared line). A node freed by another thread
// (a hazard-pointer scan, the call_rcu thread) is counted in the freeing thread's slot. The
// monitor thread sums all slots; the sum is a racy but never-stale-for-long snapshot, which
// is all a sampled peak needs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

namespace cmr::bench {

namespace detail {
struct alignas(64) CounterSlot {
  std::atomic<std::uint64_t> allocs{0};
  std::atomic<std::uint64_t> frees{0};
};
}  // namespace detail

class AllocationCounter {
 public:
  static void on_allocate(std::uint64_t n = 1) noexcept { bump(&Slot::allocs, n); }
  static void on_free(std::uint64_t n = 1) noexcept { bump(&Slot::frees, n); }

  // Allocations minus frees over all threads so far (clamped at 0 for a racy snapshot).
  static std::uint64_t live() noexcept {
    std::uint64_t allocs = 0, frees = 0;
    std::size_t used = next_slot_.load(std::memory_order_relaxed);
    if (used > kSlots) used = kSlots;
    for (std::size_t i = 0; i < used; ++i) {
      // relaxed: a statistic; no data is published through these counters.
      allocs += slots_[i].allocs.load(std::memory_order_relaxed);
      frees += slots_[i].frees.load(std::memory_order_relaxed);
    }
    allocs += overflow_.allocs.load(std::memory_order_relaxed);
    frees += overflow_.frees.load(std::memory_order_relaxed);
    return allocs > frees ? allocs - frees : 0;
  }

 private:
  using Slot = detail::CounterSlot;
  static constexpr std::size_t kSlots = 1024;

  static void bump(std::atomic<std::uint64_t> Slot::*field, std::uint64_t n) noexcept {
    thread_local Slot* mine = claim();
    if (mine != &overflow_) {
      // relaxed load + store: this thread is the slot's only writer.
      auto& c = mine->*field;
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      (overflow_.*field).fetch_add(n, std::memory_order_relaxed);  // shared by late threads
    }
  }

  static Slot* claim() noexcept {
    // relaxed: only uniqueness of the index matters.
    std::size_t i = next_slot_.fetch_add(1, std::memory_order_relaxed);
    return i < kSlots ? &slots_[i] : &overflow_;
  }

  inline static Slot slots_[kSlots];
  inline static Slot overflow_;
  inline static std::atomic<std::size_t> next_slot_{0};
};

template <class T, class... Args>
T* counted_new(Args&&... args) {
  T* p = new T(std::forward<Args>(args)...);
  AllocationCounter::on_allocate();
  return p;
}

template <class T>
void counted_delete(T* p) noexcept {
  delete p;
  AllocationCounter::on_free();
}

// A std-style allocator that counts, for libraries that take an allocator (libcds node
// allocators, Boost.Lockfree's freelist). Delegates to std::allocator, which handles
// over-aligned node types (Boost's cache-line-aligned nodes).
template <class T>
struct CountingAllocator {
  using value_type = T;
  // libcds 2.3 still spells rebinding the pre-C++20 way.
  template <class U>
  struct rebind {
    using other = CountingAllocator<U>;
  };

  CountingAllocator() noexcept = default;
  template <class U>
  CountingAllocator(const CountingAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    AllocationCounter::on_allocate(n);
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept {
    std::allocator<T>{}.deallocate(p, n);
    AllocationCounter::on_free(n);
  }

  template <class U>
  friend bool operator==(const CountingAllocator&, const CountingAllocator<U>&) noexcept {
    return true;
  }
};

}  // namespace cmr::bench
