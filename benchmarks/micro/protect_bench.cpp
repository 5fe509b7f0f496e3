// benchmarks/micro/protect_bench.cpp: the read-side cost of cmr, measured against what a
// lock-free structure would pay without reclamation and with hazard pointers.
//
// Every group has the same shape, so scripts/micro.sh can print ratios from one run:
//   <group>/base_load_acquire  std::atomic<T*>::load(acquire): no reclamation at all
//   <group>/hp_publish         hazard-pointer protect written inline: seq_cst publish in a
//                              per-thread slot + re-validating load (the fence cmr avoids)
//   <group>/cmr_guard          cmr::Guard::protect
// Groups: `protect` (one stable object, 1..N threads reading the same source) and
// `traverse1000` (a 1000-node list walked hand-over-hand with two slots/guards).
// `protect/cmr_guard_scope` adds a Guard's construction and destruction to each protect:
// the cost when a guard is not hoisted out of the operation.
#include <benchmark/benchmark.h>

#include <cmr/cmr.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace {

struct Obj {
  std::uint64_t value = 42;
};

struct ListNode {
  explicit ListNode(std::uint64_t v) : value(v) {}
  std::uint64_t value;
  cmr::Atomic<ListNode> next;
};

// Set up in main() after cmr::init and never freed: the Roots keep the objects reachable for
// the whole run, so the benchmarks measure protect alone, never a miss or a retry.
cmr::Root<Obj>* g_obj_root = nullptr;
std::atomic<Obj*> g_obj_plain{nullptr};
cmr::Root<ListNode>* g_list_root = nullptr;
constexpr int kListLength = 1000;

// One hazard slot per benchmark thread, each on its own line so that threads publishing
// concurrently do not share a line (as a real hazard-pointer domain arranges it).
struct alignas(64) HazardSlot {
  std::atomic<void*> p{nullptr};
};
std::unique_ptr<HazardSlot[]> g_hazards;

// The classic hazard-pointer protect: the publish must be visible to reclaimers before the
// re-validation load, which on x86 costs a full fence (xchg or mov + mfence). Src is a
// std::atomic<T*> or a cmr::Atomic<T>: the same load instructions.
template <class Src>
auto* hp_protect(std::atomic<void*>& slot, const Src& src) {
  auto* p = src.load(std::memory_order_relaxed);
  for (;;) {
    slot.store(p, std::memory_order_seq_cst);
    auto* q = src.load(std::memory_order_acquire);
    if (q == p) return p;
    p = q;
  }
}

// ---- protect: one stable object ------------------------------------------------------

void BM_protect_load(benchmark::State& state) {
  for (auto _ : state) {
    Obj* p = g_obj_plain.load(std::memory_order_acquire);
    benchmark::DoNotOptimize(p);
  }
}

void BM_protect_hp(benchmark::State& state) {
  std::atomic<void*>& slot = g_hazards[state.thread_index()].p;
  for (auto _ : state) {
    Obj* p = hp_protect(slot, g_obj_plain);
    benchmark::DoNotOptimize(p);
  }
  slot.store(nullptr, std::memory_order_release);
}

void BM_protect_cmr(benchmark::State& state) {
  cmr::Guard<Obj> g;
  for (auto _ : state) {
    Obj* p = g.protect(*g_obj_root, std::memory_order_acquire);
    benchmark::DoNotOptimize(p);
  }
}

void BM_protect_scope_cmr(benchmark::State& state) {
  for (auto _ : state) {
    cmr::Guard<Obj> g;
    Obj* p = g.protect(*g_obj_root, std::memory_order_acquire);
    benchmark::DoNotOptimize(p);
  }
}

// ---- traverse1000: hand-over-hand walk ------------------------------------------------

void BM_traverse_load(benchmark::State& state) {
  const cmr::Atomic<ListNode>& head = *g_list_root;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (ListNode* n = head.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire))
      sum += n->value;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kListLength);
}

void BM_traverse_hp(benchmark::State& state) {
  // Two slots per thread: the current node stays protected while the next is published.
  thread_local HazardSlot pair[2];
  const cmr::Atomic<ListNode>& head = *g_list_root;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    int cur = 0;
    for (ListNode* n = hp_protect(pair[cur].p, head); n != nullptr;) {
      sum += n->value;
      cur ^= 1;
      n = hp_protect(pair[cur].p, n->next);
    }
    benchmark::DoNotOptimize(sum);
  }
  pair[0].p.store(nullptr, std::memory_order_release);
  pair[1].p.store(nullptr, std::memory_order_release);
  state.SetItemsProcessed(state.iterations() * kListLength);
}

void BM_traverse_cmr(benchmark::State& state) {
  cmr::Guard<ListNode> a, b;
  // Alternating through pointers, not swapping the guards: a swap is three moves, which
  // would be charged to cmr but is no part of the scheme.
  cmr::Guard<ListNode>* g[2] = {&a, &b};
  for (auto _ : state) {
    std::uint64_t sum = 0;
    int cur = 0;
    for (ListNode* n = g[cur]->protect(*g_list_root, std::memory_order_acquire);
         n != nullptr;) {
      sum += n->value;
      cur ^= 1;
      n = g[cur]->protect(n->next, std::memory_order_acquire);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kListLength);
}

// Powers of two, then the hardware threads: a handful of runs even on a many-core machine,
// and the full-machine point always included.
std::vector<int> thread_counts() {
  const int n = std::max(1u, std::thread::hardware_concurrency());
  std::vector<int> out;
  for (int t = 1; t < n; t *= 2) out.push_back(t);
  out.push_back(n);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cmr::init();
  const std::vector<int> threads = thread_counts();
  g_hazards = std::make_unique<HazardSlot[]>(static_cast<std::size_t>(threads.back()));

  {
    cmr::Guard<Obj> g;
    Obj* o = cmr::make<Obj>(g);
    g_obj_root = new cmr::Root<Obj>(o);
    g_obj_plain.store(o, std::memory_order_release);
  }
  {
    // Pushed at the front, so the walk visits nodes in reverse allocation order, as a
    // stack-built list would.
    cmr::Guard<ListNode> g;
    g_list_root = new cmr::Root<ListNode>();
    for (int i = 0; i < kListLength; ++i) {
      ListNode* n = cmr::make<ListNode>(g, static_cast<std::uint64_t>(i));
      n->next.store(g_list_root->load());
      g_list_root->store(n);
    }
  }

  auto with_threads = [&](benchmark::internal::Benchmark* b) {
    for (int t : threads) b->Threads(t);
  };
  with_threads(benchmark::RegisterBenchmark("protect/base_load_acquire", BM_protect_load));
  with_threads(benchmark::RegisterBenchmark("protect/hp_publish", BM_protect_hp));
  with_threads(benchmark::RegisterBenchmark("protect/cmr_guard", BM_protect_cmr));
  with_threads(benchmark::RegisterBenchmark("protect/cmr_guard_scope", BM_protect_scope_cmr));
  benchmark::RegisterBenchmark("traverse1000/base_load_acquire", BM_traverse_load);
  benchmark::RegisterBenchmark("traverse1000/hp_publish", BM_traverse_hp);
  benchmark::RegisterBenchmark("traverse1000/cmr_guard", BM_traverse_cmr);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
