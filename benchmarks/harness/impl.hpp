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
//     void settle();            // optional: keyed workloads call it after the prefill, on
//                               // the main thread, to finish work the prefill left in
//                               // flight (a collection, pending callbacks) untimed
//   };
//   class ThreadScope;                    // RAII on every thread that touches a structure
//   template <class Wait> static void stall(Runtime&, Wait&& wait);
//                                         // take a guard / read lock, wait(), release
//   using Queue = ..., Stack = ..., Set = ..., List = ...;   // or Unsupported
//   using SkipList = ..., Tree = ..., Harris = ...;          // optional: absent = Unsupported
// Queue/Stack: default-constructible, push(std::uint64_t), std::optional<std::uint64_t>
// try_pop(). Set: constructible from a bucket count; List, SkipList, Tree, Harris:
// default-constructible; all of them bool insert(std::uint64_t), bool erase(const
// std::uint64_t&), bool contains(const std::uint64_t&). A SkipList that also has
// for_each_in(lo, hi, f) (f(const std::uint64_t&) for the keys in [lo, hi), increasing)
// runs the scan mixes; one without it is skipped for them. Provide for_each_in only where
// a scan is safe under concurrent erase (it reads nodes that may be unlinked meanwhile).
// The harness instantiates the workloads for it, so every implementation runs the same code.
//
// One name may be assembled from several structs (several translation units, to keep heavy
// template libraries apart): merge_impl() adds the workloads of one to an entry of the same
// name. Structs merged under one name must agree on what their Runtime does.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "harness/config.hpp"
#include "harness/mixed_workload.hpp"
#include "harness/push_pop_workload.hpp"
#include "harness/run_report.hpp"

namespace cmr::bench {

// Marks a workload an implementation does not provide; the driver skips that pair.
struct Unsupported {};

template <class S>
inline constexpr bool kProvides = !std::is_same_v<S, Unsupported>;

// The optional structure types, Unsupported where the implementation does not name them.
template <class Impl>
struct SkipListOf {
  using type = Unsupported;
};
template <class Impl>
  requires requires { typename Impl::SkipList; }
struct SkipListOf<Impl> {
  using type = typename Impl::SkipList;
};
template <class Impl>
struct TreeOf {
  using type = Unsupported;
};
template <class Impl>
  requires requires { typename Impl::Tree; }
struct TreeOf<Impl> {
  using type = typename Impl::Tree;
};
template <class Impl>
struct HarrisOf {
  using type = Unsupported;
};
template <class Impl>
  requires requires { typename Impl::Harris; }
struct HarrisOf<Impl> {
  using type = typename Impl::Harris;
};

using RunFn = RunReport (*)(const RunConfig&);

struct ImplInfo {
  std::string_view name;
  std::string_view scheme;
  std::array<RunFn, kWorkloadCount> run_for{};  // indexed by Workload; null = not provided
  bool scans = false;                           // its skiplist runs the scan mixes

  bool provides(Workload w) const { return run_for[static_cast<int>(w)] != nullptr; }
  // Whether the (workload, mix) pair runs; false for a scan mix it cannot do.
  bool provides(Workload w, const Mix& m) const {
    if (!provides(w)) return false;
    if (m.scan_width == 0) return true;
    return allows_scans(w) && scans;
  }
  RunReport run(const RunConfig& cfg) const {
    if (provides(cfg.workload, cfg.mix)) return run_for[static_cast<int>(cfg.workload)](cfg);
    RunReport r;
    r.columns.set("ok", "no");
    r.columns.add_note("workload not provided");
    return r;
  }
};

template <class Impl>
RunReport run_workload(const RunConfig& cfg) {
  using SkipList = typename SkipListOf<Impl>::type;
  using Tree = typename TreeOf<Impl>::type;
  using Harris = typename HarrisOf<Impl>::type;
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
    case Workload::kSkipList:
      if constexpr (kProvides<SkipList>) return run_mixed<Impl, SkipList, false>(cfg);
      break;
    case Workload::kTree:
      if constexpr (kProvides<Tree>) return run_mixed<Impl, Tree, false>(cfg);
      break;
    case Workload::kHarris:
      if constexpr (kProvides<Harris>) return run_mixed<Impl, Harris, false>(cfg);
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
  const bool provided[kWorkloadCount] = {
      kProvides<typename Impl::Queue>,         kProvides<typename Impl::Stack>,
      kProvides<typename Impl::Set>,           kProvides<typename Impl::List>,
      kProvides<typename SkipListOf<Impl>::type>, kProvides<typename TreeOf<Impl>::type>,
      kProvides<typename HarrisOf<Impl>::type>};
  for (std::size_t w = 0; w < kWorkloadCount; ++w)
    if (provided[w]) info.run_for[w] = &run_impl<Impl>;
  info.scans = kScans<typename SkipListOf<Impl>::type>;
  return info;
}

// Adds `more` to the entry of the same name (its workloads; the first entry's scheme line
// stays), or appends it when there is none.
inline void merge_impl(std::vector<ImplInfo>& into, const ImplInfo& more) {
  for (ImplInfo& i : into) {
    if (i.name != more.name) continue;
    for (std::size_t w = 0; w < kWorkloadCount; ++w)
      if (more.run_for[w] != nullptr) i.run_for[w] = more.run_for[w];
    if (more.provides(Workload::kSkipList)) i.scans = more.scans;
    return;
  }
  into.push_back(more);
}

}  // namespace cmr::bench
