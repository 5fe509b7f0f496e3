// src/heap.hpp: the tracked heap's allocation and freeing (see heap.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cmr::detail {

// Runs the object's destructor and returns its memory to the backing allocator. Called
// only by the collector for garbage of a completed cycle. Returns the payload bytes.
std::size_t free_object(void* object) noexcept;

// Payload bytes of a tracked object (from its header).
std::size_t object_bytes(const void* object) noexcept;

}  // namespace cmr::detail
