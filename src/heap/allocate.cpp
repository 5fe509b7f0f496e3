// src/heap/allocate.cpp: the slow paths of allocation.
//
// make()'s inline path (cmr/make.hpp) takes a slot from the calling thread's current block;
// everything else comes here: registration, shutdown, Options::heap_limit (admission, in
// cycle/pacing.cpp), arrays, large objects, a cursor out of slots (heap/owner.cpp refills
// it). Every slot handed out is zeroed. Allocation never makes the slot a candidate: make()
// commits it after the guard published it, before the constructor runs (invariant 2 of
// docs/design.md, claimed by include/cmr/make.hpp).
#include "heap/allocate.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "heap/blocks.hpp"
#include "cmr/detail/duration.hpp"
#include "cmr/detail/heap_layout.hpp"
#include "cycle/pacing.hpp"
#include "runtime/runtime.hpp"
#include "threads/registry.hpp"
#include "os/poison.hpp"
#include "os/sys.hpp"

namespace cmr::detail {

namespace {

enum class Failure { kNone, kShutDown, kNoMemory, kLimit };

// The slot for `count` objects of `type`, zeroed; out.header says where seal() writes the
// type once the object is built (when the type has a destructor).
Failure take(const TypeInfo* type, std::size_t count, std::int64_t max_wait_ns, Slot& out) {
  // relaxed: a one-way flag (thread_record.hpp); a make() racing with shutdown() may pass.
  if (g_shut_down.load(std::memory_order_relaxed)) return Failure::kShutDown;
  if (must_rebuild()) [[unlikely]] rebuild_after_fork();  // the child of a fork()
  ThreadRecord* r = current_record();
  if (count > 1 && type->size > (std::size_t{1} << 46) / count) return Failure::kNoMemory;
  const bool typed = type->destroy != nullptr;
  const std::size_t bytes = type->size * count;
  const std::size_t align = std::max<std::size_t>(type->align, typed ? alignof(TypeHeader) : 1);
  const std::size_t prefix = typed ? typed_prefix(type->align) : 0;
  const unsigned cls = class_for(prefix + bytes, align);
  const std::size_t slot_bytes = cls == kLargeClass
                                     ? (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes
                                     : kClassBytes[cls];
  if (r->heap_limit != 0 && !pacing_rules::admit(r, slot_bytes, max_wait_ns)) return Failure::kLimit;
  if (cls == kLargeClass) {
    if (!blocks::allocate_large(bytes, type->align, typed, out))
      return Failure::kNoMemory;
    pacing_rules::account(r, slot_bytes);
    return Failure::kNone;
  }
  Cursor& c = r->cursors[cursor_index(cls, typed)];
  for (;;) {
    // take_from<> wants the class at compile time; the slow path computes the slot itself.
    if (c.free != 0) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(c.free));
      c.free &= c.free - 1;
      out.memory = c.base + std::size_t{i} * kClassBytes[cls];
      out.word = c.word;
      out.bit = std::uint64_t{1} << i;
      break;
    }
    if (!blocks::refill(r, cls, typed)) return Failure::kNoMemory;
  }
  pacing_rules::account(r, slot_bytes);
  unpoison(out.memory, slot_bytes);
  std::memset(out.memory, 0, slot_bytes);
  out.header = nullptr;
  if (typed) {
    out.header = static_cast<TypeHeader*>(out.memory);  // written by seal(), once built
    out.memory = static_cast<char*>(out.memory) + prefix;
  }
  return Failure::kNone;
}

}  // namespace

void allocate_slow(const TypeInfo* type, std::size_t count, Slot& out) {
  switch (take(type, count, saturating_ns(rt().options.limit_wait), out)) {
    case Failure::kNone:
      return;
    case Failure::kShutDown:
      throw Error("cmr: make() was called after cmr::shutdown()");
    case Failure::kNoMemory:
    case Failure::kLimit:
      throw std::bad_alloc();
  }
}

bool try_allocate_slow(const TypeInfo* type, std::size_t count, std::int64_t max_wait_ns,
                       Slot& out) noexcept {
  try {
    return take(type, count, max_wait_ns, out) == Failure::kNone;
  } catch (...) {
    return false;  // registration failed
  }
}

void abandon(const Slot& slot) noexcept {
  const std::size_t bytes = blocks::give_back(slot);
  // The object never existed for stats(): this thread's totals forget it (its bytes stay
  // in the trigger count, which only decides when a cycle runs).
  ThreadRecord* r = tls_record;
  r->allocated_objects.store(r->allocated_objects.load(std::memory_order_relaxed) - 1,
                             std::memory_order_relaxed);
  const std::uint64_t total = r->allocated_bytes.load(std::memory_order_relaxed) - bytes;
  r->allocated_bytes.store(total, std::memory_order_relaxed);
  r->flushed_bytes = std::min(r->flushed_bytes, total);
}

void heap_thread_exit(ThreadRecord* r) noexcept {
  pacing_rules::flush(r);
  blocks::thread_exit(r);
}

}  // namespace cmr::detail
