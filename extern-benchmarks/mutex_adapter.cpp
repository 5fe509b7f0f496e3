// extern-benchmarks/mutex_adapter.cpp: `mutex` (one std::mutex per structure) and `rwlock`
// (one std::shared_mutex per set/list; lookups take it shared). Nodes are freed at once.
// skiplist and tree: std::set under the lock (locked_structures.hpp), with range scans;
// harris: the same sorted chain as the list workload.
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string_view>

#include "counting_runtime.hpp"
#include "extern_impls.hpp"
#include "locked_structures.hpp"

namespace cmr::bench {
namespace {

struct MutexImpl {
  static constexpr std::string_view kName = "mutex";
  static constexpr std::string_view kScheme = "std::mutex around a sequential structure";
  static constexpr std::string_view kStallNote =
      "nothing held (a held lock would block every worker)";
  using Runtime = CountingRuntime;
  using ThreadScope = NoThreadScope;
  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    wait();
  }
  using Queue = locked::Queue;
  using Stack = locked::Stack;
  using Set = locked::SortedSet<std::mutex>;
  using List = locked::SortedSet<std::mutex>;
  using SkipList = locked::OrderedSet<std::mutex>;
  using Tree = locked::OrderedSet<std::mutex>;
  using Harris = locked::SortedSet<std::mutex>;
};

struct RwLockImpl {
  static constexpr std::string_view kName = "rwlock";
  static constexpr std::string_view kScheme = "std::shared_mutex, lookups and scans shared (keyed workloads)";
  static constexpr std::string_view kStallNote =
      "nothing held (a held read lock would block every writer)";
  using Runtime = CountingRuntime;
  using ThreadScope = NoThreadScope;
  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    wait();
  }
  using Queue = Unsupported;  // every queue/stack operation writes: same as `mutex`
  using Stack = Unsupported;
  using Set = locked::SortedSet<std::shared_mutex>;
  using List = locked::SortedSet<std::shared_mutex>;
  using SkipList = locked::OrderedSet<std::shared_mutex>;
  using Tree = locked::OrderedSet<std::shared_mutex>;
  using Harris = locked::SortedSet<std::shared_mutex>;
};

}  // namespace

void add_mutex_impls(std::vector<ImplInfo>& out) {
  out.push_back(make_impl_info<MutexImpl>());
  out.push_back(make_impl_info<RwLockImpl>());
}

}  // namespace cmr::bench
