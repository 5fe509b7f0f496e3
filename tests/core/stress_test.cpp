// Stress tests: the runtime under sustained concurrent load while cycles run back to back.
//
// Each tracked type here carries a 64-bit canary that its constructor sets and its
// destructor overwrites with a poison value, and counts its destructions in a side table
// (never in the object). Every read through a guard checks the canary, so an object freed
// while still reachable shows up as a poisoned canary or, under AddressSanitizer, as a
// use-after-free report.
//
// Timed tests run for CMR_STRESS_SECONDS (default 3) seconds. A watchdog ends the process
// with a message if a test makes no progress for far longer than that (a deadlock); the
// ctest TIMEOUT is the last resort. (Cycles while threads hammer malloc: invariant 5,
// tests/invariants/child_never_allocates_test.cpp.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>

#include "support/test_mode.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kAlive = 0x5AFE'C0DE'5AFE'C0DEull;
constexpr std::uint64_t kPoison = 0xDEAD'DEAD'DEAD'DEADull;

std::chrono::milliseconds stress_duration() {
  double seconds = 3.0;
  if (const char* s = std::getenv("CMR_STRESS_SECONDS")) {
    const double v = std::strtod(s, nullptr);
    if (v > 0) seconds = v;
  }
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// Small xorshift generator: deterministic per thread, no locks, no allocation.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

using cmr_test::Watchdog;

// Runs cmr::collect() back to back on its own thread until stopped.
class CollectLoop {
 public:
  CollectLoop() {
    thread_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        if (cmr::collect())
          ok_.fetch_add(1, std::memory_order_relaxed);
        else
          failed_.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  ~CollectLoop() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t ok() const { return ok_.load(); }
  std::uint64_t failed() const { return failed_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ok_{0}, failed_{0};
  std::thread thread_;
};

// ---- A Treiber stack churned by several threads --------------------------------------

std::atomic<std::uint64_t> g_stack_made{0};
std::atomic<std::uint64_t> g_stack_destroyed{0};
std::atomic<std::uint64_t> g_canary_failures{0};

struct StackNode {
  explicit StackNode(std::uint64_t v) : value(v) { g_stack_made.fetch_add(1); }
  ~StackNode() {
    // An atomic store: the compiler may not drop it as a dead store at end of lifetime.
    canary.store(kPoison, std::memory_order_relaxed);
    g_stack_destroyed.fetch_add(1);
  }
  std::atomic<std::uint64_t> canary{kAlive};
  std::uint64_t value;
  cmr::Atomic<StackNode> next;
};

bool check(const StackNode* n) {
  if (n->canary.load(std::memory_order_relaxed) == kAlive) return true;
  g_canary_failures.fetch_add(1);
  return false;
}

class Stack {
 public:
  void push(std::uint64_t v) {
    cmr::Guard<StackNode> g;
    StackNode* n = cmr::make<StackNode>(g, v);
    StackNode* old = head_.load(std::memory_order_relaxed);
    do {
      n->next.store(old, std::memory_order_relaxed);
    } while (!head_.compare_exchange_weak(old, n, std::memory_order_release,
                                          std::memory_order_relaxed));
  }

  bool pop(std::uint64_t& out) {
    cmr::Guard<StackNode> g;
    for (;;) {
      StackNode* n = g.protect(head_, std::memory_order_acquire);
      if (n == nullptr) return false;
      if (!check(n)) return false;
      // A pushed node's `next` never changes again, and `n` (guarded) keeps it alive.
      StackNode* next = n->next.load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(n, next, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        check(n);
        out = n->value;
        return true;
      }
    }
  }

  // Walks up to `limit` nodes guarding only the first: everything reachable from a guarded
  // object is reachable, so the whole chain below it stays alive even if popped meanwhile.
  std::size_t walk(std::size_t limit) {
    cmr::Guard<StackNode> g;
    std::size_t seen = 0;
    for (StackNode* n = g.protect(head_, std::memory_order_acquire); n != nullptr && seen < limit;
         n = n->next.load(std::memory_order_relaxed)) {
      if (!check(n)) break;
      ++seen;
    }
    return seen;
  }

 private:
  cmr::Root<StackNode> head_;
};

TEST(Stress, ChurningAStackWhileCyclesRunNeverFreesAReachableNode) {
  const auto duration = stress_duration();
  Watchdog watchdog("the Treiber stack churn", std::chrono::seconds(120) +
                    std::chrono::duration_cast<std::chrono::seconds>(duration) * 4);
  g_canary_failures = 0;
  const std::uint64_t made_before = g_stack_made.load();
  const std::uint64_t destroyed_before = g_stack_destroyed.load();
  const cmr::Stats before = cmr::stats();

  Stack stack;
  constexpr int kWorkers = 4;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> pushes{0}, pops{0}, walked{0};
  std::vector<std::thread> workers;
  CollectLoop collector;
  for (int t = 0; t < kWorkers; ++t)
    workers.emplace_back([&, t] {
      Rng rng(t + 1);
      std::uint64_t my_pushes = 0, my_pops = 0, my_walked = 0, v;
      for (std::uint64_t op = 1;
           !stop.load(std::memory_order_relaxed) && g_canary_failures.load() == 0; ++op) {
        // A short rest now and then: four threads churning flat out on two cores would
        // allocate faster than any collector frees (there is no allocation back-pressure),
        // and this test is about many cycles interrupting the churn, not about that race.
        if (op % 256 == 0) std::this_thread::sleep_for(1ms);
        const std::uint64_t r = rng.next() % 100;
        if (r < 45) {
          stack.push(r);
          ++my_pushes;
        } else if (r < 92) {
          if (stack.pop(v)) ++my_pops;
        } else {
          my_walked += stack.walk(64);
        }
      }
      pushes += my_pushes;
      pops += my_pops;
      walked += my_walked;
    });
  // The duration at least, and at least 10 cycles and 1000 freed objects during the churn,
  // however the machine schedules the workers (the watchdog bounds the wait).
  const auto churn_until = Clock::now() + duration;
  while (Clock::now() < churn_until || cmr::stats().cycles < before.cycles + 10 ||
         cmr::stats().objects_freed < before.objects_freed + 1000)
    std::this_thread::sleep_for(1ms);
  stop = true;
  for (auto& w : workers) w.join();
  collector.stop();
  const cmr::Stats during = cmr::stats();

  std::uint64_t remaining = 0, v;
  while (stack.pop(v)) ++remaining;

  EXPECT_EQ(g_canary_failures.load(), 0u) << "a reachable node was destroyed";
  EXPECT_EQ(pushes.load(), pops.load() + remaining);
  EXPECT_GT(pops.load(), 0u);
  EXPECT_GT(walked.load(), 0u);
  EXPECT_EQ(collector.failed(), 0u) << "cycles aborted or failed under load";
  EXPECT_GE(during.cycles - before.cycles, 10u);
  EXPECT_GT(during.objects_freed, before.objects_freed) << "nothing was reclaimed during the run";

  // Quiet point: the stack is empty and no guard is held, so every node is garbage and is
  // destroyed exactly once.
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_stack_destroyed.load() - destroyed_before, g_stack_made.load() - made_before);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_stack_destroyed.load() - destroyed_before, g_stack_made.load() - made_before);
  std::printf("[ stats    ] %llu pushes, %llu pops, %llu cycles, max pause %.3f ms\n",
              static_cast<unsigned long long>(pushes.load()),
              static_cast<unsigned long long>(pops.load()),
              static_cast<unsigned long long>(during.cycles - before.cycles),
              std::chrono::duration<double, std::milli>(during.max_pause).count());
}

// ---- Thousands of guards on one thread ------------------------------------------------

constexpr int kHeld = 5000;
std::atomic<int> g_held_destroyed[kHeld];
std::atomic<std::uint64_t> g_junk_made{0}, g_junk_destroyed{0};

struct Held {
  explicit Held(int i) : id(i) {}
  ~Held() {
    canary.store(kPoison, std::memory_order_relaxed);
    g_held_destroyed[id].fetch_add(1);
  }
  std::atomic<std::uint64_t> canary{kAlive};
  int id;
  std::uint64_t payload[6] = {};
};

struct CountedJunk {
  CountedJunk() { g_junk_made.fetch_add(1); }
  ~CountedJunk() { g_junk_destroyed.fetch_add(1); }
  std::uint64_t words[3] = {};
};

TEST(Stress, FiveThousandGuardsOnOneThreadKeepEveryObjectAlive) {
  Watchdog watchdog("5000 guards", std::chrono::seconds(180));
  for (auto& d : g_held_destroyed) d = 0;
  const std::uint64_t junk_made_before = g_junk_made.load();
  const std::uint64_t junk_destroyed_before = g_junk_destroyed.load();
  std::atomic<int> phase{0};  // 1: all guards made; 2: checked; 3: main says drop them
  std::atomic<int> bad_canaries{0}, destroyed_while_held{0};
  std::atomic<bool> stop_junk{false};

  CollectLoop collector;  // cycles run while the slot storage grows (80 slot blocks)
  std::vector<std::thread> junk;
  for (int t = 0; t < 2; ++t)
    junk.emplace_back([&] {
      while (!stop_junk.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          cmr::Guard<CountedJunk> g;
          cmr::make<CountedJunk>(g);
        }
        // Paced: flat-out allocation on two cores outruns the collector (no back-pressure).
        std::this_thread::sleep_for(1ms);
      }
    });
  std::thread holder([&] {
    std::vector<cmr::Guard<Held>> guards;
    guards.reserve(kHeld);
    for (int i = 0; i < kHeld; ++i) {
      guards.emplace_back();
      cmr::make<Held>(guards.back(), i);
    }
    phase = 1;
    while (phase.load() != 2) std::this_thread::sleep_for(1ms);
    for (int i = 0; i < kHeld; ++i) {
      Held* h = guards[i].get();
      if (h == nullptr || h->canary.load() != kAlive || h->id != i) ++bad_canaries;
      if (g_held_destroyed[i].load() != 0) ++destroyed_while_held;
    }
    phase = 3;
    while (phase.load() != 4) std::this_thread::sleep_for(1ms);
  });
  while (phase.load() != 1) std::this_thread::sleep_for(1ms);
  // At least 20 more cycles with every guard in place.
  const std::uint64_t ok_at_full = collector.ok();
  while (collector.ok() < ok_at_full + 20) std::this_thread::sleep_for(1ms);
  phase = 2;
  while (phase.load() != 3) std::this_thread::sleep_for(1ms);
  phase = 4;
  holder.join();  // drops the 5000 guards
  stop_junk = true;
  for (auto& t : junk) t.join();
  collector.stop();

  EXPECT_EQ(bad_canaries.load(), 0);
  EXPECT_EQ(destroyed_while_held.load(), 0);
  EXPECT_EQ(collector.failed(), 0u);

  ASSERT_TRUE(cmr::collect());
  int once = 0, other = 0;
  for (auto& d : g_held_destroyed) (d.load() == 1 ? once : other)++;
  EXPECT_EQ(once, kHeld) << other << " held objects were not destroyed exactly once";
  EXPECT_EQ(g_junk_destroyed.load() - junk_destroyed_before,
            g_junk_made.load() - junk_made_before);
}

// ---- A Root moved between two slots ----------------------------------------------------

std::atomic<int> g_moved_destroyed{0};

struct Moved {
  ~Moved() {
    canary.store(kPoison, std::memory_order_relaxed);
    g_moved_destroyed.fetch_add(1);
  }
  std::atomic<std::uint64_t> canary{kAlive};
};

TEST(Stress, AnObjectMovedBetweenTwoRootsIsNeverFreed) {
  // The object lives only in `a`, in `b`, or (during the move) in the mover's guard. A
  // snapshot that read `b` before a move and `a` after it would miss it: the filler Roots
  // registered between the two put `b` at the front of the root list, `a` at the back and
  // thousands of reads in between, so a collector that read roots while the mover ran would
  // free it. The handshake holds the mover for the whole copy (invariant 3 of docs/design.md).
  const auto duration = stress_duration();
  Watchdog watchdog("the Root mover", std::chrono::seconds(120) +
                    std::chrono::duration_cast<std::chrono::seconds>(duration) * 4);
  g_moved_destroyed = 0;
  cmr::Root<Moved> a;
  auto fillers = std::make_unique<cmr::Root<Moved>[]>(20000);
  cmr::Root<Moved> b;
  {
    cmr::Guard<Moved> g;
    a.store(cmr::make<Moved>(g));
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> broken{false};
  std::atomic<std::uint64_t> moves{0};
  std::thread mover([&] {
    cmr::Guard<Moved> g;
    auto move = [&](cmr::Root<Moved>& from, cmr::Root<Moved>& to) {
      Moved* p = g.protect(from);
      if (p == nullptr || p->canary.load(std::memory_order_relaxed) != kAlive ||
          g_moved_destroyed.load(std::memory_order_relaxed) != 0) {
        broken = true;
        return;
      }
      to.store(from.exchange(nullptr));
      g.reset();
    };
    // Between moves the object rests in a Root with the guard empty, so a snapshot most
    // often finds it in a Root only; the move itself is a few instructions.
    auto rest = [] {
      for (int i = 0; i < 400; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
    };
    while (!stop.load(std::memory_order_relaxed) && !broken.load(std::memory_order_relaxed)) {
      move(a, b);
      rest();
      if (broken.load(std::memory_order_relaxed)) break;
      move(b, a);
      rest();
      moves.fetch_add(1, std::memory_order_relaxed);
    }
  });
  while (moves.load() == 0 && !broken.load()) std::this_thread::yield();  // the mover runs
  const cmr::Stats before = cmr::stats();
  const std::uint64_t moves_before = moves.load();
  const auto deadline = Clock::now() + duration;
  int failed = 0;
  // The duration at least, and at least 10 cycles and 1000 moves among them.
  while ((Clock::now() < deadline || cmr::stats().cycles < before.cycles + 10 ||
          moves.load() < moves_before + 1000) &&
         !broken.load()) {
    if (!cmr::collect()) ++failed;
  }
  stop = true;
  mover.join();
  const cmr::Stats after = cmr::stats();

  EXPECT_FALSE(broken.load()) << "the moved object was destroyed while a Root held it";
  EXPECT_EQ(g_moved_destroyed.load(), 0);
  EXPECT_EQ(failed, 0);
  EXPECT_GE(after.cycles - before.cycles, 10u);
  EXPECT_GT(moves.load(), 1000u);
  if (broken.load() || g_moved_destroyed.load() != 0) return;  // do not touch freed memory
  ASSERT_NE(a.load(), nullptr);
  EXPECT_EQ(b.load(), nullptr);
  EXPECT_EQ(a.load()->canary.load(), kAlive);
  a.store(nullptr);
  ASSERT_TRUE(cmr::collect());
  EXPECT_EQ(g_moved_destroyed.load(), 1);
  std::printf("[ stats    ] %llu round trips across %llu cycles\n",
              static_cast<unsigned long long>(moves.load()),
              static_cast<unsigned long long>(after.cycles - before.cycles));
}

}  // namespace
