// src/reclaim.hpp: applying a completed cycle's answer (see reclaim.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "scanner.hpp"

namespace cmr::detail {

struct Reclaimed {
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;  // slot bytes (a large object's whole span)
};

// Destroys the garbage that needs it and makes every listed slot reusable. `entries` are
// a complete answer's, in ascending (block, word) order. Runs on the collector's thread,
// never while threads are held.
Reclaimed reclaim(const GarbageWord* entries, std::size_t count) noexcept;

}  // namespace cmr::detail
