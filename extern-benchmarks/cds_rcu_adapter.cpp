// extern-benchmarks/cds_rcu_adapter.cpp: `cds_rcu` — libcds 2.3's ordered sets over its own
// user-space RCU, cds::urcu::gc<cds::urcu::general_buffered<>>: SkipListSet (`skiplist`),
// EllenBinTreeSet (`tree`) and MichaelList (`harris`).
//
// What this RCU is: libcds's own implementation of the general-purpose RCU of Desnoyers et
// al. (it does not use liburcu and cannot be built over it: libcds has no liburcu back-end,
// and its containers need its gc<> wrapper). A reader's lock bumps a per-thread nesting
// word and issues a seq_cst fence (liburcu's `mb` flavour, not the sys_membarrier-based
// `memb` of `urcu`). A retired node goes into one global bounded buffer (256 entries by
// default); the thread whose retire finds it full runs synchronize(): it waits for every
// reader in a critical section to leave, then frees the whole buffer itself. So reclamation
// is inline and blocking for the eraser, nothing runs in the background, and at most ~256
// retired nodes wait at any time (plus what is retired during a synchronize).
//
// Library defaults are kept except the counting allocators (cds_ordered.hpp). The
// containers take the RCU lock inside contains/insert/erase themselves; erase must be
// called outside it (it may synchronize), as the harness does. No range scan: see
// cds_ordered.hpp.
//
// The stall holds nothing: a thread stalled inside the read lock would block the next
// synchronize() forever, so every eraser would hang (not grow a backlog, as with `urcu`)
// and the run could not stop.
#include <cds/urcu/general_buffered.h>
// The RCU containers after the RCU flavour, as libcds requires.
#include <cds/container/ellen_bintree_set_rcu.h>
#include <cds/container/michael_list_rcu.h>
#include <cds/container/skip_list_set_rcu.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "cds_common.hpp"
#include "cds_ordered.hpp"
#include "extern_impls.hpp"

namespace cmr::bench {
namespace {

using Rcu = cds::urcu::gc<cds::urcu::general_buffered<>>;
namespace cc = cds::container;

using RcuList =
    cc::MichaelList<Rcu, std::uint64_t,
                    typename cc::michael_list::make_traits<cds_ordered::Less,
                                                           cds_common::NodeAllocator>::type>;

struct CdsRcuImpl {
  static constexpr std::string_view kName = "cds_rcu";
  static constexpr std::string_view kScheme =
      "libcds general-purpose buffered RCU (its own, not liburcu): fenced read lock, "
      "eraser synchronizes when the 256-entry buffer fills";
  static constexpr std::string_view kStallNote =
      "nothing held (a held read lock would block every eraser's synchronize)";

  class Runtime {
   public:
    explicit Runtime(const RunConfig&) {}
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    std::optional<std::uint64_t> unreclaimed() { return AllocationCounter::live(); }
    void extra_columns(Columns&) {}

   private:
    struct Library {
      Library() { cds::Initialize(); }
      ~Library() { cds::Terminate(); }
    } library_;  // declared first: initialised before the RCU singleton, terminated after it
    Rcu rcu_;     // the library's default buffer capacity
  };
  using ThreadScope = cds_common::ThreadScope;

  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    wait();
  }

  using Queue = Unsupported;
  using Stack = Unsupported;
  using Set = Unsupported;
  using List = Unsupported;
  using SkipList = cds_ordered::SetAdapter<cds_ordered::SkipListSet<Rcu>>;
  using Tree = cds_ordered::SetAdapter<cds_ordered::EllenTreeSet<Rcu>>;
  using Harris = cds_ordered::SetAdapter<RcuList>;
};

}  // namespace

void add_cds_rcu_impls(std::vector<ImplInfo>& out) {
  out.push_back(make_impl_info<CdsRcuImpl>());
}

}  // namespace cmr::bench
