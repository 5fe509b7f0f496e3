// tests/hostile/hostile.hpp: what the hostile tests share.
//
// One file per hostile condition: something the program, the system or another process
// does that gets in the runtime's way. Each must end in a cycle that aborts or fails and
// frees nothing, and cycles must resume once the condition is gone; or in no effect on the
// program at all. The test process never uses cmr: each body runs in a helper process
// (support/helper.hpp) or in a fresh process (support/verdict.hpp), with options of its
// own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include <cmr/cmr.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include "support/diagnostics.hpp"
#include "support/helper.hpp"
#include "support/proc.hpp"
#include "support/tracked.hpp"

namespace cmr_hostile {

using namespace std::chrono_literals;

// The handshake timeout is what an expected abort costs; shorter ones make a loaded
// machine (sanitizers, parallel ctest) abort cycles that should complete.
constexpr auto kHandshakeTimeout = 1000ms;

// A trigger no test reaches, so that only explicit collect() calls run cycles and every
// counter delta is exact; the diagnostics are kept.
inline cmr::Options helper_options() {
  return {.trigger_bytes = std::size_t{1} << 40,
          .trigger_interval = std::chrono::milliseconds(0),
          .handshake_timeout = kHandshakeTimeout,
          .scan_timeout = 10s,
          .diagnostics = &cmr_test::record_diagnostic};
}

// collect(), retried while cycles abort: a loaded machine (sanitizers, parallel ctest) may
// not schedule a thread within the handshake timeout. A failed cycle is not retried.
inline bool collect_completing() {
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t aborted = cmr::stats().cycles_aborted;
    if (cmr::collect()) return true;
    if (cmr::stats().cycles_aborted == aborted) return false;
  }
  return false;
}

// A registered thread that holds one guarded object until it is destroyed: a thread every
// cycle must pause, and an object every cycle must keep.
class Parked {
 public:
  Parked()
      : thread_([this] {
          cmr::Guard<cmr_test::Tracked> g;
          object_ = cmr::make<cmr_test::Tracked>(g)->id;
          tid_ = cmr_test::gettid_now();
          while (!stop_.load()) std::this_thread::sleep_for(1ms);
        }) {
    while (tid_.load() == 0) std::this_thread::yield();
  }
  ~Parked() {
    stop_ = true;
    thread_.join();
  }
  pid_t tid() const { return tid_.load(); }
  int object() const { return object_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<pid_t> tid_{0};
  int object_ = -1;
  std::thread thread_;
};

// A registered thread's work: churns a Treiber stack until `stop`, counting operations.
inline void churn(cmr::ds::TreiberStack<long>& stack, const std::atomic<bool>& stop,
                  std::atomic<long>& ops) {
  for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
    stack.push(i);
    stack.try_pop();
    ops.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace cmr_hostile
