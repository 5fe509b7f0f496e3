// extern-benchmarks/locked_structures.hpp: the same structures behind one lock — the
// baseline every lock-free scheme has to beat.
//
// The node layout and algorithms mirror the lock-free ones (a singly linked queue and stack,
// sorted chains in a fixed bucket array) so that the lock, not the data layout, is what
// differs. Nodes are freed immediately (a lock needs no deferred reclamation) and go through
// counted_new/counted_delete so that the unreclaimed column reads the same way.
// Lock is std::mutex, or std::shared_mutex to let lookups (and range scans) share the lock.
//
// OrderedSet, the baseline of the skiplist and tree workloads, is std::set (a red-black
// tree) under the lock: no sequential skip list or unbalanced external tree would be a
// fairer stand-in, and a balanced tree is what a program with a lock would use. It is the
// lock-based range scan: lower_bound, then in-order steps, under the (shared) lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <type_traits>
#include <utility>

#include "harness/counting.hpp"

namespace cmr::bench::locked {

template <class T>
struct Link {
  explicit Link(T v) : value(v) {}
  Link* next = nullptr;
  T value;
};

class Queue {
 public:
  Queue() = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue() {
    while (head_ != nullptr) counted_delete(std::exchange(head_, head_->next));
  }
  void push(std::uint64_t v) {
    auto* n = counted_new<Link<std::uint64_t>>(v);  // allocate outside the lock
    std::lock_guard lock(mutex_);
    (tail_ != nullptr ? tail_->next : head_) = n;
    tail_ = n;
  }
  std::optional<std::uint64_t> try_pop() {
    Link<std::uint64_t>* n;
    {
      std::lock_guard lock(mutex_);
      n = head_;
      if (n == nullptr) return std::nullopt;
      head_ = n->next;
      if (head_ == nullptr) tail_ = nullptr;
    }
    std::uint64_t v = n->value;
    counted_delete(n);  // free outside the lock
    return v;
  }

 private:
  std::mutex mutex_;
  Link<std::uint64_t>* head_ = nullptr;
  Link<std::uint64_t>* tail_ = nullptr;
};

class Stack {
 public:
  Stack() = default;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  ~Stack() {
    while (top_ != nullptr) counted_delete(std::exchange(top_, top_->next));
  }
  void push(std::uint64_t v) {
    auto* n = counted_new<Link<std::uint64_t>>(v);
    std::lock_guard lock(mutex_);
    n->next = top_;
    top_ = n;
  }
  std::optional<std::uint64_t> try_pop() {
    Link<std::uint64_t>* n;
    {
      std::lock_guard lock(mutex_);
      n = top_;
      if (n == nullptr) return std::nullopt;
      top_ = n->next;
    }
    std::uint64_t v = n->value;
    counted_delete(n);
    return v;
  }

 private:
  std::mutex mutex_;
  Link<std::uint64_t>* top_ = nullptr;
};

// Sorted chains in `buckets` buckets (a power of two) under one lock for the whole set.
template <class Lock>
class SortedSet {
 public:
  explicit SortedSet(std::size_t buckets = 1)
      : mask_(buckets - 1), heads_(std::make_unique<Link<std::uint64_t>*[]>(buckets)) {}
  SortedSet(const SortedSet&) = delete;
  SortedSet& operator=(const SortedSet&) = delete;
  ~SortedSet() {
    for (std::size_t b = 0; b <= mask_; ++b)
      while (heads_[b] != nullptr) counted_delete(std::exchange(heads_[b], heads_[b]->next));
  }

  bool insert(std::uint64_t key) {
    std::unique_ptr<Link<std::uint64_t>, void (*)(Link<std::uint64_t>*)> fresh(
        counted_new<Link<std::uint64_t>>(key), &counted_delete<Link<std::uint64_t>>);
    std::unique_lock lock(mutex_);
    Link<std::uint64_t>** at = position(key);
    if (*at != nullptr && (*at)->value == key) {
      lock.unlock();
      return false;  // fresh is freed outside the lock
    }
    fresh->next = *at;
    *at = fresh.release();
    return true;
  }

  bool erase(const std::uint64_t& key) {
    Link<std::uint64_t>* victim;
    {
      std::unique_lock lock(mutex_);
      Link<std::uint64_t>** at = position(key);
      if (*at == nullptr || (*at)->value != key) return false;
      victim = *at;
      *at = victim->next;
    }
    counted_delete(victim);
    return true;
  }

  bool contains(const std::uint64_t& key) const {
    auto lock = read_lock();
    const Link<std::uint64_t>* n = heads_[key & mask_];
    while (n != nullptr && n->value < key) n = n->next;
    return n != nullptr && n->value == key;
  }

 private:
  auto read_lock() const {
    if constexpr (std::is_same_v<Lock, std::shared_mutex>)
      return std::shared_lock(mutex_);
    else
      return std::unique_lock(mutex_);
  }
  Link<std::uint64_t>** position(std::uint64_t key) {
    Link<std::uint64_t>** at = &heads_[key & mask_];
    while (*at != nullptr && (*at)->value < key) at = &(*at)->next;
    return at;
  }

  mutable Lock mutex_;
  std::size_t mask_;
  std::unique_ptr<Link<std::uint64_t>*[]> heads_;
};

template <class Lock>
class OrderedSet {
 public:
  bool insert(std::uint64_t key) {
    std::unique_lock lock(mutex_);
    return set_.insert(key).second;
  }
  bool erase(const std::uint64_t& key) {
    std::unique_lock lock(mutex_);
    return set_.erase(key) != 0;
  }
  bool contains(const std::uint64_t& key) const {
    auto lock = read_lock();
    return set_.find(key) != set_.end();
  }
  // f runs under the lock: it must not call back into the set.
  template <class F>
  void for_each_in(const std::uint64_t& lo, const std::uint64_t& hi, F&& f) const {
    auto lock = read_lock();
    for (auto it = set_.lower_bound(lo); it != set_.end() && *it < hi; ++it) f(*it);
  }

 private:
  auto read_lock() const {
    if constexpr (std::is_same_v<Lock, std::shared_mutex>)
      return std::shared_lock(mutex_);
    else
      return std::unique_lock(mutex_);
  }
  mutable Lock mutex_;
  // Nodes are allocated inside the lock (std::set has no separate node allocation); they go
  // through the counting allocator, one node per allocate(1).
  std::set<std::uint64_t, std::less<std::uint64_t>, CountingAllocator<std::uint64_t>> set_;
};

}  // namespace cmr::bench::locked
