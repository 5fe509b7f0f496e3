// extern-benchmarks/extern_impls.hpp: the implementations built from other libraries, as
// entries for the driver. Each add_* function exists only when its library was found at
// configure time (CMR_BENCH_HAVE_CDS / _URCU / _BOOST); extern_impls() lists what this build
// has, in the order `--impl all` runs them.
#pragma once

#include <vector>

#include "harness/impl.hpp"

namespace cmr::bench {

std::vector<ImplInfo> extern_impls();

void add_leak_impls(std::vector<ImplInfo>& out);
void add_mutex_impls(std::vector<ImplInfo>& out);
void add_boost_impls(std::vector<ImplInfo>& out);
void add_cds_impls(std::vector<ImplInfo>& out);
void add_cds_ordered_impls(std::vector<ImplInfo>& out);  // merges into cds_hp / cds_dhp
void add_cds_rcu_impls(std::vector<ImplInfo>& out);
void add_urcu_impls(std::vector<ImplInfo>& out);

}  // namespace cmr::bench
