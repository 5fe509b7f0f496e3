// src/threads/registry.hpp: the thread registry: one ThreadRecord per registered thread.
//
// Keeps the state readable as invariant 4 of docs/design.md (claimed by
// threads/handshake.cpp) needs: a record and its guard-slot blocks are readable at every
// instruction their owner may be stopped at (registry.cpp).
// The registry lock guards the record list here and the root list (threads/roots.hpp).
// The collector holds it from before the handshake until the threads are released, so no
// thread joins or leaves mid-pause and no signal goes to a thread that left; the program's
// fork() holds it too (runtime/fork.cpp), so a child's copy of both lists is whole.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "cmr/detail/thread_record.hpp"

namespace cmr::detail {

struct ThreadRegistry {
  std::mutex mutex;                    // the registry lock
  std::vector<ThreadRecord*> records;  // registered, plus exited ones not yet dropped
  // Totals of the records dropped so far, so that stats() still counts their allocations.
  std::uint64_t dead_allocated_objects = 0;
  std::uint64_t dead_allocated_bytes = 0;
};

// The process's registry: created on first use, never destroyed (threads may still
// unregister while static destructors run at exit).
ThreadRegistry& registry();

// Registers the calling thread if it is not yet. Throws after shutdown().
ThreadRecord* current_record();

// Under the registry lock, for a record whose blocks were handed on (blocks::thread_exit):
// adds its totals to the dead ones and frees it with everything it owns.
void drop_record(ThreadRecord* r) noexcept;

}  // namespace cmr::detail
