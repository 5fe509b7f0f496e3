// extern-benchmarks/boost_adapter.cpp: `boost_lf` — boost::lockfree::queue and ::stack.
//
// Boost.Lockfree never returns a node to the allocator while the structure lives: popped
// nodes go to an internal freelist (tagged pointers make reuse ABA-safe). Its "unreclaimed"
// figure is therefore the pool's high-water mark, counted through the allocator the pool
// grows with. It has no set or list.
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/stack.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

#include "counting_runtime.hpp"
#include "extern_impls.hpp"

namespace cmr::bench {
namespace {

// Nodes reserved up front: the prefill plus headroom, so the timed phase rarely grows it.
constexpr std::size_t kReserve = 2 * kQueuePrefill;

template <template <class...> class Container>
class BoostAdapter {
 public:
  BoostAdapter() : c_(kReserve) {}
  void push(std::uint64_t v) {
    // push (not bounded_push): grows the pool from the allocator when the freelist is empty.
    while (!c_.push(v)) {
    }
  }
  std::optional<std::uint64_t> try_pop() {
    std::uint64_t v;
    if (c_.pop(v)) return v;
    return std::nullopt;
  }

 private:
  Container<std::uint64_t, boost::lockfree::allocator<CountingAllocator<void>>> c_;
};

struct BoostImpl {
  static constexpr std::string_view kName = "boost_lf";
  static constexpr std::string_view kScheme =
      "Boost.Lockfree: node freelist with tagged pointers, never frees while alive";
  static constexpr std::string_view kStallNote = "nothing to hold (no read-side protection)";
  using Runtime = CountingRuntime;
  using ThreadScope = NoThreadScope;
  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    wait();
  }
  using Queue = BoostAdapter<boost::lockfree::queue>;
  using Stack = BoostAdapter<boost::lockfree::stack>;
  using Set = Unsupported;
  using List = Unsupported;
};

}  // namespace

void add_boost_impls(std::vector<ImplInfo>& out) { out.push_back(make_impl_info<BoostImpl>()); }

}  // namespace cmr::bench
