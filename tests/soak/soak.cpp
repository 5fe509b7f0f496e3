// tests/soak/soak.cpp: a long run with every fault injected at random.
//
// Worker threads push and pop unique values through a MsQueue and a TreiberStack and keep
// a HashSet of keys they own, while an injector thread, at random intervals, makes the next
// process creation fail, crashes or hangs the scanner, makes it exit without an answer,
// has a worker block the handshake signal past handshake_timeout, or squeezes the heap
// against Options::heap_limit (each kind at least once, however loaded the machine). At the end every structure is drained and checked: no value
// lost or duplicated (count and sum), every owned key present exactly as its owner left it,
// the live heap stayed under its limit, and (built with AddressSanitizer, as
// scripts/soak.sh and CI do) no object was used after it was freed.
//
// Usage: cmr_soak [seconds=10] [workers=4]. Exit status 0 when every check holds.
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include <cmr/cmr.hpp>
#include <cmr/detail/hooks.hpp>
#include <cmr/ds/hash_set.hpp>
#include <cmr/ds/ms_queue.hpp>
#include <cmr/ds/treiber_stack.hpp>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeapLimit = std::size_t{256} << 20;
constexpr std::uint64_t kKeysPerWorker = 512;

std::atomic<std::uint64_t> g_diagnostics{0};
void count_diagnostic(const char*) noexcept { g_diagnostics.fetch_add(1); }

struct Totals {
  std::atomic<std::uint64_t> pushed{0}, pushed_sum{0}, popped{0}, popped_sum{0};
  void push(std::uint64_t v) { pushed.fetch_add(1); pushed_sum.fetch_add(v); }
  void pop(std::uint64_t v) { popped.fetch_add(1); popped_sum.fetch_add(v); }
};

std::atomic<bool> g_stop{false};
std::atomic<int> g_block_worker{-1};  // the worker that should block the signal now
std::atomic<int> g_blocking{-1};      // the worker that has it blocked, until released
std::atomic<bool> g_release_block{false};

template <class Pop>
std::uint64_t drain(Pop pop, Totals& t) {
  std::uint64_t n = 0;
  while (auto v = pop()) {
    t.pop(*v);
    ++n;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
  const int workers = argc > 2 ? std::atoi(argv[2]) : 4;
  cmr::init({.trigger_bytes = std::size_t{1} << 20,
             .handshake_timeout = 200ms,
             // Long enough for an AddressSanitizer scan of a heap near the limit: a timeout
             // shorter than the scan itself frees nothing, ever (observed: a 10-minute ASan
             // run with 500 ms ended with every cycle killed and the heap at its limit).
             .scan_timeout = 5000ms,
             .diagnostics = &count_diagnostic,
             .heap_limit = kHeapLimit,
             .limit_wait = 2000ms});

  cmr::ds::MsQueue<std::uint64_t> queue;
  cmr::ds::TreiberStack<std::uint64_t> stack;
  cmr::ds::HashSet<std::uint64_t> set(1024);
  Totals q_totals, s_totals;
  // owned[w][k]: whether worker w's key k is in the set, as only w changes it.
  std::vector<std::vector<char>> owned(static_cast<std::size_t>(workers),
                                       std::vector<char>(kKeysPerWorker, 0));
  std::atomic<std::uint64_t> set_mismatches{0}, peak_live{0}, refused{0};

  // At heap_limit, with cycles failing on purpose, make() may give up after limit_wait:
  // the push then did not happen (and must leave no trace).
  auto push_counted = [&](auto& structure, Totals& totals, std::uint64_t v) {
    try {
      structure.push(v);
      totals.push(v);
    } catch (const std::bad_alloc&) {
      refused.fetch_add(1);
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) * 7919 + 1);
      std::uint64_t seq = 0;
      sigset_t sig;
      sigemptyset(&sig);
      sigaddset(&sig, SIGUSR1);
      while (!g_stop.load(std::memory_order_relaxed)) {
        if (g_block_worker.load(std::memory_order_relaxed) == w) {
          // This worker refuses the handshake until the injector's cycle has given up on
          // it (handshake_timeout), however late either of them is scheduled.
          pthread_sigmask(SIG_BLOCK, &sig, nullptr);
          g_blocking.store(w);
          while (!g_release_block.load()) std::this_thread::sleep_for(1ms);
          pthread_sigmask(SIG_UNBLOCK, &sig, nullptr);
          g_release_block.store(false);
          g_blocking.store(-1);
          g_block_worker.store(-1);
        }
        for (int i = 0; i < 64; ++i) {
          const std::uint64_t v = (static_cast<std::uint64_t>(w) << 40) | ++seq;
          switch (rng() % 6) {
            case 0: push_counted(queue, q_totals, v); break;
            case 1: if (auto x = queue.try_pop()) q_totals.pop(*x); break;
            case 2: push_counted(stack, s_totals, v); break;
            case 3: if (auto x = stack.try_pop()) s_totals.pop(*x); break;
            default: {
              const std::uint64_t k = rng() % kKeysPerWorker;
              const std::uint64_t key = (static_cast<std::uint64_t>(w) << 32) | k;
              char& mine = owned[static_cast<std::size_t>(w)][k];
              if (rng() % 2 == 0) {
                try {
                  if (set.insert(key) == (mine != 0)) set_mismatches.fetch_add(1);
                  mine = 1;
                } catch (const std::bad_alloc&) {
                  refused.fetch_add(1);
                }
              } else {
                if (set.erase(key) != (mine != 0)) set_mismatches.fetch_add(1);
                mine = 0;
              }
              if (set.contains(key) != (mine != 0)) set_mismatches.fetch_add(1);
            }
          }
        }
      }
    });

  // The injector: one fault at a time, at random, each followed by a cycle that must have
  // freed nothing wrongly (checked at the end by the drains and the sanitizer).
  std::mt19937_64 rng(42);
  std::uint64_t injected[6] = {};
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  auto& faults = cmr::detail::g_test_faults;
  // Every kind of fault at least once, in a random order, however few iterations a loaded
  // machine allows in the time; then one iteration in three injects a fault at random (a
  // hang, 5 s each, one in twenty-four).
  std::array<int, 6> first{0, 1, 2, 3, 4, 5};
  std::shuffle(first.begin(), first.end(), rng);
  for (std::size_t iteration = 0; Clock::now() < end || iteration < first.size(); ++iteration) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 150));
    const int roll = static_cast<int>(rng() % 24);
    const int kind = iteration < first.size() ? first[iteration]
                     : roll == 0               ? 2
                     : roll < 8                ? std::array{0, 1, 3, 4, 5, 0, 1}[roll - 1]
                                               : 6;
    bool blocked = false;
    switch (kind) {
      case 0: faults.fail_clone = 1; break;
      case 1: faults.child_crash = true; break;
      case 2: faults.child_hang = true; break;
      case 3: faults.child_exit_early = true; break;
      case 4: {
        const int w = static_cast<int>(rng() % static_cast<unsigned>(workers));
        g_block_worker.store(w);
        while (g_blocking.load() != w) std::this_thread::sleep_for(1ms);
        blocked = true;
        break;
      }
      case 5: {  // squeeze: hold 64 MiB of live tracked memory for one cycle
        struct Chunk { unsigned char bytes[4096]; };
        std::vector<cmr::Root<Chunk>> held(16384);
        cmr::Guard<Chunk> g;
        for (auto& r : held)
          if (Chunk* c = cmr::try_make_for(g, 50ms)) r.store(c);
        cmr::collect();
        for (auto& r : held) r.store(nullptr);
        break;
      }
      default: break;  // a plain cycle
    }
    if (kind < 6) ++injected[kind < 5 ? kind : 5];
    cmr::collect();
    if (blocked) {
      g_release_block.store(true);
      while (g_blocking.load() != -1) std::this_thread::sleep_for(1ms);
    }
    faults.fail_clone = 0;
    faults.child_crash = faults.child_hang = faults.child_exit_early = false;
    peak_live.store(std::max(peak_live.load(), cmr::stats().live_bytes));
  }
  g_stop = true;
  for (auto& t : threads) t.join();

  // Drain and check.
  drain([&] { return queue.try_pop(); }, q_totals);
  drain([&] { return stack.try_pop(); }, s_totals);
  for (int w = 0; w < workers; ++w)
    for (std::uint64_t k = 0; k < kKeysPerWorker; ++k)
      if (set.contains((static_cast<std::uint64_t>(w) << 32) | k) !=
          (owned[static_cast<std::size_t>(w)][k] != 0))
        set_mismatches.fetch_add(1);
  cmr::collect();
  const cmr::Stats s = cmr::stats();

  std::printf("soak: %d s, %d workers: queue %llu/%llu, stack %llu/%llu pushed/popped; "
              "faults injected: clone %llu, crash %llu, hang %llu, no-answer %llu, "
              "blocked %llu, squeeze %llu; cycles %llu ok, %llu aborted, %llu failed; "
              "%llu diagnostics; %llu allocations refused at heap_limit; peak live %llu MiB\n",
              seconds, workers, (unsigned long long)q_totals.pushed.load(),
              (unsigned long long)q_totals.popped.load(),
              (unsigned long long)s_totals.pushed.load(),
              (unsigned long long)s_totals.popped.load(), (unsigned long long)injected[0],
              (unsigned long long)injected[1], (unsigned long long)injected[2],
              (unsigned long long)injected[3], (unsigned long long)injected[4],
              (unsigned long long)injected[5], (unsigned long long)s.cycles,
              (unsigned long long)s.cycles_aborted, (unsigned long long)s.cycles_failed,
              (unsigned long long)g_diagnostics.load(), (unsigned long long)refused.load(),
              (unsigned long long)(peak_live.load() >> 20));
  int bad = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::printf("soak: FAILED: %s\n", what);
      ++bad;
    }
  };
  check(q_totals.pushed == q_totals.popped && q_totals.pushed_sum == q_totals.popped_sum,
        "the queue lost or duplicated a value");
  check(s_totals.pushed == s_totals.popped && s_totals.pushed_sum == s_totals.popped_sum,
        "the stack lost or duplicated a value");
  check(set_mismatches == 0, "the set disagreed with its owners");
  check(peak_live <= kHeapLimit, "the live heap passed heap_limit");
  check(s.cycles > 0, "no cycle completed");
  check(seconds < 10 || (s.cycles_failed > 0 && s.cycles_aborted > 0),
        "the faults were not injected");
  return bad == 0 ? 0 : 1;
}
