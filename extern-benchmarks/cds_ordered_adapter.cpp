// extern-benchmarks/cds_ordered_adapter.cpp: the `skiplist` and `tree` workloads of `cds_hp`
// and `cds_dhp`: libcds 2.3's SkipListSet and EllenBinTreeSet over classic hazard pointers
// (cds::gc::HP) and dynamic hazard pointers (cds::gc::DHP).
//
// These entries are merged into cds_adapter.cpp's of the same names (one implementation per
// scheme across all workloads); they live in their own translation unit only because the
// libcds templates are slow to compile. The set-up is the same (cds_common.hpp) except the
// number of hazard pointers per thread under HP, which must cover the structure's own
// requirement (SkipListSet: 2 x 32 levels + 3 = 67; EllenBinTree: 9; the default is 8, too
// few for either, and the containers' constructors throw when it is short). DHP allocates
// its hazard pointers on demand. Structures and the absence of range scans:
// cds_ordered.hpp.
#include <cds/container/ellen_bintree_set_dhp.h>
#include <cds/container/ellen_bintree_set_hp.h>
#include <cds/container/skip_list_set_dhp.h>
#include <cds/container/skip_list_set_hp.h>
#include <cds/gc/dhp.h>
#include <cds/gc/hp.h>

#include <algorithm>
#include <cstddef>
#include <string_view>

#include "cds_common.hpp"
#include "cds_ordered.hpp"
#include "extern_impls.hpp"

namespace cmr::bench {
namespace {

template <class GC>
struct CdsOrderedImpl {
  using SkipListSet = cds_ordered::SkipListSet<GC>;
  using TreeSet = cds_ordered::EllenTreeSet<GC>;

  static constexpr std::string_view kName = cds_common::kHpName<GC>;
  static constexpr std::string_view kScheme = cds_common::kHpScheme<GC>;
  static constexpr std::string_view kStallNote = cds_common::kHpStallNote;

  // The hazard pointers this run's structure needs; 0 (the library's default) otherwise.
  static std::size_t hazard_ptrs(const RunConfig& c) {
    if (c.workload == Workload::kSkipList) return SkipListSet::c_nHazardPtrCount;
    if (c.workload == Workload::kTree) return TreeSet::c_nHazardPtrCount;
    return 0;
  }

  struct Runtime : cds_common::Runtime<GC> {
    explicit Runtime(const RunConfig& c) : cds_common::Runtime<GC>(c, hazard_ptrs(c)) {}
  };
  using ThreadScope = cds_common::ThreadScope;

  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    cds_common::hp_stall<GC>(wait);
  }

  using Queue = Unsupported;  // cds_adapter.cpp's
  using Stack = Unsupported;
  using Set = Unsupported;
  using List = Unsupported;
  using SkipList = cds_ordered::SetAdapter<SkipListSet>;
  using Tree = cds_ordered::SetAdapter<TreeSet>;
};

}  // namespace

void add_cds_ordered_impls(std::vector<ImplInfo>& out) {
  merge_impl(out, make_impl_info<CdsOrderedImpl<cds::gc::HP>>());
  merge_impl(out, make_impl_info<CdsOrderedImpl<cds::gc::DHP>>());
}

}  // namespace cmr::bench
