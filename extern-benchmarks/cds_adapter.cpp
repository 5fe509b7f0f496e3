// extern-benchmarks/cds_adapter.cpp: `cds_hp` and `cds_dhp` — libcds 2.3 containers over
// classic hazard pointers (cds::gc::HP) and dynamic hazard pointers (cds::gc::DHP).
//
// Structures: cds::container::MSQueue, TreiberStack, MichaelList (the `list` and `harris`
// workloads: Michael's restarting form of Harris's list) and MichaelHashSet over
// MichaelList (the `set` workload). The skiplist and tree workloads of the same names are
// in cds_ordered_adapter.cpp (merged into these entries). Library defaults are kept (back-off,
// HP counts, scan type) except two choices made for a like-for-like comparison:
//   - the set's item counter is disabled (empty_item_counter): the default is one shared
//     atomic counter bumped by every insert/erase, a contention point no other implementation
//     has; the harness checks the size with contains() instead;
//   - node allocation goes through CountingAllocator, so the harness sees retired-but-not-
//     yet-freed nodes (a per-thread counter, no shared writes).
// Every thread attaches to libcds (cds::threading::Manager) before touching a container.
#include <cds/container/michael_list_dhp.h>
#include <cds/container/michael_list_hp.h>
#include <cds/container/michael_set.h>
#include <cds/container/msqueue.h>
#include <cds/container/treiber_stack.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "cds_common.hpp"
#include "extern_impls.hpp"

namespace cmr::bench {
namespace {

namespace cc = cds::container;
using cds_common::NodeAllocator;

template <class GC>
class CdsQueue {
 public:
  void push(std::uint64_t v) { q_.enqueue(v); }
  std::optional<std::uint64_t> try_pop() {
    std::uint64_t v;
    if (q_.dequeue(v)) return v;
    return std::nullopt;
  }

 private:
  cc::MSQueue<GC, std::uint64_t, typename cc::msqueue::make_traits<NodeAllocator>::type> q_;
};

template <class GC>
class CdsStack {
 public:
  void push(std::uint64_t v) { s_.push(v); }
  std::optional<std::uint64_t> try_pop() {
    std::uint64_t v;
    if (s_.pop(v)) return v;
    return std::nullopt;
  }

 private:
  cc::TreiberStack<GC, std::uint64_t,
                   typename cc::treiber_stack::make_traits<NodeAllocator>::type>
      s_;
};

template <class GC>
using CdsOrderedList =
    cc::MichaelList<GC, std::uint64_t,
                    typename cc::michael_list::make_traits<cds::opt::less<std::less<std::uint64_t>>,
                                                           NodeAllocator>::type>;

// The harness's key type is std::uint64_t; identity hashing matches std::hash<uint64_t>
// and spreads the uniform keys evenly over the power-of-two bucket table.
struct KeyHash {
  std::size_t operator()(std::uint64_t k) const { return static_cast<std::size_t>(k); }
};

template <class GC>
class CdsSet {
 public:
  // MichaelHashSet sizes its table as ceil2(max_items / load_factor): (buckets, 1) gives
  // exactly `buckets` buckets.
  explicit CdsSet(std::size_t buckets) : set_(buckets, 1) {}
  bool insert(std::uint64_t k) { return set_.insert(k); }
  bool erase(const std::uint64_t& k) { return set_.erase(k); }
  bool contains(const std::uint64_t& k) { return set_.contains(k); }

 private:
  cc::MichaelHashSet<GC, CdsOrderedList<GC>,
                     typename cc::michael_set::make_traits<
                         cds::opt::hash<KeyHash>,
                         cds::opt::item_counter<cds::atomicity::empty_item_counter>>::type>
      set_;
};

template <class GC>
class CdsList {
 public:
  bool insert(std::uint64_t k) { return list_.insert(k); }
  bool erase(const std::uint64_t& k) { return list_.erase(k); }
  bool contains(const std::uint64_t& k) { return list_.contains(k); }

 private:
  CdsOrderedList<GC> list_;
};

template <class GC>
struct CdsImpl {
  static constexpr std::string_view kName = cds_common::kHpName<GC>;
  static constexpr std::string_view kScheme = cds_common::kHpScheme<GC>;
  static constexpr std::string_view kStallNote = cds_common::kHpStallNote;

  struct Runtime : cds_common::Runtime<GC> {
    explicit Runtime(const RunConfig& c) : cds_common::Runtime<GC>(c, 0) {}
  };
  using ThreadScope = cds_common::ThreadScope;

  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    cds_common::hp_stall<GC>(wait);
  }

  using Queue = CdsQueue<GC>;
  using Stack = CdsStack<GC>;
  using Set = CdsSet<GC>;
  using List = CdsList<GC>;
  using Harris = CdsList<GC>;
};

}  // namespace

void add_cds_impls(std::vector<ImplInfo>& out) {
  out.push_back(make_impl_info<CdsImpl<cds::gc::HP>>());
  out.push_back(make_impl_info<CdsImpl<cds::gc::DHP>>());
}

}  // namespace cmr::bench
