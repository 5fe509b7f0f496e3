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

  // Before the cycle, without the registry lock: reads the mapping list (and, when it has
  // changed in a way that matters, the mappings' fork flags). May allocate and block.
  void prepare() noexcept;
  // Marks MADV_DONTFORK every private mapping the child does not need: anonymous mappings
  // overlapping no `keep` range (sorted by begin) and not already marked by the program.
  // File-backed mappings (code, and little else to copy) are kept. Called with the
  // registry lock held, so the program's own fork() (whose atfork handler takes that lock)
  // never sees the marks.
  void mark(const KeepRange* keep, std::size_t count) noexcept;
  // Clears exactly the marks mark() set (MADV_DOFORK), nothing else.
  void restore() noexcept;

  std::size_t marked_bytes() const noexcept { return marked_bytes_; }

 private:
  struct Mapping {
    std::uintptr_t begin, end;
    std::uint32_t anonymous : 1, dontfork : 1, known : 1, special : 1;
  };
  bool read_maps() noexcept;
  bool read_fork_flags() noexcept;

  char* text_ = nullptr;  // the last /proc/self/maps or smaps read
  std::size_t text_cap_ = 0;
  Mapping* maps_ = nullptr;  // current listing
  std::size_t maps_count_ = 0, maps_cap_ = 0;
  Mapping* known_ = nullptr;  // (begin, end, dontfork) as last read from smaps
  std::size_t known_count_ = 0, known_cap_ = 0;
  KeepRange* marked_ = nullptr;  // what mark() changed, for restore()
  std::size_t marked_count_ = 0, marked_cap_ = 0;
  std::size_t marked_bytes_ = 0;
  bool stale_ = true;
  std::int64_t last_refresh_ns_ = 0;
};

}  // namespace cmr::detail
