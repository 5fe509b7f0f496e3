// cmr/cmr.hpp: automatic memory reclamation for lock-free data structures.
//
// What: objects created with cmr::make live in a tracked heap and are freed automatically
// once no root reaches them. Roots are Guards (per-thread, short-lived), Roots (long-lived
// entry points) and, transitively, the words of reachable tracked objects (scanned
// conservatively: interior and low-bit tagged pointers count).
//
// Why: no retire(), no epochs to advance, no hazard-pointer fence per read. A collector
// pauses the threads briefly (a signal handshake); a small live heap is marked right there,
// a larger one by a copy-on-write child off the critical path; a background thread frees.
//
// The one rule: a tracked object is alive only while a root reaches it. A pointer kept only
// in ordinary memory (a std::vector, a local variable without a guard) does not keep it
// alive.
//
// When not: programs that cannot tolerate a signal (see the README's troubleshooting on
// EINTR), or that cannot create child processes.
//
//   cmr::Root<Node> head;
//   void push(int v) {
//     cmr::Guard<Node> g;
//     Node* n = cmr::make<Node>(g, v);
//     Node* old = head.load();
//     do { n->next.store(old); } while (!head.compare_exchange_weak(old, n));
//   }
#pragma once

#include "cmr/atomic.hpp"
#include "cmr/guard.hpp"
#include "cmr/make.hpp"
#include "cmr/runtime.hpp"

