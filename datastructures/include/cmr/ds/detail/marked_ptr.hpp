// cmr/ds/detail/marked_ptr.hpp: the deletion mark of the list-based structures, kept in the
// low bit of a link (nodes are at least 2-byte aligned, so the bit is free). A marked
// pointer still points inside its node, so cmr's conservative scan keeps the node alive;
// strip the mark before any dereference.
#pragma once

#include <cstdint>

namespace cmr::ds::detail {

template <class Node>
bool is_marked(Node* p) noexcept {
  return (reinterpret_cast<std::uintptr_t>(p) & 1) != 0;
}
template <class Node>
Node* marked(Node* p) noexcept {
  return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(p) | 1);
}
template <class Node>
Node* unmarked(Node* p) noexcept {
  return reinterpret_cast<Node*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{1});
}

}  // namespace cmr::ds::detail
