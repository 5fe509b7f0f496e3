// compare/cmr_adapter.cpp: `cmr` — cmr::ds::MsQueue, TreiberStack, HashSet, SkipListSet,
// NatarajanMittalTree and HarrisList, reclaimed by cmr's collector (guards, a forked scanner
// child, a background freeing thread).
//
// Measurements only cmr can give, through cmr::stats() sampled by the harness's monitor
// thread every --sample-ms: live tracked objects (the unreclaimed column: it includes live
// nodes, as the allocation counter of the other implementations does), and the pause of
// each cycle (handshake + process creation), from which p50/p99/max over the timed phase are
// reported. `cycles` counts the cycles that completed (garbage freed) during the timed phase;
// the note also gives the number of pauses seen, the lifetime max pause, and the objects
// still live after one more collect() once the structure is destroyed (should be ~0).
//
// The `list` workload uses HashSet with one bucket (the Harris-Michael list, as the peers'
// `list`); `harris` is HarrisList, Harris's original list (a search unlinks a whole chain of
// marked nodes with one CAS), against the peers' Harris-Michael list (which restarts
// instead). `skiplist` is SkipListSet, with range scans (for_each_in); `tree` is
// NatarajanMittalTree. All with the ds library's defaults (the skip list's 24 levels).
// The header checks keep the rest of the driver building while cmr's structures are absent;
// each of the three newer structures is left out on its own when its header is.
#include "cmr_adapter.hpp"

#if __has_include(<cmr/ds/ms_queue.hpp>) && __has_include(<cmr/ds/treiber_stack.hpp>) && \
    __has_include(<cmr/ds/hash_set.hpp>) && __has_include(<cmr/cmr.hpp>)
#define CMR_BENCH_HAVE_CMR_DS 1
#endif

#ifdef CMR_BENCH_HAVE_CMR_DS

#include <cmr/cmr.hpp>
#include <cmr/ds/hash_set.hpp>
#include <cmr/ds/ms_queue.hpp>
#include <cmr/ds/treiber_stack.hpp>

#if __has_include(<cmr/ds/skip_list_set.hpp>)
#include <cmr/ds/skip_list_set.hpp>
#define CMR_BENCH_HAVE_CMR_SKIP_LIST 1
#endif
#if __has_include(<cmr/ds/natarajan_mittal_tree.hpp>)
#include <cmr/ds/natarajan_mittal_tree.hpp>
#define CMR_BENCH_HAVE_CMR_NM_TREE 1
#endif
#if __has_include(<cmr/ds/harris_list.hpp>)
#include <cmr/ds/harris_list.hpp>
#define CMR_BENCH_HAVE_CMR_HARRIS_LIST 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmr::bench {
namespace {

class CmrList : public cmr::ds::HashSet<std::uint64_t> {
 public:
  CmrList() : cmr::ds::HashSet<std::uint64_t>(1) {}
};

// What the stall thread pins: a tracked object of its own (see kStallNote).
struct StallPin {
  std::uint64_t word = 0;
};

double to_us(std::chrono::nanoseconds ns) { return static_cast<double>(ns.count()) / 1000.0; }

struct CmrImpl {
  static constexpr std::string_view kName = "cmr";
  static constexpr std::string_view kScheme =
      "cmr: guards + forked scanner child + background freeing";
  static constexpr std::string_view kStallNote =
      "a registered thread holds a guard (on a private object) and sleeps; it still answers "
      "the handshake";

  class Runtime {
   public:
    explicit Runtime(const RunConfig&) {
      // The library's defaults, except for a trigger study (docs/benchmarks.md).
      cmr::Options options;
      if (const char* kib = std::getenv("CMR_BENCH_TRIGGER_KIB"))
        options.trigger_bytes = std::strtoull(kib, nullptr, 10) << 10;
      if (const char* ratio = std::getenv("CMR_BENCH_TRIGGER_RATIO"))
        options.trigger_ratio = std::strtod(ratio, nullptr);
      cmr::init(options);
      start_ = cmr::stats();
    }
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    ~Runtime() { cmr::shutdown(); }

    // After the prefill: a 10^6-key prefill leaves a cycle in flight (its scanner child
    // may run for hundreds of milliseconds) that would otherwise compete with the timed
    // phase. collect() waits for it, runs one more full cycle and frees its garbage.
    void settle() { cmr::collect(); }

    // Monitor thread only (and the main thread before/after it runs).
    std::optional<std::uint64_t> unreclaimed() {
      cmr::Stats s = cmr::stats();
      if (!sampling_) {
        sampling_ = true;  // the first sample is at the start of the timed phase
        first_ = s;
      } else if (s.total_pause > last_.total_pause) {
        // A pause is recorded when the threads are released, long before its cycle
        // completes (the scan runs in between), so pauses are detected by the growth of
        // total_pause, not of the cycle count. Pauses are at least a scan apart, far more
        // than a sample period: the delta is one pause.
        pauses_.push_back(s.total_pause - last_.total_pause);
      }
      last_ = s;
      return s.live_objects;
    }

    void extra_columns(Columns& c) {
      const cmr::Stats& from = sampling_ ? first_ : start_;
      c.set_number("cycles", last_.cycles - from.cycles);
      if (!pauses_.empty()) {
        std::sort(pauses_.begin(), pauses_.end());
        auto at = [&](double q) {
          return pauses_[std::min(pauses_.size() - 1,
                                  static_cast<std::size_t>(q * static_cast<double>(pauses_.size())))];
        };
        c.set_fixed("pause_p50_us", to_us(at(0.50)), 1);
        c.set_fixed("pause_p99_us", to_us(at(0.99)), 1);
        c.set_fixed("pause_max_us", to_us(pauses_.back()), 1);
      }
      // The structure is gone by now: one more cycle must free (almost) everything.
      bool collected = cmr::collect();
      cmr::Stats after = cmr::stats();
      c.add_note("pauses_sampled=" + std::to_string(pauses_.size()));
      c.add_note("aborted=" + std::to_string(after.cycles_aborted - start_.cycles_aborted));
      c.add_note("failed=" + std::to_string(after.cycles_failed - start_.cycles_failed));
      c.add_note("lifetime_max_pause_us=" + std::to_string(to_us(after.max_pause)));
      c.add_note("max_scan_ms=" + std::to_string(to_us(after.max_scan) / 1000.0));
      c.add_note("live_after_collect=" + std::to_string(after.live_objects) +
                 (collected ? "" : "(collect failed)"));
    }

   private:
    cmr::Stats start_{};
    cmr::Stats first_{};
    cmr::Stats last_{};
    bool sampling_ = false;
    std::vector<std::chrono::nanoseconds> pauses_;
  };

  // Threads register on first use and unregister at exit.
  struct ThreadScope {};

  // A guard on a private tracked object: the public ds API exposes no node to pin, so this
  // measures a stalled *registered* thread (it still answers the handshake while it
  // sleeps). A reader stalled mid-operation would pin the nodes its guards hold and what
  // is reachable from them: the ds structures self-link dequeued nodes so that this stays
  // one or two nodes (see ms_queue.hpp), like a hazard pointer, not a chain.
  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    cmr::Guard<StallPin> guard;
    cmr::make<StallPin>(guard);
    wait();
  }

  using Queue = cmr::ds::MsQueue<std::uint64_t>;
  using Stack = cmr::ds::TreiberStack<std::uint64_t>;
  using Set = cmr::ds::HashSet<std::uint64_t>;
  using List = CmrList;
#ifdef CMR_BENCH_HAVE_CMR_SKIP_LIST
  using SkipList = cmr::ds::SkipListSet<std::uint64_t>;
#endif
#ifdef CMR_BENCH_HAVE_CMR_NM_TREE
  using Tree = cmr::ds::NatarajanMittalTree<std::uint64_t>;
#endif
#ifdef CMR_BENCH_HAVE_CMR_HARRIS_LIST
  using Harris = cmr::ds::HarrisList<std::uint64_t>;
#endif
};

}  // namespace

void add_cmr_impls(std::vector<ImplInfo>& out) { out.push_back(make_impl_info<CmrImpl>()); }
const char* cmr_missing_reason() { return nullptr; }

}  // namespace cmr::bench

#else  // !CMR_BENCH_HAVE_CMR_DS

namespace cmr::bench {
void add_cmr_impls(std::vector<ImplInfo>&) {}
const char* cmr_missing_reason() {
  return "this build has no <cmr/ds/ms_queue.hpp>, <cmr/ds/treiber_stack.hpp> or "
         "<cmr/ds/hash_set.hpp>";
}
}  // namespace cmr::bench

#endif
