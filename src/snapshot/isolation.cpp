// src/snapshot/isolation.cpp: snapshot isolation, so the pause does not grow with the program's
// memory (docs/design.md, "Costs": process creation copies page tables).
//
// Claims invariants 18, 19, 20, 21 and 23 of docs/design.md.
//
// Before each clone every private mapping the scanner does not need is marked
// MADV_DONTFORK, so the kernel copies neither its page tables nor its pages into the
// child; right after the clone the marks are cleared again. The child needs the tracked
// region, the runtime's own buffers, the collector's stack and thread block (all fenced
// by PROT_NONE pages, so that no program mapping ever merges with one of them and is kept
// along), and the objects it runs: file mappings of loaded code and their data (.data,
// .bss). Everything else is marked: anonymous memory of any advice or locking, written
// private file mappings of data files, thread stacks. A child that strays outside faults
// and frees nothing.
//
// The program's own fork flags: a mapping is marked only when its VmFlags are known
// (smaps) to lack `dc` (the program's own MADV_DONTFORK), so restore() never clears a mark
// it did not set; MADV_WIPEONFORK is a separate flag that DONTFORK/DOFORK do not change.
// Flags are known for a mapping read from smaps as it is, or for one that grew or merged
// from such mappings (the kernel merges only mappings with identical flags); a new mapping,
// or part of one (a split: something changed flags on part of it), is unknown until smaps
// is read again. smaps walks page tables (milliseconds per GiB), so it is read again only
// when something is unknown, and no more often than kRefreshCostFactor times its last
// cost; unknown mappings are left alone meanwhile (copied, nothing is lost).
// The marks exist only while the collector holds the registry lock, which the program's
// fork() takes in its atfork handler, so a program fork never sees them; a mark that
// failed (a mapping unmapped since the listing) is undone at once, since the kernel marks
// the rest of the range all the same.
// Limit: a program that marks a whole mapping DONTFORK (or DOFORK) without changing its
// bounds, after cmr read its flags, is seen with the old flag until the next read (at the
// latest kPeriodicRefreshNs later); see docs/decisions.md.
#include "snapshot/isolation.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <cstring>

#include "heap/blocks.hpp"
#include "os/sys.hpp"

namespace cmr::detail {

namespace {

// smaps is read again at most once per this many times its last cost (10%: a 4 GiB
// process's 5 ms read at most every 50 ms), and at least every kPeriodicRefreshNs.
constexpr std::int64_t kRefreshCostFactor = 10;
constexpr std::int64_t kPeriodicRefreshNs = 1'000'000'000;

std::uintptr_t hex(const char*& p) noexcept {
  std::uintptr_t v = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + static_cast<std::uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + static_cast<std::uintptr_t>(c - 'a' + 10);
    else return v;
  }
}

// Reads a /proc file whole into text (NUL-terminated); false on failure.
bool slurp(const char* path, MappedArray<char>& text) noexcept {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t len = 0;
  for (;;) {
    if (len + 4096 + 1 > text.capacity() && !text.reserve(text.capacity() * 2 + (64 << 10))) {
      ::close(fd);
      return false;
    }
    ssize_t n = ::read(fd, text.data() + len, text.capacity() - len - 1);
    if (n < 0) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text[len] = '\0';
  text.resize_within(len + 1);
  return true;
}

// One maps/smaps header line: "begin-end perms offset dev inode   path".
struct Header {
  std::uintptr_t begin, end;
  bool is_private, writable, executable;
  bool anonymous;  // no path, or a [bracketed] one
  bool special;    // [vdso], [vvar], [vsyscall] and the like: the child needs them
  const char* path;
  std::size_t path_len;
};

bool parse_header(const char*& p, Header& h) noexcept {
  h.begin = hex(p);
  if (*p != '-') return false;
  ++p;
  h.end = hex(p);
  if (*p != ' ' || p[1] == '\0' || p[2] == '\0' || p[3] == '\0' || p[4] == '\0') return false;
  h.writable = p[2] == 'w';
  h.executable = p[3] == 'x';
  h.is_private = p[4] == 'p';
  // Skip perms, offset, dev and inode to the path (may be empty).
  int fields = 0;
  while (*p != '\0' && *p != '\n' && fields < 4) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\n' && *p != '\0') ++p;
    ++fields;
  }
  while (*p == ' ') ++p;
  h.path = p;
  while (*p != '\n' && *p != '\0') ++p;
  h.path_len = static_cast<std::size_t>(p - h.path);
  h.anonymous = h.path_len == 0 || *h.path == '[';
  // [heap] and [stack] hold program data, [anon:name] is a named anonymous mapping.
  h.special = *h.path == '[' && std::strncmp(h.path, "[heap]", 6) != 0 &&
              std::strncmp(h.path, "[stack]", 7) != 0 && std::strncmp(h.path, "[anon", 5) != 0;
  if (*p == '\n') ++p;
  return true;
}

std::uint64_t path_hash(const char* path, std::size_t len) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (std::size_t i = 0; i < len; ++i) h = (h ^ static_cast<unsigned char>(path[i])) * 1099511628211ull;
  return h;
}

bool is_header_line(const char* p) noexcept {
  const char* q = p;
  if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) return false;
  hex(q);
  return *q == '-';
}

}  // namespace

bool Isolation::read_maps() noexcept {
  if (!slurp("/proc/self/maps", text_)) return false;
  // First the files that are mapped executable: their other mappings are a loaded object's
  // data, which the code the child runs may read.
  exec_paths_.clear();
  for (const char* p = text_.data(); *p != '\0';) {
    Header h;
    if (!parse_header(p, h)) return false;
    if (h.executable && !h.anonymous) {
      if (!exec_paths_.push(path_hash(h.path, h.path_len))) return false;
    }
  }
  std::sort(exec_paths_.begin(), exec_paths_.end());
  maps_.clear();
  std::uintptr_t object_end = 0;  // end of the last mapping of a loaded object
  for (const char* p = text_.data(); *p != '\0';) {
    Header h;
    if (!parse_header(p, h)) return false;
    const bool object =
        !h.anonymous && std::binary_search(exec_paths_.begin(), exec_paths_.end(),
                                           path_hash(h.path, h.path_len));
    // A loaded object's .bss continues its file mapping as an anonymous one (libc keeps
    // tuning variables there that memcpy reads): code the child runs needs it.
    const bool bss = h.anonymous && h.begin == object_end;
    if (object) object_end = h.end;
    if (!h.is_private) continue;  // shared mappings are shared with the child anyway: no copy
    bool markable;
    if (h.anonymous) markable = !h.special && !bss;
    else markable = h.writable && !object;  // a data file's written pages are anonymous copies
    if (!maps_.push(Mapping{h.begin, h.end, markable, ForkFlag::kUnknown})) return false;
  }
  return true;
}

bool Isolation::read_fork_flags() noexcept {
  if (!slurp("/proc/self/smaps", text_)) return false;
  known_.clear();
  Known* current = nullptr;
  for (const char* p = text_.data(); *p != '\0';) {
    if (is_header_line(p)) {
      Header h;
      if (!parse_header(p, h)) return false;
      if (!known_.push(Known{h.begin, h.end, false})) return false;
      current = &known_[known_.size() - 1];
      continue;
    }
    if (current != nullptr && std::strncmp(p, "VmFlags:", 8) == 0) {
      const char* eol = std::strchr(p, '\n');
      for (const char* f = p + 8; f + 2 <= (eol ? eol : p + std::strlen(p)); ++f)
        if (f[0] == 'd' && f[1] == 'c' && f[-1] == ' ' && (f[2] == ' ' || f[2] == '\n'))
          current->dontfork = true;
    }
    while (*p != '\n' && *p != '\0') ++p;
    if (*p == '\n') ++p;
  }
  return true;
}

// Each markable mapping's fork flag, from the last smaps read: known when the read saw it
// whole, or saw only pieces of it (it grew, or merged with neighbours of the same flags)
// that agree; unknown when it is new or a piece of what the read saw.
void Isolation::learn_flags() noexcept {
  unknown_bytes_ = 0;
  for (Mapping& m : maps_) {
    m.flag = ForkFlag::kUnknown;
    if (!m.markable) continue;
    // The first known mapping ending after m.begin (known_ is sorted and disjoint).
    const Known* k = std::upper_bound(
        known_.begin(), known_.end(), m.begin,
        [](std::uintptr_t v, const Known& a) { return v < a.end; });
    bool any = false, split = false, dontfork = false, disagree = false;
    for (; k != known_.end() && k->begin < m.end; ++k) {
      if (k->begin < m.begin || k->end > m.end) split = true;
      if (any && k->dontfork != dontfork) disagree = true;
      dontfork = k->dontfork;
      any = true;
    }
    if (any && !split && !disagree) {
      m.flag = dontfork ? ForkFlag::kProgramDontfork : ForkFlag::kCopied;
    } else {
      unknown_bytes_ += m.end - m.begin;
    }
  }
}

void Isolation::prepare() noexcept {
  if (!read_maps()) {
    maps_.clear();  // nothing is marked this cycle
    return;
  }
  learn_flags();
  const std::int64_t now = sys::now_ns();
  const std::int64_t since = now - last_refresh_ns_;
  const bool affordable = since >= kRefreshCostFactor * refresh_cost_ns_;
  if (!ever_refreshed_ || (affordable && (unknown_bytes_ != 0 || since >= kPeriodicRefreshNs))) {
    if (read_fork_flags()) {
      ever_refreshed_ = true;
      last_refresh_ns_ = sys::now_ns();
      refresh_cost_ns_ = last_refresh_ns_ - now;
    }
    // Listed again after the flags: what appears in between is unknown, never misread.
    if (!read_maps()) {
      maps_.clear();
      return;
    }
    learn_flags();
  }
}

// What the child reads: the tracked region and its block table, the runtime buffers the
// caller names (the plan, the roots), the collector's stack (the child runs on a copy of
// it) and its thread block (errno and the stack guard live there); sorted and merged.
bool Isolation::mark_all_but(std::initializer_list<KeepRange> runtime) noexcept {
  keep_.clear();
  auto add = [&](std::uintptr_t b, std::size_t bytes) {
    return b == 0 || keep_.push(KeepRange{b, b + std::max<std::size_t>(bytes, 1)});
  };
  const blocks::HeapRange heap = blocks::range();
  int on_stack = 0;
  bool ok = add(heap.base, heap.size) &&
            add(reinterpret_cast<std::uintptr_t>(heap.table), heap.table_bytes) &&
            add(reinterpret_cast<std::uintptr_t>(&on_stack), sizeof on_stack) &&
            add(reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer()), 1);
  for (const KeepRange& r : runtime) ok = ok && add(r.begin, r.end - r.begin);
  if (!ok) return false;
  std::sort(keep_.begin(), keep_.end(),
            [](const KeepRange& a, const KeepRange& b) { return a.begin < b.begin; });
  std::size_t merged = 0;
  for (const KeepRange& r : keep_) {
    if (merged != 0 && r.begin <= keep_[merged - 1].end)
      keep_[merged - 1].end = std::max(keep_[merged - 1].end, r.end);
    else
      keep_[merged++] = r;
  }
  mark(keep_.data(), merged);
  return true;
}

void Isolation::mark(const KeepRange* keep, std::size_t count) noexcept {
  marked_.clear();
  marked_bytes_ = 0;
  auto wanted = [&](const Mapping& m) {
    if (!m.markable || m.flag != ForkFlag::kCopied) return false;
    // Overlaps a range the child needs? keep is sorted and disjoint, so only the last range
    // starting before m.end can tell: any earlier overlapping one would put it inside m.
    const KeepRange* k = std::lower_bound(
        keep, keep + count, m.end, [](const KeepRange& r, std::uintptr_t v) { return r.begin < v; });
    return k == keep || (k - 1)->end <= m.begin;
  };
  auto advise = [&](std::uintptr_t b, std::uintptr_t e) {
    if (!marked_.reserve_growing(marked_.size() + 1)) return;
    if (::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTFORK) != 0) {
      // The listing is stale: something in the range was unmapped since prepare() read it
      // (a thread's stack, an allocator's segment). The kernel still marked every mapping
      // around the hole, and a program fork() would leave them out of its child for good:
      // undo at once (DOFORK, like DONTFORK, goes on past a hole).
      ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DOFORK);
      return;
    }
    marked_.push(KeepRange{b, e});  // room reserved above
    marked_bytes_ += e - b;
  };
  const std::size_t count_maps = maps_.size();
  for (std::size_t i = 0; i < count_maps;) {
    if (!wanted(maps_[i])) {
      ++i;
      continue;
    }
    // A run of adjacent mappings to mark: one call (thousands of small mappings, thread
    // stacks and their guard pages would otherwise cost a system call each, twice).
    std::size_t j = i + 1;
    while (j < count_maps && maps_[j].begin == maps_[j - 1].end && wanted(maps_[j])) ++j;
    const std::size_t before = marked_.size();
    advise(maps_[i].begin, maps_[j - 1].end);
    if (marked_.size() == before && j - i > 1)  // part of the run is gone: one at a time
      for (std::size_t k = i; k < j; ++k) advise(maps_[k].begin, maps_[k].end);
    i = j;
  }
}

void Isolation::restore() noexcept {
  for (const KeepRange& r : marked_)
    ::madvise(reinterpret_cast<void*>(r.begin), r.end - r.begin, MADV_DOFORK);
  marked_.clear();
}

}  // namespace cmr::detail
