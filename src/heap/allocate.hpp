// src/heap/allocate.hpp: what the rest of the runtime needs of the allocation slow paths.
#pragma once

#include "cmr/detail/thread_record.hpp"

namespace cmr::detail {

// The calling thread is leaving the runtime: its last allocation count is flushed and its
// blocks lose their owner (heap/owner.cpp).
void heap_thread_exit(ThreadRecord* r) noexcept;

}  // namespace cmr::detail
