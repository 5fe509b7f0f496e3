// extern-benchmarks/urcu_adapter.cpp: `urcu` — liburcu 0.13, memb flavour (sys_membarrier:
// readers issue no fence), nodes freed through call_rcu by the library's call_rcu thread.
//
// Structures: cds_lfq (queue), cds_lfs (stack), rculfhash with a fixed table of `buckets`
// buckets and no auto-resize (set). liburcu has no plain ordered list, so the `list` workload
// runs our Harris-Michael list (harris_michael_set.hpp, one bucket) under rcu_read_lock,
// retiring unlinked nodes with call_rcu: the same algorithm as the `leak` list, so the
// difference between the two is the cost of RCU alone. The `harris` workload is that same
// list over --keys. (rculfhash with one bucket would
// have been the other choice; it orders by bit-reversed hash and carries resize machinery,
// which would blur that comparison.)
//
// The read-side lock/unlock are inlined (_LGPL_SOURCE for the flavour header, as liburcu
// recommends for speed). The queue and stack operations are not: liburcu 0.13's inline
// versions (static/lfstack.h, static/rculfqueue.h) are C-only, so they are the library's
// exported functions, one call more per operation. Every thread registers.
#define _LGPL_SOURCE 1
#include <urcu/urcu-memb.h>
#undef _LGPL_SOURCE
// The structure headers come after the flavour header, as liburcu requires.
#include <urcu/lfstack.h>
#include <urcu/rculfhash.h>
#include <urcu/rculfqueue.h>

#include <cstddef>  // offsetof
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "counting_runtime.hpp"
#include "extern_impls.hpp"
#include "harris_michael_set.hpp"

namespace cmr::bench {
namespace {

class ReadLock {
 public:
  ReadLock() { urcu_memb_read_lock(); }
  ~ReadLock() { urcu_memb_read_unlock(); }
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;
};

// The call_rcu callback: frees the (standard-layout) node whose rcu_head sits at kOffset.
template <class Node, std::size_t kOffset>
void free_after_grace(rcu_head* head) {
  counted_delete(reinterpret_cast<Node*>(reinterpret_cast<char*>(head) - kOffset));
}

class UrcuQueue {
 public:
  UrcuQueue() { cds_lfq_init_rcu(&q_, urcu_memb_call_rcu); }
  UrcuQueue(const UrcuQueue&) = delete;
  UrcuQueue& operator=(const UrcuQueue&) = delete;
  ~UrcuQueue() {
    while (try_pop()) {
    }
    cds_lfq_destroy_rcu(&q_);  // frees the dummy through call_rcu: caller is registered
  }
  void push(std::uint64_t v) {
    Node* n = counted_new<Node>();
    cds_lfq_node_init_rcu(&n->link);
    n->value = v;
    ReadLock lock;
    cds_lfq_enqueue_rcu(&q_, &n->link);
  }
  std::optional<std::uint64_t> try_pop() {
    cds_lfq_node_rcu* link;
    {
      ReadLock lock;
      link = cds_lfq_dequeue_rcu(&q_);
    }
    if (link == nullptr) return std::nullopt;
    Node* n = caa_container_of(link, Node, link);
    std::uint64_t v = n->value;  // the node is ours now; only its memory must wait
    urcu_memb_call_rcu(&n->rcu, &free_after_grace<Node, offsetof(Node, rcu)>);
    return v;
  }

 private:
  struct Node {
    cds_lfq_node_rcu link;
    std::uint64_t value;
    rcu_head rcu;
  };
  cds_lfq_queue_rcu q_;
};

class UrcuStack {
 public:
  UrcuStack() { __cds_lfs_init(&s_); }
  UrcuStack(const UrcuStack&) = delete;
  UrcuStack& operator=(const UrcuStack&) = delete;
  ~UrcuStack() {
    while (try_pop()) {
    }
  }
  void push(std::uint64_t v) {
    Node* n = counted_new<Node>();
    cds_lfs_node_init(&n->link);
    n->value = v;
    cds_lfs_push(stack_ptr(), &n->link);  // push needs no read-side lock
  }
  std::optional<std::uint64_t> try_pop() {
    cds_lfs_node* link;
    {
      // Concurrent __cds_lfs_pop is safe under rcu_read_lock as long as popped nodes wait a
      // grace period before reuse (lfstack.h's synchronization table, option 1).
      ReadLock lock;
      link = __cds_lfs_pop(stack_ptr());
    }
    if (link == nullptr) return std::nullopt;
    Node* n = caa_container_of(link, Node, link);
    std::uint64_t v = n->value;
    urcu_memb_call_rcu(&n->rcu, &free_after_grace<Node, offsetof(Node, rcu)>);
    return v;
  }

 private:
  struct Node {
    cds_lfs_node link;
    std::uint64_t value;
    rcu_head rcu;
  };
  // C++ ignores liburcu's transparent union: build it by hand.
  cds_lfs_stack_ptr_t stack_ptr() {
    cds_lfs_stack_ptr_t p;
    p._s = &s_;
    return p;
  }
  __cds_lfs_stack s_;
};

class UrcuHashSet {
 public:
  explicit UrcuHashSet(std::size_t buckets)
      : ht_(cds_lfht_new_flavor(buckets, buckets, buckets, /*flags: no auto-resize*/ 0,
                                &urcu_memb_flavor, nullptr)) {}
  UrcuHashSet(const UrcuHashSet&) = delete;
  UrcuHashSet& operator=(const UrcuHashSet&) = delete;
  ~UrcuHashSet() {
    {
      ReadLock lock;
      cds_lfht_iter it;
      cds_lfht_node* node;
      cds_lfht_for_each(ht_, &it, node) {
        if (cds_lfht_del(ht_, node) == 0)
          urcu_memb_call_rcu(&node_of(node)->rcu, &free_after_grace<Node, offsetof(Node, rcu)>);
      }
    }
    cds_lfht_destroy(ht_, nullptr);
  }
  bool insert(std::uint64_t k) {
    Node* n = counted_new<Node>();
    cds_lfht_node_init(&n->node);
    n->key = k;
    cds_lfht_node* added;
    {
      ReadLock lock;
      added = cds_lfht_add_unique(ht_, hash(k), &match, &n->key, &n->node);
    }
    if (added == &n->node) return true;
    counted_delete(n);  // never published: no grace period needed (rculfhash.h)
    return false;
  }
  bool erase(const std::uint64_t& k) {
    ReadLock lock;
    cds_lfht_iter it;
    cds_lfht_lookup(ht_, hash(k), &match, &k, &it);
    cds_lfht_node* node = cds_lfht_iter_get_node(&it);
    if (node == nullptr || cds_lfht_del(ht_, node) != 0) return false;
    urcu_memb_call_rcu(&node_of(node)->rcu, &free_after_grace<Node, offsetof(Node, rcu)>);
    return true;
  }
  bool contains(const std::uint64_t& k) {
    ReadLock lock;
    cds_lfht_iter it;
    cds_lfht_lookup(ht_, hash(k), &match, &k, &it);
    return cds_lfht_iter_get_node(&it) != nullptr;
  }

 private:
  struct Node {
    cds_lfht_node node;
    std::uint64_t key;
    rcu_head rcu;
  };
  static Node* node_of(cds_lfht_node* n) { return caa_container_of(n, Node, node); }
  // Identity, as std::hash<std::uint64_t>: bucket = key mod buckets, as for the others.
  static unsigned long hash(std::uint64_t k) { return static_cast<unsigned long>(k); }
  static int match(cds_lfht_node* n, const void* key) {
    return node_of(n)->key == *static_cast<const std::uint64_t*>(key);
  }
  cds_lfht* ht_;
};

struct UrcuReclaim {
  using Hook = rcu_head;
  template <class Node>
  static Node* allocate(std::uint64_t key) {
    return counted_new<Node>(key);
  }
  template <class Node>
  static void free_unpublished(Node* n) {
    counted_delete(n);
  }
  // Called inside the operation's read-side critical section, by the unlinking thread.
  template <class Node>
  static void retire(Node* n) {
    urcu_memb_call_rcu(&n->hook, &free_after_grace<Node, offsetof(Node, hook)>);
  }
  template <class Node>
  static void destroy(Node* n) {
    counted_delete(n);
  }
};

class UrcuList {
 public:
  bool insert(std::uint64_t k) {
    ReadLock lock;
    return list_.insert(k);
  }
  bool erase(const std::uint64_t& k) {
    ReadLock lock;
    return list_.erase(k);
  }
  bool contains(const std::uint64_t& k) {
    ReadLock lock;
    return list_.contains(k);
  }

 private:
  HarrisMichaelSet<UrcuReclaim> list_{1};
};

struct UrcuImpl {
  static constexpr std::string_view kName = "urcu";
  static constexpr std::string_view kScheme =
      "liburcu memb flavour, call_rcu (cds_lfq, cds_lfs, rculfhash, Harris-Michael list)";
  static constexpr std::string_view kStallNote =
      "rcu_read_lock held: no grace period ends, call_rcu backlog grows";

  class Runtime {
   public:
    explicit Runtime(const RunConfig&) {}
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    ~Runtime() {
      // Run every pending callback before the process reports success (rcu_barrier wants
      // a registered caller).
      urcu_memb_register_thread();
      urcu_memb_barrier();
      urcu_memb_unregister_thread();
    }
    // After the prefill (on the registered main thread): run the callbacks it queued, if
    // any, before the clock starts.
    void settle() { urcu_memb_barrier(); }
    std::optional<std::uint64_t> unreclaimed() { return AllocationCounter::live(); }
    void extra_columns(Columns& c) {
      // Without sys_membarrier the memb flavour falls back to a fence per read-side lock.
      c.add_note("membarrier=" + std::to_string(urcu_memb_has_sys_membarrier));
    }
  };

  class ThreadScope {
   public:
    ThreadScope() { urcu_memb_register_thread(); }
    ~ThreadScope() { urcu_memb_unregister_thread(); }
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;
  };

  template <class Wait>
  static void stall(Runtime&, Wait&& wait) {
    ReadLock lock;
    wait();
  }

  using Queue = UrcuQueue;
  using Stack = UrcuStack;
  using Set = UrcuHashSet;
  using List = UrcuList;
  using Harris = UrcuList;
};

}  // namespace

void add_urcu_impls(std::vector<ImplInfo>& out) { out.push_back(make_impl_info<UrcuImpl>()); }

}  // namespace cmr::bench
