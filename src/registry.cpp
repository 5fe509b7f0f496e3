// src/registry.cpp: the thread registry, guard slots and allocation logs, and the root
// registry.
//
// Keeps DESIGN invariant 4 (signal-safe state): slot blocks and log chunks are fully
// written before they are published by a relaxed store after a signal fence, so a thread
// paused at any instruction leaves its record consistent for the collector. Registration
// and unregistration take the registry lock, which the collector holds for the whole pause:
// no thread joins or leaves mid-handshake, and a signal never goes to a thread that left.
// Never called from the signal handler.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "backing_allocator.hpp"
#include "collector.hpp"
#include "handshake.hpp"
#include "state.hpp"
#include "sys.hpp"

namespace cmr::detail {

__thread ThreadRecord* tls_record __attribute__((tls_model("initial-exec"))) = nullptr;
std::atomic<bool> g_shut_down{false};

namespace {

pthread_key_t g_exit_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

// Log chunks come from one reserved range (the chunk arena) so that snapshot isolation can
// keep them all with a single range: a chunk a thread is about to link into its log when
// the collector marks the program's memory must not be marked. Consumed chunks go back to
// a pool instead of munmap (profiled: the collector spent ~5% of its time in munmap, and
// each fresh chunk paid its page faults again); beyond kChunkPool pooled chunks, their
// pages but the first (which holds the link) are returned to the kernel.
constexpr std::size_t kChunkArenaBytes = std::size_t{4} << 30;  // address space only
constexpr std::size_t kChunkPool = 64;
std::mutex g_pool_mutex;     // guards everything below
LogChunk* g_pool = nullptr;  // linked through next
std::size_t g_pool_size = 0;
std::uintptr_t g_arena_base = 0, g_arena_next = 0, g_arena_end = 0;

bool in_arena(const void* c) {
  auto a = reinterpret_cast<std::uintptr_t>(c);
  return a >= g_arena_base && a < g_arena_end;
}

LogChunk* new_chunk() {
  void* p = nullptr;
  {
    std::lock_guard lock(g_pool_mutex);
    if (g_pool != nullptr) {
      p = g_pool;
      g_pool = g_pool->next.load(std::memory_order_relaxed);  // relaxed: under the lock
      --g_pool_size;
    } else {
      if (g_arena_base == 0) {
        if (void* a = sys::map_private(kChunkArenaBytes)) {
          g_arena_base = g_arena_next = reinterpret_cast<std::uintptr_t>(a);
          g_arena_end = g_arena_base + kChunkArenaBytes;
        }
      }
      if (g_arena_next != 0 && g_arena_next + sizeof(LogChunk) <= g_arena_end) {
        p = reinterpret_cast<void*>(g_arena_next);
        g_arena_next += sys::page_round(sizeof(LogChunk));
      }
    }
  }
  // Outside the arena only when it is exhausted (128K chunks in use): such chunks are
  // kept by the collector one by one.
  if (p == nullptr) p = sys::map_private(sizeof(LogChunk));
  if (p == nullptr) throw std::bad_alloc();
  return new (p) LogChunk{};
}

void unregister_current(void* record) noexcept;

void make_key() {
  if (pthread_key_create(&g_exit_key, &unregister_current) != 0)
    fatal("pthread_key_create failed: cannot track thread exit");
}

// Adds one block of slots to the calling thread's record and its free stack.
void add_slot_block(ThreadRecord* r) {
  auto* block = static_cast<SlotBlock*>(std::calloc(1, sizeof(SlotBlock)));
  std::uint32_t capacity = r->free_capacity + kSlotsPerBlock;
  auto** stack = static_cast<std::atomic<void*>**>(
      std::malloc(sizeof(std::atomic<void*>*) * capacity));
  if (block == nullptr || stack == nullptr) {
    std::free(block);
    std::free(stack);
    throw std::bad_alloc();
  }
  for (auto& s : block->slots) new (&s) std::atomic<void*>(nullptr);
  block->next = r->slot_blocks.load(std::memory_order_relaxed);
  // SignalVec: the block is initialised before it is published; pairs with the collector
  // walking slot_blocks during the pause.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  r->slot_blocks.store(block, std::memory_order_relaxed);

  // The free stack is private to this thread; the handler and the collector never read it.
  if (r->free_count != 0)
    std::memcpy(stack, r->free_slots, sizeof(std::atomic<void*>*) * r->free_count);
  std::free(r->free_slots);
  r->free_slots = stack;
  r->free_capacity = capacity;
  for (std::size_t i = kSlotsPerBlock; i > 0; --i)
    r->free_slots[r->free_count++] = &block->slots[i - 1];
}

ThreadRecord* register_current() {
  ensure_running();
  pthread_once(&g_key_once, make_key);
  auto* r = new ThreadRecord();
  try {
    LogChunk* c = new_chunk();
    r->log_tail.store(c, std::memory_order_relaxed);
    r->consumed_chunk = c;
    add_slot_block(r);
  } catch (...) {
    destroy_record(r);
    throw;
  }
  r->tid = sys::gettid();
  r->heap_limit = rt().options.heap_limit;
  // cmr owns its signal: a thread that inherited it blocked (a program that blocks every
  // signal in main before it creates threads, or a thread started by a destructor on the
  // collector's thread) answers the handshake once registered. A thread that blocks it
  // later, on purpose, is what handshake_timeout and its diagnostic are for. The collector
  // itself keeps it blocked: it must never be held by its own handshake.
  if (!rt().collector->is_collector_thread()) {
    sigset_t own;
    sigemptyset(&own);
    sigaddset(&own, handshake::installed_signal());
    pthread_sigmask(SIG_UNBLOCK, &own, nullptr);
  }
  // The handler must find the record as soon as the collector can signal this thread, that
  // is before the record is listed; a signal that comes earlier finds no cycle and returns.
  tls_record = r;
  {
    std::lock_guard lock(rt().registry_mutex);
    r->acked_epoch.store(0, std::memory_order_relaxed);
    rt().records.push_back(r);
  }
  pthread_setspecific(g_exit_key, r);
  return r;
}

// pthread key destructor: runs at thread exit, after C++ thread_local destructors (so
// guards held in thread_locals are already gone).
void unregister_current(void* record) noexcept {
  auto* r = static_cast<ThreadRecord*>(record);
  {
    std::lock_guard lock(rt().registry_mutex);
    // The record stays listed until a completed cycle has consumed its log; the collector
    // frees it then. It is never signalled again.
    r->alive = false;
  }
  backing::thread_exit();
  if (tls_record == r) tls_record = nullptr;
}

}  // namespace

void chunk_pool_after_fork() noexcept {
  // The program forked while another thread may have held the pool lock: that thread does
  // not exist in the child.
  new (&g_pool_mutex) std::mutex();
}

void release_chunk(LogChunk* c) noexcept {
  std::lock_guard lock(g_pool_mutex);
  if (!in_arena(c)) {
    sys::unmap(c, sizeof(LogChunk));
    return;
  }
  if (g_pool_size >= kChunkPool) {
    constexpr std::size_t kPage = 4096;
    ::madvise(reinterpret_cast<char*>(c) + kPage, sys::page_round(sizeof(LogChunk)) - kPage,
              MADV_DONTNEED);
  }
  // relaxed: the pool is guarded by its mutex; nothing else reads a pooled chunk.
  c->next.store(g_pool, std::memory_order_relaxed);
  g_pool = c;
  ++g_pool_size;
}

bool chunk_arena(std::uintptr_t& begin, std::uintptr_t& end) noexcept {
  std::lock_guard lock(g_pool_mutex);
  begin = g_arena_base;
  end = g_arena_end;
  return begin != 0;
}

void destroy_record(ThreadRecord* r) noexcept {
  for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr;) {
    SlotBlock* next = b->next;
    std::free(b);
    b = next;
  }
  for (LogChunk* c = r->consumed_chunk; c != nullptr;) {
    LogChunk* next = c->next.load(std::memory_order_relaxed);
    release_chunk(c);
    c = next;
  }
  std::free(r->free_slots);
  delete r;
}

ThreadRecord* current_record() {
  ThreadRecord* r = tls_record;
  return r != nullptr ? r : register_current();
}

std::atomic<void*>* acquire_slot_slow() {
  if (g_shut_down.load(std::memory_order_relaxed))
    throw Error("cmr: a Guard was created after cmr::shutdown()");
  ThreadRecord* r = current_record();
  if (r->free_count == 0) add_slot_block(r);
  return r->free_slots[--r->free_count];
}

std::atomic<void*>* acquire_slot_or_die(ThreadRecord*& owner) noexcept {
  try {
    return acquire_slot(owner);
  } catch (const std::exception& e) {
    fatal("Guard::set() on a moved-from guard could not take a new slot: %s", e.what());
  }
}

void register_root_writer() noexcept {
  if (g_shut_down.load(std::memory_order_relaxed)) return;  // relaxed: a one-way flag
  try {
    current_record();
  } catch (const Error&) {
    // shutdown() won a race with this write: no cycle runs any more, nothing to hold.
  } catch (const std::exception& e) {
    fatal("a thread writing a Root could not register: %s", e.what());
  }
}

void release_slot_slow(ThreadRecord* owner, std::atomic<void*>* slot) noexcept {
  (void)slot;
  if (tls_record != owner)
    fatal("a Guard was destroyed on a thread other than the one that created it "
          "(guards are per-thread: move them only within their thread)");
  fatal("guard slot bookkeeping is corrupt (more releases than slots)");
}

LogChunk* grow_log(ThreadRecord* r) {
  LogChunk* fresh;
  try {
    fresh = new_chunk();
  } catch (const std::bad_alloc&) {
    fatal("out of memory while recording a tracked allocation");
  }
  LogChunk* old = r->log_tail.load(std::memory_order_relaxed);
  old->next.store(fresh, std::memory_order_relaxed);
  // SignalVec: link, then move the tail; a pause between the two leaves the old chunk as
  // the cut, from which the next cycle follows `next`.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  r->log_tail.store(fresh, std::memory_order_relaxed);
  return fresh;
}

void register_root(RootNode* node) {
  ensure_running();
  std::lock_guard lock(rt().registry_mutex);
  RootNode& head = rt().roots;
  node->next = head.next;
  node->prev = &head;
  head.next->prev = node;
  head.next = node;
  ++rt().root_count;
}

void unregister_root(RootNode* node) noexcept {
  if (node->next == nullptr) return;
  std::lock_guard lock(rt().registry_mutex);
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->next = node->prev = nullptr;
  --rt().root_count;
}

}  // namespace cmr::detail
