// src/heap.hpp: the allocation slow paths' side of the runtime (see heap.cpp).
#pragma once

#include "cmr/detail/thread_record.hpp"

namespace cmr::detail {

// The calling thread is leaving the runtime: its last allocation count is flushed and its
// blocks lose their owner (blocks.cpp).
void heap_thread_exit(ThreadRecord* r) noexcept;

}  // namespace cmr::detail
