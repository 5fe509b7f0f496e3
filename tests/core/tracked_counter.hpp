// tests/core/tracked_counter.hpp: a tracked type that counts its own destruction, for tests
// that must tell which objects a cycle freed (and that none was freed twice).
//
// Each Tracked gets an id; destroyed(id) is how many times its destructor ran (0 or 1 in a
// correct runtime). Ids wrap at kMaxIds, far more than any one test makes.
#pragma once

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
  std::uint64_t payload[3] = {};
};

inline int destroyed(int id) { return g_destroyed[id].load(); }

// Makes an object and drops its only guard: garbage from then on.
inline int make_garbage() {
  cmr::Guard<Tracked> g;
  return cmr::make<Tracked>(g)->id;
}

}  // namespace cmr_test
