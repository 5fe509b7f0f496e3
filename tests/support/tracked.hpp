// tests/support/tracked.hpp: the tracked type of the tests, which counts its own
// destruction, for tests that must tell which objects a cycle freed (and that none was
// freed twice).
//
// Each Tracked gets an id; destroyed(id) is how many times its destructor ran (0 or 1 in a
// correct runtime). The count lives in a side table, never in the object, so reading it
// never touches memory a cycle may have freed. Ids wrap at kMaxIds, far more than any one
// process makes. `next` lets a test link Trackeds; `payload` gives it words to write.
//
// Every target that includes this header compiles with CMR_TEST_HOOKS (cmr_test_support
// passes it on): cmr::make<Tracked> and Guard<Tracked>::protect are inline templates, and
// one program must get one definition of each, with the hooks the invariant tests need.
#pragma once

#if !defined(CMR_TEST_HOOKS)
#error "link cmr_test_support, which compiles every user of Tracked with CMR_TEST_HOOKS"
#endif

#include <atomic>
#include <cstdint>

#include <cmr/cmr.hpp>

namespace cmr_test {

constexpr int kMaxIds = 1 << 16;
inline std::atomic<int> g_destroyed[kMaxIds];
inline std::atomic<int> g_next_id{0};

struct Tracked {
  Tracked() : id(g_next_id.fetch_add(1) % kMaxIds) {}
  ~Tracked() { g_destroyed[id].fetch_add(1); }
  int id;
  cmr::Atomic<Tracked> next;
  std::uint64_t payload[3] = {};
};

inline int destroyed(int id) { return g_destroyed[id].load(); }

// Makes an object and drops its only guard: garbage from then on.
inline int make_garbage() {
  cmr::Guard<Tracked> g;
  return cmr::make<Tracked>(g)->id;
}

// Makes an object that `root` keeps.
inline int make_rooted(cmr::Root<Tracked>& root) {
  cmr::Guard<Tracked> g;
  Tracked* t = cmr::make<Tracked>(g);
  root.store(t);
  return t->id;
}

}  // namespace cmr_test
