// src/runtime/fork.cpp: the program's own fork(), and the rebuild of the runtime in its child.
//
// Claims invariant 25 of docs/design.md.
//
// Around fork() the registry and heap locks are held, so that the child's copies of the
// thread list and of the heap's lists are whole, and no pause is in progress (a pause
// holds the registry lock). The child has one thread, the one that forked: on first use
// of the runtime it drops the records of the others (handing their blocks on), finishes
// a reclaim the parent's collector had in flight exactly once (cycle/reclaim.cpp), and
// starts a collector of its own. The parent's collector object is never destroyed there:
// its thread does not exist to be joined, and its mutexes may be held by threads that do
// not exist either.
#include <pthread.h>

#include <new>

#include "cycle/collector.hpp"
#include "cycle/reclaim.hpp"
#include "heap/blocks.hpp"
#include "os/sys.hpp"
#include "runtime/runtime.hpp"
#include "threads/registry.hpp"

namespace cmr::detail {

namespace {

void atfork_prepare() noexcept {
  registry().mutex.lock();
  blocks::before_fork();
}
void atfork_parent() noexcept {
  blocks::after_fork_parent();
  registry().mutex.unlock();
}
void atfork_child() noexcept {
  Runtime& s = rt();
  blocks::after_fork_child();
  registry().mutex.unlock();
  // A thread of the parent may have held it (in init() or shutdown()); none exists here.
  new (&s.init_mutex) std::mutex();
  // acquire: pairs with the release store of `phase` at init; nothing to rebuild otherwise.
  if (s.phase.load(std::memory_order_acquire) == Phase::kRunning) {
    s.fork_survivor = tls_record;
    s.needs_rebuild.store(true, std::memory_order_relaxed);  // relaxed: see must_rebuild()
  }
}

}  // namespace

void install_fork_handlers() { pthread_atfork(&atfork_prepare, &atfork_parent, &atfork_child); }

void rebuild_after_fork() {
  Runtime& s = rt();
  std::lock_guard lock(s.init_mutex);
  if (!must_rebuild()) return;
  {
    ThreadRegistry& reg = registry();
    std::lock_guard registry_lock(reg.mutex);
    ThreadRecord* survivor = s.fork_survivor;
    for (ThreadRecord* r : reg.records) {
      if (r == survivor) continue;
      // Its thread does not exist here: its guards are gone, its blocks are handed on.
      blocks::thread_exit(r);
      drop_record(r);
    }
    reg.records.clear();
    if (survivor != nullptr) {
      survivor->tid = sys::gettid();
      survivor->presence = ThreadRecord::Presence::kRegistered;
      reg.records.push_back(survivor);
    }
  }
  finish_in_flight_after_fork();
  // The parent's collector: its statistics carry over, its memory is given back, the
  // object itself is left.
  auto* fresh = new Collector(s.options);
  fresh->carry_over(*s.collector);
  s.collector->abandon_after_fork();
  s.collector = fresh;
  s.fork_survivor = nullptr;
  // relaxed: read by must_rebuild(); the collector pointer is published by init_mutex to
  // the threads that rebuild, and this thread is the only other one.
  s.needs_rebuild.store(false, std::memory_order_relaxed);
  // relaxed: shutdown() in this process would have run on this thread (the only one).
  if (s.options.background && !g_shut_down.load(std::memory_order_relaxed)) fresh->start();
}

}  // namespace cmr::detail
