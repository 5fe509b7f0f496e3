// extern-benchmarks/extern_impls.cpp: collects the implementations this build has. The
// order is the order of `--impl all`: the reclaiming schemes first, then the baselines.
#include "extern_impls.hpp"

namespace cmr::bench {

std::vector<ImplInfo> extern_impls() {
  std::vector<ImplInfo> out;
#ifdef CMR_BENCH_HAVE_CDS
  add_cds_impls(out);
  add_cds_ordered_impls(out);
  add_cds_rcu_impls(out);
#endif
#ifdef CMR_BENCH_HAVE_URCU
  add_urcu_impls(out);
#endif
#ifdef CMR_BENCH_HAVE_BOOST
  add_boost_impls(out);
#endif
  add_mutex_impls(out);
  add_leak_impls(out);
  return out;
}

}  // namespace cmr::bench
