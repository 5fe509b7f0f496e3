// compare/cmr_adapter.hpp: cmr's own structures as a harness implementation (`cmr`).
#pragma once

#include <vector>

#include "harness/impl.hpp"

namespace cmr::bench {

// Adds `cmr` when this build has the <cmr/ds/...> headers; otherwise adds nothing and
// cmr_missing_reason() says why.
void add_cmr_impls(std::vector<ImplInfo>& out);
const char* cmr_missing_reason();

}  // namespace cmr::bench
