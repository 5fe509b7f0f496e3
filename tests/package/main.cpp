// A consumer of the installed package: uses the public API (and a sample structure when the
// package ships it) and exits non-zero, with a message, if anything misbehaves.
#include <cmr/cmr.hpp>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#if __has_include(<cmr/ds/ms_queue.hpp>)
#include <cmr/ds/ms_queue.hpp>
#define CONSUMER_HAS_MS_QUEUE 1
#endif

namespace {

std::atomic<int> g_destroyed{0};

struct Node {
  explicit Node(int v) : value(v) {}
  ~Node() { g_destroyed.fetch_add(1); }
  int value;
  cmr::Atomic<Node> next;
};

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  cmr::init({.background = true});
  {
    cmr::Root<Node> head;
    {
      cmr::Guard<Node> g;
      Node* kept = cmr::make<Node>(g, 1);
      kept->next.store(cmr::make<Node>(g, 2));  // reachable through `kept`
      head.store(kept);
      cmr::make<Node>(g, 3);  // the guard moves on: garbage
    }
    check(cmr::collect(), "collect() returned false");
    check(g_destroyed.load() == 1, "exactly the unreachable node is destroyed");
    {
      cmr::Guard<Node> g;
      Node* n = g.protect(head);
      check(n != nullptr && n->value == 1, "the rooted node is intact");
      check(n != nullptr && n->next.load()->value == 2, "the node it points to is intact");
    }
    head.store(nullptr);
    check(cmr::collect(), "second collect() returned false");
    check(g_destroyed.load() == 3, "everything is destroyed once unreachable");
  }
#ifdef CONSUMER_HAS_MS_QUEUE
  {
    cmr::ds::MsQueue<int> queue;
    std::thread producer([&] {
      for (int i = 0; i < 10000; ++i) queue.push(i);
    });
    producer.join();
    check(cmr::collect(), "collect() with a queue returned false");
    long sum = 0;
    int count = 0;
    while (auto v = queue.try_pop()) {
      sum += *v;
      ++count;
    }
    check(count == 10000 && sum == 10000L * 9999 / 2, "the queue returns every element");
  }
  std::printf("consumer: MsQueue checked\n");
#endif
  const cmr::Stats s = cmr::stats();
  check(s.cycles >= 2, "stats() counts the cycles");
  std::printf("consumer: %llu cycles, %llu objects freed\n",
              static_cast<unsigned long long>(s.cycles),
              static_cast<unsigned long long>(s.objects_freed));
  if (failures != 0) return 1;
  std::printf("consumer: OK\n");
  return 0;
}
