// src/threads/roots.hpp: the root registry: every live cmr::Root, in one circular list.
//
// A Root links itself in when it is constructed and out when it is destroyed, under the
// registry lock (threads/registry.hpp), which the collector holds for the whole pause: the
// list it walks while copying the roots never changes under it.
#pragma once

#include <cstddef>

#include "cmr/atomic.hpp"

namespace cmr::detail {

struct RootRegistry {
  RootNode sentinel;      // of the circular list; never a Root itself
  std::size_t count = 0;  // Roots on the list (sizes the collector's root buffer)
  RootRegistry() { sentinel.prev = sentinel.next = &sentinel; }
};

// Under the registry lock. Created on first use, never destroyed.
RootRegistry& roots();

}  // namespace cmr::detail
