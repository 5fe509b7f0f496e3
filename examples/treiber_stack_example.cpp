// examples/treiber_stack_example.cpp: a shared pool of work items on cmr::ds::TreiberStack.
// Workers take an item, split it into smaller ones and push those back, until every item
// is too small to split; the stack's nodes are reclaimed by cmr without any retire call.
#include <cmr/cmr.hpp>
#include <cmr/ds/treiber_stack.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

namespace {

// A range [begin, end) to sum; ranges longer than kLeaf are split in two.
struct Range {
  std::uint64_t begin;
  std::uint64_t end;
};
constexpr std::uint64_t kLeaf = 64;

}  // namespace

int main() {
  constexpr std::uint64_t kEnd = 1 << 22;
  constexpr int kWorkers = 4;

  cmr::ds::TreiberStack<Range> work;
  work.push(Range{0, kEnd});
  // Ranges pushed but not finished yet: a worker that sees zero knows all work is done,
  // even if the stack is momentarily empty while another worker is splitting.
  std::atomic<std::uint64_t> outstanding{1};
  std::atomic<std::uint64_t> total{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      while (outstanding.load() != 0) {
        std::optional<Range> r = work.try_pop();
        if (!r) {
          std::this_thread::yield();
          continue;
        }
        if (r->end - r->begin > kLeaf) {
          const std::uint64_t mid = r->begin + (r->end - r->begin) / 2;
          outstanding.fetch_add(2);
          work.push(Range{r->begin, mid});
          work.push(Range{mid, r->end});
        } else {
          std::uint64_t sum = 0;
          for (std::uint64_t i = r->begin; i < r->end; ++i) sum += i;
          total.fetch_add(sum);
        }
        outstanding.fetch_sub(1);
      }
    });
  }
  for (auto& t : workers) t.join();

  cmr::collect();
  const cmr::Stats s = cmr::stats();
  std::printf("sum of [0, %llu) = %llu (expected %llu)\n",
              static_cast<unsigned long long>(kEnd),
              static_cast<unsigned long long>(total.load()),
              static_cast<unsigned long long>(kEnd * (kEnd - 1) / 2));
  std::printf("cycles: %llu, nodes freed: %llu, still live: %llu\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed),
              static_cast<unsigned long long>(s.live_objects));
  return total.load() == kEnd * (kEnd - 1) / 2 ? 0 : 1;
}
