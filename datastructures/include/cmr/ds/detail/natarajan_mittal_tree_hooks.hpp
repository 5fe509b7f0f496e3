// cmr/ds/detail/natarajan_mittal_tree_hooks.hpp: the test hooks of NatarajanMittalTree.
//
// A translation unit that defines CMR_DS_NM_TREE_TEST_HOOKS before including
// this header gets a call to cmr::ds::detail::nm_tree_hook at each named point of the
// algorithm (the stress tests count the helping paths and stop a thread between two steps
// to force an interleaving). Without the macro the points compile to nothing. Define it in
// every translation unit of a program that includes this header, or in none.
#pragma once

#if defined(CMR_DS_NM_TREE_TEST_HOOKS)
namespace cmr::ds::detail {
enum class NmTreeEvent {
  kContainsStep,          // contains() stands on a new node, guarded
  kSeekStep,              // seek guarded the next node of its descent
  kSeekSkippedTag,        // seek kept its ancestor: the edge above the leaf was tagged
  kFlagged,               // erase flagged its leaf, before its first cleanup
  kTagged,                // cleanup froze the edge it keeps, before splicing
  kCleanupKeptChild,      // cleanup found its own edge unflagged: it helps the sibling
  kCleanupCarriedFlag,    // the edge moved up was flagged: its leaf is deleted next
  kCleanupLost,           // cleanup's splice failed (someone changed the ancestor's edge)
  kInsertHelps,           // insert found its edge flagged or tagged and helped
  kEraseHelps,            // erase found its edge flagged or tagged and helped
  kEraseFinishedByOther,  // erase's leaf was spliced out by another thread
  kCount
};
// Set only while no tree operation runs (the threads that call it start afterwards).
inline void (*nm_tree_hook)(NmTreeEvent) = nullptr;
}  // namespace cmr::ds::detail
#define CMR_DS_NM_TREE_EVENT(name)                                                   \
  do {                                                                               \
    if (auto cmr_hook_ = ::cmr::ds::detail::nm_tree_hook)                            \
      cmr_hook_(::cmr::ds::detail::NmTreeEvent::name);                               \
  } while (0)
#else
#define CMR_DS_NM_TREE_EVENT(name) \
  do {                             \
  } while (0)
#endif
