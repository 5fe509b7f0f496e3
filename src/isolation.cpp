// src/isolation.cpp: snapshot isolation, so the pause does not grow with the program's
// memory (the design's "costs": process creation copies page tables).
//
// Before each clone every private anonymous mapping the scanner does not need is marked
// MADV_DONTFORK, so the kernel copies neither its page tables nor its pages into the
// child; right after the clone the marks are cleared again. The child needs the tracked
// region, the runtime's own buffers (all MAP_NORESERVE, so they never merge with the
// program's mappings), the collector's stack and thread block, and code (file-backed
// mappings are always kept). A child that strays outside faults and frees nothing.
//
// Invariants: the program's own MADV_DONTFORK marks survive (a mapping is touched only if
// smaps said it was not marked; a mapping whose flags were never read is left alone and
// merely copied); MADV_WIPEONFORK is a separate flag that DONTFORK/DOFORK do not change;
// the marks exist only while the collector holds the registry lock, which the program's
// fork() takes in its atfork handler, so a program fork never sees them.
// Limit: a program that marks a whole, unchanged mapping DONTFORK (or DOFORK) after cmr
// read its flags is seen with the old flag until the next refresh; see docs/decisions.md.
#include "isolation.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "sys.hpp"

namespace cmr::detail {

namespace {

constexpr std::size_t kBigMapping = std::size_t{1} << 20;  // worth a flags refresh
constexpr std::int64_t kRefreshEveryNs = 1'000'000'000;     // smaps walks page tables: ms/GiB

template <class T>
bool grow(T*& data, std::size_t& cap, std::size_t need) noexcept {
  if (need <= cap) return true;
  std::size_t n = std::max(need, cap * 2 + 64);
  auto* fresh = static_cast<T*>(sys::map_private(n * sizeof(T)));
  if (fresh == nullptr) return false;
  if (cap != 0) std::memcpy(static_cast<void*>(fresh), data, cap * sizeof(T));
  sys::unmap(data, cap * sizeof(T));
  data = fresh;
  cap = n;
  return true;
}

std::uintptr_t hex(const char*& p) noexcept {
  std::uintptr_t v = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + static_cast<std::uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<std::uintptr_t>(c - 'a' + 10);
    else return v;
  }
}

}  // namespace

Isolation::~Isolation() {
  sys::unmap(text_, text_cap_);
  sys::unmap(maps_, maps_cap_ * sizeof(Mapping));
  sys::unmap(known_, known_cap_ * sizeof(Mapping));
  sys::unmap(marked_, marked_cap_ * sizeof(KeepRange));
}

// Reads a /proc file whole into text_ (NUL-terminated); false on failure.
static bool slurp(const char* path, char*& text, std::size_t& cap) noexcept {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t len = 0;
  for (;;) {
    if (len + 4096 + 1 > cap && !grow(text, cap, cap * 2 + (64 << 10))) {
      ::close(fd);
      return false;
    }
    ssize_t n = ::read(fd, text + len, cap - len - 1);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text[len] = '\0';
  return true;
}

// One maps/smaps header line: "begin-end perms offset dev inode   path".
static bool parse_header(const char*& p, std::uintptr_t& begin, std::uintptr_t& end,
                         bool& is_private, bool& anonymous, bool& special) noexcept {
  const char* line = p;
  begin = hex(p);
  if (*p != '-') return false;
  ++p;
  end = hex(p);
  if (*p != ' ') return false;
  is_private = p[4] == 'p';
  // Skip perms, offset, dev and inode to the path (may be empty).
  int fields = 0;
  while (*p != '\0' && *p != '\n' && fields < 4) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\n' && *p != '\0') ++p;
    ++fields;
  }
  while (*p == ' ') ++p;
  const char* path = p;
  while (*p != '\n' && *p != '\0') ++p;
  anonymous = path == p || *path == '[';
  // [heap] and [stack] hold program data; [vdso], [vvar] and the like must be kept.
  special = *path == '[' && std::strncmp(path, "[heap]", 6) != 0 &&
            std::strncmp(path, "[stack]", 7) != 0 && std::strncmp(path, "[anon", 5) != 0;
  if (*p == '\n') ++p;
  (void)line;
  return true;
}

bool Isolation::read_maps() noexcept {
  if (!slurp("/proc/self/maps", text_, text_cap_)) return false;
  maps_count_ = 0;
  std::uintptr_t file_end = 0;  // end of the last file-backed mapping
  for (const char* p = text_; *p != '\0';) {
    Mapping m{};
    bool priv, anon, special;
    std::uintptr_t b, e;
    if (!parse_header(p, b, e, priv, anon, special)) return false;
    // A library's .bss continues its file mapping as an anonymous one (libc keeps tuning
    // variables there that memcpy reads): code the child runs needs it.
    if (anon && b == file_end) special = true;
    if (!anon) file_end = e;
    if (!priv) continue;  // shared mappings are shared with the child anyway: no copy
    m.begin = b;
    m.end = e;
    m.anonymous = anon;
    m.special = special;
    if (!grow(maps_, maps_cap_, maps_count_ + 1)) return false;
    maps_[maps_count_++] = m;
  }
  return true;
}

bool Isolation::read_fork_flags() noexcept {
  if (!slurp("/proc/self/smaps", text_, text_cap_)) return false;
  known_count_ = 0;
  Mapping* current = nullptr;
  for (const char* p = text_; *p != '\0';) {
    if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) {
      const char* q = p;
      std::uintptr_t b = hex(q);
      if (*q == '-') {  // a mapping header
        std::uintptr_t e;
        bool priv, anon, special;
        if (!parse_header(p, b, e, priv, anon, special)) return false;
        if (!grow(known_, known_cap_, known_count_ + 1)) return false;
        current = &known_[known_count_++];
        *current = Mapping{b, e, anon, 0, 1, special};
        continue;
      }
    }
    if (current != nullptr && std::strncmp(p, "VmFlags:", 8) == 0) {
      const char* eol = std::strchr(p, '\n');
      for (const char* f = p + 8; f + 2 <= (eol ? eol : p + std::strlen(p)); ++f)
        if (f[0] == 'd' && f[1] == 'c' && f[-1] == ' ' && (f[2] == ' ' || f[2] == '\n'))
          current->dontfork = 1;
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return true;
}

void Isolation::prepare() noexcept {
  const std::int64_t now = sys::now_ns();
  if (stale_ && (known_count_ == 0 || now - last_refresh_ns_ >= kRefreshEveryNs)) {
    if (read_fork_flags()) {
      stale_ = false;
      last_refresh_ns_ = now;
    }
  }
  if (!read_maps()) maps_count_ = 0;  // nothing is marked this cycle
}

void Isolation::mark(const KeepRange* keep, std::size_t count) noexcept {
  marked_count_ = 0;
  marked_bytes_ = 0;
  for (std::size_t i = 0; i < maps_count_; ++i) {
    const Mapping& m = maps_[i];
    if (!m.anonymous || m.special) continue;
    // Overlaps a range the child needs? keep is sorted and disjoint, so only the last range
    // starting before m.end can tell: any earlier overlapping one would put it inside m.
    const KeepRange* k = std::lower_bound(
        keep, keep + count, m.end, [](const KeepRange& r, std::uintptr_t v) { return r.begin < v; });
    if (k != keep && (k - 1)->end > m.begin) continue;
    const Mapping* known = std::lower_bound(
        known_, known_ + known_count_, m.begin,
        [](const Mapping& a, std::uintptr_t v) { return a.begin < v; });
    if (known == known_ + known_count_ || known->begin != m.begin || known->end != m.end) {
      if (m.end - m.begin >= kBigMapping) stale_ = true;  // a new big mapping: learn its flags
      continue;  // flags unknown: leave it alone (it is copied, nothing is lost)
    }
    if (known->dontfork) continue;  // the program's own mark: not ours to change
    if (!grow(marked_, marked_cap_, marked_count_ + 1)) break;
    if (::madvise(reinterpret_cast<void*>(m.begin), m.end - m.begin, MADV_DONTFORK) != 0)
      continue;  // unmapped since it was listed: nothing to restore
    marked_[marked_count_++] = KeepRange{m.begin, m.end};
    marked_bytes_ += m.end - m.begin;
  }
}

void Isolation::restore() noexcept {
  for (std::size_t i = 0; i < marked_count_; ++i)
    ::madvise(reinterpret_cast<void*>(marked_[i].begin), marked_[i].end - marked_[i].begin,
              MADV_DOFORK);
  marked_count_ = 0;
}

}  // namespace cmr::detail
