// src/threads/registry.cpp: the thread registry and its threads' guard slots.
//
// Keeps the state readable as invariant 4 of docs/design.md (claimed by
// threads/handshake.cpp) needs: slot blocks are fully written before they
// are published by a relaxed store after a signal fence, so a thread paused at any
// instruction leaves its record consistent for the collector. Registration
// and unregistration take the registry lock, which the collector holds for the whole pause:
// no thread joins or leaves mid-handshake, and a signal never goes to a thread that left.
// Never called from the signal handler.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "threads/registry.hpp"

#include "cycle/collector.hpp"
#include "heap/allocate.hpp"
#include "os/sys.hpp"
#include "runtime/runtime.hpp"
#include "threads/handshake.hpp"

namespace cmr::detail {

__thread ThreadRecord* tls_record __attribute__((tls_model("initial-exec"))) = nullptr;
std::atomic<bool> g_shut_down{false};

namespace {

pthread_key_t g_exit_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

void unregister_current(void* record) noexcept;

void free_record(ThreadRecord* r) noexcept {
  for (SlotBlock* b = r->slot_blocks.load(std::memory_order_relaxed); b != nullptr;) {
    SlotBlock* next = b->next;
    std::free(b);
    b = next;
  }
  std::free(r->free_slots);
  delete r;
}

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
    add_slot_block(r);
  } catch (...) {
    free_record(r);
    throw;
  }
  r->tid = sys::gettid();
  r->heap_limit = rt().options.heap_limit;
  // relaxed: read by this thread only (shutdown() may clear it later).
  r->fast_make.store(r->heap_limit == 0 && !g_shut_down.load(std::memory_order_relaxed),
                     std::memory_order_relaxed);
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
    std::lock_guard lock(registry().mutex);
    r->acked_round.store(0, std::memory_order_relaxed);
    registry().records.push_back(r);
  }
  pthread_setspecific(g_exit_key, r);
  return r;
}

// pthread key destructor: runs at thread exit, after C++ thread_local destructors (so
// guards held in thread_locals are already gone).
void unregister_current(void* record) noexcept {
  auto* r = static_cast<ThreadRecord*>(record);
  // While still registered (held by every handshake, like any allocating thread): once
  // it is marked exited the next cycle may free the record. Blocks this thread takes after
  // this (a later thread-exit destructor that allocates) are handed on when the record
  // is dropped.
  heap_thread_exit(r);
  {
    std::lock_guard lock(registry().mutex);
    // The record stays listed until the next cycle drops it; it is never signalled again.
    r->presence = ThreadRecord::Presence::kExited;
  }
  if (tls_record == r) tls_record = nullptr;
}

}  // namespace

ThreadRegistry& registry() {
  static ThreadRegistry* const state = new ThreadRegistry();
  return *state;
}

void drop_record(ThreadRecord* r) noexcept {
  ThreadRegistry& reg = registry();
  // relaxed: the owner has exited (or does not exist in a fork's child); its last stores
  // were ordered by the registry lock it took to unregister, or came with the fork.
  reg.dead_allocated_objects += r->allocated_objects.load(std::memory_order_relaxed);
  reg.dead_allocated_bytes += r->allocated_bytes.load(std::memory_order_relaxed);
  free_record(r);
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

}  // namespace cmr::detail
