// extern-benchmarks/cds_ordered.hpp: libcds's ordered sets for the harness, for any of its
// GCs (HP, DHP, RCU): cds::container::SkipListSet (the `skiplist` workload) and
// EllenBinTreeSet (`tree`), and an adapter that gives any libcds set the harness's
// interface. Used by cds_ordered_adapter.cpp (HP, DHP) and cds_rcu_adapter.cpp (RCU, which
// adds MichaelList for `harris`).
//
// Library defaults are kept (skip list: the turbo32 level generator, p = 1/2, at most 32
// levels, whose one seed per set every insert rewrites, a line shared by all inserters;
// default back-off; tree: no back-off; item counters are off by default in both),
// except the allocators: every node, skip-list tower, internal tree node and tree update
// descriptor comes from a counting allocator, so that the unreclaimed column counts what
// the structure allocated and has not freed, as for the other implementations.
//
// No range scan: libcds's skip-list iterators cannot start at a key (there is only
// begin()), so a scan of [lo, lo + w) would walk every key below lo; and their documentation
// restricts them. HP/DHP (intrusive/impl/skip_list.h): "for debugging purpose only ... a
// crash is possible when you try to iterate the next element that has been deleted by
// concurrent thread". RCU (container/skip_list_set_rcu.h): safe from reclamation under the
// RCU lock, but an iterator whose node is erased concurrently ends early ("it is not
// guarantee that you can iterate all elements"), so a scan could silently miss keys that
// were present all along. The scan mixes therefore skip the libcds implementations.
//
// Include the containers' GC-specific headers (for RCU, after the RCU flavour's) before
// this one: this header names the templates, the includer picks their specializations.
#pragma once

#include <cds/container/details/ellen_bintree_base.h>
#include <cds/container/details/skip_list_base.h>

#include <cstdint>
#include <functional>

#include "cds_common.hpp"

namespace cmr::bench::cds_ordered {

namespace cc = cds::container;
using Less = cds::opt::less<std::less<std::uint64_t>>;
using Counting = cds::opt::allocator<cds_common::CountingBlockAllocator<int>>;

template <class GC>
using SkipListSet =
    cc::SkipListSet<GC, std::uint64_t, typename cc::skip_list::make_traits<Less, Counting>::type>;

// The tree's internal nodes hold a copy of a key (the set's key is the value itself).
struct KeyOfValue {
  void operator()(std::uint64_t& dest, const std::uint64_t& src) const { dest = src; }
};

template <class GC>
using EllenTreeSet = cc::EllenBinTreeSet<
    GC, std::uint64_t, std::uint64_t,
    typename cc::ellen_bintree::make_set_traits<
        cc::ellen_bintree::key_extractor<KeyOfValue>, Less, Counting,
        cds::opt::node_allocator<cds_common::CountingBlockAllocator<int>>,
        cc::ellen_bintree::update_desc_allocator<cds_common::CountingBlockAllocator<int>>>::type>;

// insert/erase/contains on any libcds set of std::uint64_t; the harness wants a mutable
// contains (libcds's HP ones are not const).
template <class Container>
class SetAdapter {
 public:
  bool insert(std::uint64_t k) { return c_.insert(k); }
  bool erase(const std::uint64_t& k) { return c_.erase(k); }
  bool contains(const std::uint64_t& k) { return c_.contains(k); }

 private:
  Container c_;
};

}  // namespace cmr::bench::cds_ordered
