// harness/impl.hpp: how an implementation plugs into the harness, and the type-erased entry
// the driver selects by name.
//
// An implementation is a struct with:
//   static constexpr std::string_view kName, kScheme;   // CLI name; one line on reclamation
//   static constexpr std::string_view kStallNote;       // what stall() holds (for the note)
//   class Runtime {                       // process-wide state of the scheme, one per run
//     explicit Runtime(const RunConfig&);
//     std::optional<std::uint64_t> unreclaimed();   // called by the monitor thread
//     void extra_columns(Columns&);                 // after the run (pauses, notes, ...)
//   };
//   class ThreadScope;                    // RAII on every thread that touches a structure
//   template <class Wait> static void stall(Runtime&, Wait&& wait);
//                                         // take a guard / read lock, wait(), release
//   using Queue = ..., Stack = ..., Set = ..., List = ...;   // or Unsupported
// Queue/Stack: default-constructible, push(std::uint64_t), std::optional<std::uint64_t>
// try_pop(). Set: constructible from a bucket count; List: default-constructible; both
// bool insert(std::uint64_t), bool erase(const std::uint64_t&), bool contains(const ...&).
// The harness instantiates the workloads for it, so every implementation runs the same code.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <type_traits>

#include "harness/config.hpp"
#include "harness/mixed_workload.hpp"
#include "harness/push_pop_workload.hpp"
#include "harness/run_report.hpp"

namespace cmr::bench {

// Marks a workload an implementation does not provide; the driver skips that pair.
struct Unsupported {};

template <class S>
inline constexpr bool kProvides = !std::is_same_v<S, Unsupported>;

using RunFn = RunReport (*)(const RunConfig&);

struct ImplInfo {
  std::string_view name;
  std::string_view scheme;
  std::array<bool, 4> supports{};  // indexed by Workload
  RunFn run = nullptr;

  bool provides(Workload w) const { return supports[static_cast<int>(w)]; }
};

template <class Impl>
RunReport run_workload(const RunConfig& cfg) {
  switch (cfg.workload) {
    case Workload::kQueue:
      if constexpr (kProvides<typename Impl::Queue>)
        return run_push_pop<Impl, typename Impl::Queue>(cfg, /*check_fifo=*/true);
      break;
    case Workload::kStack:
      if constexpr (kProvides<typename Impl::Stack>)
        return run_push_pop<Impl, typename Impl::Stack>(cfg, /*check_fifo=*/false);
      break;
    case Workload::kSet:
      if constexpr (kProvides<typename Impl::Set>)
        return run_mixed<Impl, typename Impl::Set, /*kBucketed=*/true>(cfg);
      break;
    case Workload::kList:
      if constexpr (kProvides<typename Impl::List>)
        return run_mixed<Impl, typename Impl::List, /*kBucketed=*/false>(cfg);
      break;
  }
  RunReport r;
  r.columns.set("ok", "no");
  r.columns.add_note("workload not provided");
  return r;
}

template <class Impl>
RunReport run_impl(const RunConfig& cfg) {
  RunReport r = run_workload<Impl>(cfg);
  if (cfg.stall) r.columns.add_note("stall: " + std::string(Impl::kStallNote));
  return r;
}

template <class Impl>
ImplInfo make_impl_info() {
  ImplInfo info;
  info.name = Impl::kName;
  info.scheme = Impl::kScheme;
  info.supports = {kProvides<typename Impl::Queue>, kProvides<typename Impl::Stack>,
                   kProvides<typename Impl::Set>, kProvides<typename Impl::List>};
  info.run = &run_impl<Impl>;
  return info;
}

}  // namespace cmr::bench
