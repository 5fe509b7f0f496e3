// extern-benchmarks/cds_common.hpp: what every libcds-based implementation shares: the
// library's process-wide set-up (cds::Initialize, then the GC singleton), the per-thread
// attach, the stall, and the counting node allocators.
//
// Invariants: cds::Initialize() runs before the GC singleton is built and cds::Terminate()
// after it is destroyed; every thread that touches a container is attached for as long as
// it does. cds_hp and cds_dhp are assembled from two translation units (cds_adapter.cpp,
// cds_ordered_adapter.cpp); both build their Runtime from CdsRuntime, so a run is set up
// the same way whichever part runs it.
#pragma once

#include <cds/gc/dhp.h>
#include <cds/gc/hp.h>
#include <cds/init.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

#include "counting_runtime.hpp"
#include "harness/columns.hpp"
#include "harness/config.hpp"
#include "harness/counting.hpp"

namespace cmr::bench::cds_common {

// Counts n objects per allocate(n): right where libcds allocates nodes one at a time, as
// MSQueue, TreiberStack and MichaelList do.
using NodeAllocator = cds::opt::allocator<CountingAllocator<int>>;

// Counts one object per allocate() call, whatever its size: SkipListSet allocates a node
// with its tower as one block of bytes (an unsigned char allocator, n = bytes), which is
// still one node.
template <class T>
struct CountingBlockAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = CountingBlockAllocator<U>;
  };
  CountingBlockAllocator() noexcept = default;
  template <class U>
  CountingBlockAllocator(const CountingBlockAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    AllocationCounter::on_allocate(1);
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept {
    std::allocator<T>{}.deallocate(p, n);
    AllocationCounter::on_free(1);
  }
  template <class U>
  friend bool operator==(const CountingBlockAllocator&, const CountingBlockAllocator<U>&) noexcept {
    return true;
  }
};

// The GC singleton's parameters. HP: the library's default hazard pointers per thread (8)
// unless the structure needs more (its c_nHazardPtrCount: 67 for the default skip list, 9
// for EllenBinTree; the constructor throws when they are missing), and the default thread
// bound (100) unless the run has more threads (workers + stall + main + prefill + margin).
// The retired-list capacity keeps its default (2 x threads x hazard pointers).
template <class GC>
struct GcHolder;
template <>
struct GcHolder<cds::gc::HP> {
  GcHolder(const RunConfig& c, std::size_t hazard_ptrs)
      : gc(hazard_ptrs, std::max<std::size_t>(100, static_cast<std::size_t>(c.threads) + 16)) {}
  cds::gc::HP gc;
};
template <>
struct GcHolder<cds::gc::DHP> {
  GcHolder(const RunConfig&, std::size_t) {}  // hazard pointers grow on demand
  cds::gc::DHP gc;
};

// hazard_ptrs: 0 for the library's default.
template <class GC>
class Runtime {
 public:
  Runtime(const RunConfig& c, std::size_t hazard_ptrs) : gc_(c, hazard_ptrs) {}
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  std::optional<std::uint64_t> unreclaimed() { return AllocationCounter::live(); }
  void extra_columns(Columns&) {}

 private:
  struct Library {
    Library() { cds::Initialize(); }
    ~Library() { cds::Terminate(); }
  } library_;  // declared first: initialised before the GC, terminated after it
  GcHolder<GC> gc_;
};

class ThreadScope {
 public:
  ThreadScope() { cds::threading::Manager::attachThread(); }
  ~ThreadScope() { cds::threading::Manager::detachThread(); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
};

template <class GC>
inline constexpr std::string_view kHpName =
    std::is_same_v<GC, cds::gc::HP> ? "cds_hp" : "cds_dhp";
template <class GC>
inline constexpr std::string_view kHpScheme =
    std::is_same_v<GC, cds::gc::HP> ? "libcds hazard pointers (cds::gc::HP)"
                                    : "libcds dynamic hazard pointers (cds::gc::DHP)";
inline constexpr std::string_view kHpStallNote =
    "one hazard pointer held (on an object never retired)";

// A stalled hazard-pointer reader can pin only what its hazard pointers name: at most a
// handful of nodes. Which node makes no difference to the bound, so pin a private one.
template <class GC, class Wait>
void hp_stall(Wait&& wait) {
  static std::uint64_t pinned;
  typename GC::Guard guard;
  guard.assign(&pinned);
  wait();
}

}  // namespace cmr::bench::cds_common
