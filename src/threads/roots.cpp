// src/threads/roots.cpp: linking cmr::Roots into the root registry (see roots.hpp).
//
// A Root is linked before its constructor returns and unlinked in its destructor, both
// under the registry lock, so a pause sees every Root that exists while it holds the
// threads, and none that was destroyed.
#include "threads/roots.hpp"

#include <mutex>

#include "runtime/runtime.hpp"
#include "threads/registry.hpp"

namespace cmr::detail {

RootRegistry& roots() {
  static RootRegistry* const state = new RootRegistry();
  return *state;
}

void register_root(RootNode* node) {
  ensure_running();
  std::lock_guard lock(registry().mutex);
  RootNode& head = roots().sentinel;
  node->next = head.next;
  node->prev = &head;
  head.next->prev = node;
  head.next = node;
  ++roots().count;
}

void unregister_root(RootNode* node) noexcept {
  if (node->next == nullptr) return;
  std::lock_guard lock(registry().mutex);
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = node->prev = nullptr;
  --roots().count;
}

}  // namespace cmr::detail
