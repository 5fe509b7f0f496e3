// extern-benchmarks/leak_adapter.cpp: `leak` — lock-free structures that never free a node.
// The throughput every reclamation scheme would reach if reclamation cost nothing, and the
// memory it would use if nothing were reclaimed. skiplist: a Herlihy-Shavit skip list with
// range scans; tree: a Natarajan-Mittal tree (leak_ordered_structures.hpp); harris: the
// Harris-Michael list of the list workload.
#include <cstdint>
#include <string_view>

#include "counting_runtime.hpp"
#include "extern_impls.hpp"
#include "harris_michael_set.hpp"
#include "leak_ordered_structures.hpp"
#include "leak_structures.hpp"

namespace cmr::bench {
namespace {

struct LeakReclaim {
  struct Hook {};
  template <class Node>
  static Node* allocate(std::uint64_t key) {
    return counted_new<Node>(key);
  }
  template <class Node>
  static void free_unpublished(Node* n) {
    counted_delete(n);
  }
  template <class Node>
  static void retire(Node*) {}  // the point of this implementation
  template <class Node>
  static void destroy(Node*) {}  // leaks at destruction too: the run ends with the process
};

class LeakList : public HarrisMichaelSet<LeakReclaim> {
 public:
  LeakList() : HarrisMichaelSet(1) {}
};

struct LeakImpl {
  static constexpr std::string_view kName = "leak";
  static constexpr std::string_view kScheme =
      "never frees: MS queue, Treiber stack, Harris-Michael list/hash set, skip list, "
      "Natarajan-Mittal tree (upper bound)";
  static constexpr std::string_view kStallNote = "nothing to hold";
  using Runtime = CountingRuntime;
  using ThreadScope = NoThreadScope;
  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    wait();
  }
  using Queue = leak::MsQueue<std::uint64_t>;
  using Stack = leak::TreiberStack<std::uint64_t>;
  using Set = HarrisMichaelSet<LeakReclaim>;
  using List = LeakList;
  using SkipList = leak::SkipList;
  using Tree = leak::NmTree;
  using Harris = LeakList;
};

}  // namespace

void add_leak_impls(std::vector<ImplInfo>& out) { out.push_back(make_impl_info<LeakImpl>()); }

}  // namespace cmr::bench
