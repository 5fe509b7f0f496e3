// extern-benchmarks/counting_runtime.hpp: the Runtime and ThreadScope of implementations
// that need no process-wide set-up, and whose unreclaimed objects the harness counts
// through counted_new / CountingAllocator.
#pragma once

#include <cstdint>
#include <optional>

#include "harness/columns.hpp"
#include "harness/config.hpp"
#include "harness/counting.hpp"

namespace cmr::bench {

class CountingRuntime {
 public:
  explicit CountingRuntime(const RunConfig&) {}
  std::optional<std::uint64_t> unreclaimed() { return AllocationCounter::live(); }
  void extra_columns(Columns&) {}
};

struct NoThreadScope {};

}  // namespace cmr::bench
