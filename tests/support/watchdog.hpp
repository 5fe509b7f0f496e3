// tests/support/watchdog.hpp: a deadline for a test that could hang.
//
// A hang in a cycle (a deadlock with a thread held inside malloc, say) would otherwise
// show up only as a ctest timeout with no hint of where. The watchdog ends the process
// with a message naming the test and the cycles run so far.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <cmr/cmr.hpp>

namespace cmr_test {

class Watchdog {
 public:
  Watchdog(const char* what, std::chrono::seconds limit) {
    thread_ = std::thread([this, what, limit] {
      std::unique_lock lock(mutex_);
      if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
        std::fprintf(stderr, "watchdog: %s still running after %lld s (deadlock?); cycles=%llu\n",
                     what, static_cast<long long>(limit.count()),
                     static_cast<unsigned long long>(cmr::stats().cycles));
        std::abort();
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace cmr_test
