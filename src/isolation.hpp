// src/isolation.hpp: keeping the program's memory out of the scanner child (see .cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cmr::detail {

// An address range the child needs: [begin, end).
struct KeepRange {
  std::uintptr_t begin, end;
};

class Isolation {
 public:
  Isolation() = default;
  ~Isolation();
  Isolation(const Isolation&) = delete;
  Isolation& operator=(const Isolation&) = delete;

  // Before the cycle, without the registry lock: reads the mapping list, and the mappings'
  // fork flags (smaps, which costs milliseconds per GiB resident) when a mapping's flags
  // cannot be told from the last read and that read was cheap enough to repeat. May block.
  void prepare() noexcept;
  // Marks MADV_DONTFORK every private mapping the child does not need: anonymous mappings
  // and written-to private file mappings that are not part of a loaded object, overlapping
  // no `keep` range (sorted by begin), whose flags are known and not already marked by the
  // program. Adjacent ones are marked with one call. Called with the registry lock held,
  // so the program's own fork() (whose atfork handler takes that lock) never sees them.
  void mark(const KeepRange* keep, std::size_t count) noexcept;
  // Clears exactly the marks mark() set (MADV_DOFORK), nothing else.
  void restore() noexcept;

  std::size_t marked_bytes() const noexcept { return marked_bytes_; }
  // Bytes of markable mappings whose flags were unknown at the last prepare() (left alone).
  std::size_t unknown_bytes() const noexcept { return unknown_bytes_; }

 private:
  struct Mapping {
    std::uintptr_t begin, end;
    std::uint32_t markable : 1, known : 1, dontfork : 1;
  };
  struct Known {  // as last read from smaps
    std::uintptr_t begin, end;
    bool dontfork;
  };
  bool read_maps() noexcept;
  bool read_fork_flags() noexcept;
  void learn_flags() noexcept;

  char* text_ = nullptr;  // the last /proc/self/maps or smaps read
  std::size_t text_cap_ = 0;
  Mapping* maps_ = nullptr;  // current listing
  std::size_t maps_count_ = 0, maps_cap_ = 0;
  Known* known_ = nullptr;
  std::size_t known_count_ = 0, known_cap_ = 0;
  std::uint64_t* exec_paths_ = nullptr;  // hashes of the paths mapped executable
  std::size_t exec_count_ = 0, exec_cap_ = 0;
  KeepRange* marked_ = nullptr;  // what mark() changed, for restore()
  std::size_t marked_count_ = 0, marked_cap_ = 0;
  std::size_t marked_bytes_ = 0;
  std::size_t unknown_bytes_ = 0;
  std::int64_t last_refresh_ns_ = 0;  // when smaps was last read
  std::int64_t refresh_cost_ns_ = 0;  // how long that took
  bool ever_refreshed_ = false;
};

}  // namespace cmr::detail
