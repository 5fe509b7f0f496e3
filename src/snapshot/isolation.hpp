// src/snapshot/isolation.hpp: keeping the program's memory out of the scanner child (see
// isolation.cpp: the marks never change what the program's own children inherit).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "os/mapped_array.hpp"

namespace cmr::detail {

// An address range the child needs: [begin, end).
struct KeepRange {
  std::uintptr_t begin, end;
};

class Isolation {
 public:
  Isolation() = default;
  Isolation(const Isolation&) = delete;
  Isolation& operator=(const Isolation&) = delete;

  // Before the cycle, without the registry lock: reads the mapping list, and the mappings'
  // fork flags (smaps, which costs milliseconds per GiB resident) when a mapping's flags
  // cannot be told from the last read and that read was cheap enough to repeat. May block.
  void prepare() noexcept;
  // Marks MADV_DONTFORK every private mapping the child does not need: anonymous mappings
  // and written-to private file mappings that are not part of a loaded object, overlapping
  // nothing the child reads (the tracked heap, the collector's stack and thread block, and
  // the `runtime` buffers), whose flags are known and not already marked by the program.
  // Adjacent ones are marked with one call. Called with the registry lock held, so the
  // program's own fork() (whose atfork handler takes that lock) never sees the marks.
  // False (nothing marked) if the keep-list could not be built.
  bool mark_all_but(std::initializer_list<KeepRange> runtime) noexcept;
  // Clears exactly the marks mark_all_but() set (MADV_DOFORK), nothing else.
  void restore() noexcept;

  std::size_t marked_bytes() const noexcept { return marked_bytes_; }
  // Bytes of markable mappings whose flags were unknown at the last prepare() (left alone).
  std::size_t unknown_bytes() const noexcept { return unknown_bytes_; }

 private:
  // A mapping's fork flag as far as the last smaps read tells.
  enum class ForkFlag : std::uint8_t { kUnknown, kCopied, kProgramDontfork };
  struct Mapping {
    std::uintptr_t begin, end;
    bool markable;  // private memory the child never needs
    ForkFlag flag;
  };
  struct Known {  // as last read from smaps
    std::uintptr_t begin, end;
    bool dontfork;
  };
  bool read_maps() noexcept;
  bool read_fork_flags() noexcept;
  void learn_flags() noexcept;
  void mark(const KeepRange* keep, std::size_t count) noexcept;

  MappedArray<char> text_;  // the last /proc/self/maps or smaps read
  MappedArray<Mapping> maps_;  // current listing
  MappedArray<Known> known_;
  MappedArray<std::uint64_t> exec_paths_;  // hashes of the paths mapped executable
  MappedArray<KeepRange> keep_;    // what the child reads, sorted and merged
  MappedArray<KeepRange> marked_;  // what mark() changed, for restore()
  std::size_t marked_bytes_ = 0;
  std::size_t unknown_bytes_ = 0;
  std::int64_t last_refresh_ns_ = 0;  // when smaps was last read
  std::int64_t refresh_cost_ns_ = 0;  // how long that took
  bool ever_refreshed_ = false;
};

}  // namespace cmr::detail
