// harness/program_memory.hpp: the kinds of private memory a program holds, made on demand.
//
// Snapshot isolation must keep every kind of the program's private memory out of the
// scanner child, whatever advice, locking, backing or shape it has. The isolation tests
// and pause_vs_rss --kind make the same memory from here: one or more mappings of about
// `bytes` in all, of which `touch` bytes are written (resident), and the readable pieces
// listed so that a caller can probe them. Each kind is what real programs do: databases
// advise (NOHUGEPAGE, HUGEPAGE), lock (mlock), reserve lazily (NORESERVE), prefault
// (POPULATE), map files privately, split mappings with guards (JIT and GC runtimes),
// grow them with mremap (realloc of large blocks), keep thousands of small ones
// (allocators' segments), and run many threads.
// Failures that the machine imposes (mlock past RLIMIT_MEMLOCK) are reported in `skipped`;
// anything else that fails is reported in `error`.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace cmr::bench {

enum class MemoryKind {
  plain,       // anonymous, no advice
  nohugepage,  // MADV_NOHUGEPAGE
  hugepage,    // MADV_HUGEPAGE
  mlocked,     // mlock()ed: every page resident and locked
  noreserve,   // MAP_NORESERVE
  populate,    // MAP_POPULATE: every page resident from the start
  file,        // MAP_PRIVATE of a writable file, pages written (copies of the file's)
  split,       // one mapping cut by mprotect into pieces: read-write, read-only, PROT_NONE
  remapped,    // grown by mremap to twice its size, maybe moved
  small,       // thousands of 256 KiB mappings, advice alternating so none merge
  stacks,      // 1000 threads' stacks (threads of the program, not registered with cmr)
};

inline constexpr MemoryKind kAllMemoryKinds[] = {
    MemoryKind::plain,    MemoryKind::nohugepage, MemoryKind::hugepage, MemoryKind::mlocked,
    MemoryKind::noreserve, MemoryKind::populate,  MemoryKind::file,     MemoryKind::split,
    MemoryKind::remapped, MemoryKind::small,      MemoryKind::stacks};

inline const char* memory_kind_name(MemoryKind k) {
  switch (k) {
    case MemoryKind::plain: return "plain";
    case MemoryKind::nohugepage: return "nohugepage";
    case MemoryKind::hugepage: return "hugepage";
    case MemoryKind::mlocked: return "mlock";
    case MemoryKind::noreserve: return "noreserve";
    case MemoryKind::populate: return "populate";
    case MemoryKind::file: return "file";
    case MemoryKind::split: return "split";
    case MemoryKind::remapped: return "mremap";
    case MemoryKind::small: return "small";
    case MemoryKind::stacks: return "stacks";
  }
  return "?";
}

inline bool parse_memory_kind(const char* name, MemoryKind& out) {
  for (MemoryKind k : kAllMemoryKinds)
    if (std::strcmp(name, memory_kind_name(k)) == 0) {
      out = k;
      return true;
    }
  return false;
}

class ProgramMemory {
 public:
  struct Piece {
    char* begin;
    std::size_t bytes;
  };

  ProgramMemory(MemoryKind kind, std::size_t bytes, std::size_t touch) : kind_(kind) {
    bytes = round_up(bytes, kSmall);
    touch = std::min(round_up(touch, kPage), bytes);
    switch (kind) {
      case MemoryKind::plain: anonymous(bytes, touch, 0, -1); break;
      case MemoryKind::nohugepage: anonymous(bytes, touch, 0, MADV_NOHUGEPAGE); break;
      case MemoryKind::hugepage: anonymous(bytes, touch, 0, MADV_HUGEPAGE); break;
      case MemoryKind::noreserve: anonymous(bytes, touch, MAP_NORESERVE, -1); break;
      case MemoryKind::populate: anonymous(bytes, bytes, MAP_POPULATE, -1); break;
      case MemoryKind::mlocked: locked(bytes); break;
      case MemoryKind::file: file(bytes, touch); break;
      case MemoryKind::split: split(bytes, touch); break;
      case MemoryKind::remapped: remapped(bytes, touch); break;
      case MemoryKind::small: small(bytes, touch); break;
      case MemoryKind::stacks: stacks(bytes, touch); break;
    }
  }
  ProgramMemory(const ProgramMemory&) = delete;
  ProgramMemory& operator=(const ProgramMemory&) = delete;
  ~ProgramMemory() {
    if (park_[1] >= 0) ::close(park_[1]);  // every parked read() returns 0
    for (pthread_t t : threads_) pthread_join(t, nullptr);
    if (park_[0] >= 0) ::close(park_[0]);
    for (const Piece& m : mappings_) ::munmap(m.begin, m.bytes);
  }

  bool ok() const { return error_.empty() && skipped_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& skipped() const { return skipped_; }
  // The pieces the program can read, in address order within each mapping.
  const std::vector<Piece>& readable() const { return readable_; }
  std::size_t readable_bytes() const {
    std::size_t n = 0;
    for (const Piece& p : readable_) n += p.bytes;
    return n;
  }
  MemoryKind kind() const { return kind_; }

 private:
  static constexpr std::size_t kPage = 4096;
  static constexpr std::size_t kSmall = 256 << 10;
  static constexpr int kThreads = 1000;

  static std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

  void fail(const char* what) { error_ = std::string(what) + ": " + std::strerror(errno); }

  // Writes one byte per page of the first `touch` bytes of each piece in turn.
  static void touch_pages(char* p, std::size_t bytes, std::size_t touch) {
    for (std::size_t i = 0; i < std::min(bytes, touch); i += kPage) p[i] = static_cast<char>(i >> 12 | 1);
  }

  char* map(std::size_t bytes, int prot, int extra_flags, int fd = -1) {
    void* p = ::mmap(nullptr, bytes, prot, (fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_PRIVATE) | extra_flags,
                     fd, 0);
    if (p == MAP_FAILED) return nullptr;
    mappings_.push_back({static_cast<char*>(p), bytes});
    return static_cast<char*>(p);
  }

  void anonymous(std::size_t bytes, std::size_t touch, int flags, int advice) {
    char* p = map(bytes, PROT_READ | PROT_WRITE, flags);
    if (p == nullptr) return fail("mmap");
    if (advice >= 0 && ::madvise(p, bytes, advice) != 0) return fail("madvise");
    touch_pages(p, bytes, touch);
    readable_.push_back({p, bytes});
  }

  void locked(std::size_t bytes) {
    char* p = map(bytes, PROT_READ | PROT_WRITE, 0);
    if (p == nullptr) return fail("mmap");
    if (::mlock(p, bytes) != 0) {
      skipped_ = std::string("mlock: ") + std::strerror(errno);  // RLIMIT_MEMLOCK, no CAP_IPC_LOCK
      return;
    }
    touch_pages(p, bytes, bytes);
    readable_.push_back({p, bytes});
  }

  void file(std::size_t bytes, std::size_t touch) {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != 0 ? dir : "/tmp") + "/cmr-private-XXXXXX";
    const int fd = ::mkstemp(path.data());
    if (fd < 0) return fail("mkstemp");
    ::unlink(path.c_str());
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      ::close(fd);
      return fail("ftruncate");
    }
    char* p = map(bytes, PROT_READ | PROT_WRITE, 0, fd);
    ::close(fd);  // the mapping keeps the file
    if (p == nullptr) return fail("mmap of a file");
    touch_pages(p, bytes, touch);
    readable_.push_back({p, bytes});
  }

  // 1 MiB pieces, each opened by a PROT_NONE guard page; the rest alternates read-write
  // and read-only, so that no two neighbours have the same protection.
  void split(std::size_t bytes, std::size_t touch) {
    constexpr std::size_t kPiece = 1 << 20;
    bytes = round_up(bytes, kPiece);
    char* p = map(bytes, PROT_READ | PROT_WRITE, 0);
    if (p == nullptr) return fail("mmap");
    const std::size_t per_piece = touch / (bytes / kPiece);
    for (std::size_t off = 0, i = 0; off < bytes; off += kPiece, ++i) {
      char* body = p + off + kPage;
      touch_pages(body, kPiece - kPage, std::max(per_piece, kPage));
      if (::mprotect(p + off, kPage, PROT_NONE) != 0) return fail("mprotect");
      if (i % 2 == 1 && ::mprotect(body, kPiece - kPage, PROT_READ) != 0) return fail("mprotect");
      readable_.push_back({body, kPiece - kPage});
    }
  }

  void remapped(std::size_t bytes, std::size_t touch) {
    const std::size_t half = bytes / 2;
    char* p = map(half, PROT_READ | PROT_WRITE, 0);
    if (p == nullptr) return fail("mmap");
    touch_pages(p, half, touch / 2);
    void* q = ::mremap(p, half, bytes, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) return fail("mremap");
    p = static_cast<char*>(q);
    mappings_.back() = {p, bytes};
    touch_pages(p + half, half, touch - touch / 2);
    readable_.push_back({p, bytes});
  }

  // 256 KiB mappings, one after the other where the kernel places them so: the advice
  // alternates, so that neighbours never merge into one mapping.
  void small(std::size_t bytes, std::size_t touch) {
    const std::size_t count = bytes / kSmall;
    const std::size_t per = std::max(touch / count, kPage);
    for (std::size_t i = 0; i < count; ++i) {
      char* p = map(kSmall, PROT_READ | PROT_WRITE, 0);
      if (p == nullptr) return fail("mmap");
      if (::madvise(p, kSmall, i % 2 == 0 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) return fail("madvise");
      touch_pages(p, kSmall, per);
      readable_.push_back({p, kSmall});
    }
  }

  // kThreads threads of bytes / kThreads stack each (at least 64 KiB), parked until the
  // destructor; the unused low end of each stack is written from here (`touch` in all).
  void stacks(std::size_t bytes, std::size_t touch) {
    const std::size_t each = std::max<std::size_t>(round_up(bytes / kThreads, kPage), 64 << 10);
    const std::size_t touch_each = std::min(touch / kThreads, each / 2);
    if (::pipe2(park_, O_CLOEXEC) != 0) return fail("pipe2");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, each);
    for (int i = 0; i < kThreads; ++i) {
      pthread_t t;
      const int e = pthread_create(&t, &attr, &park, this);
      if (e != 0) {
        errno = e;
        fail("pthread_create");
        break;
      }
      threads_.push_back(t);
      pthread_attr_t got;
      void* low = nullptr;
      std::size_t size = 0;
      if (pthread_getattr_np(t, &got) == 0) {
        pthread_attr_getstack(&got, &low, &size);
        pthread_attr_destroy(&got);
      }
      if (low == nullptr) continue;
      // The thread's frames are at the top; the bottom half is never used by park().
      touch_pages(static_cast<char*>(low), size / 2, touch_each);
      readable_.push_back({static_cast<char*>(low), size / 2});
    }
    pthread_attr_destroy(&attr);
  }

  // Blocked in read() until the destructor closes the pipe's write end: no CPU meanwhile.
  static void* park(void* self) {
    char c;
    while (::read(static_cast<ProgramMemory*>(self)->park_[0], &c, 1) < 0 && errno == EINTR) {
    }
    return nullptr;
  }

  MemoryKind kind_;
  std::vector<Piece> mappings_;
  std::vector<Piece> readable_;
  std::vector<pthread_t> threads_;
  int park_[2] = {-1, -1};
  std::string error_, skipped_;
};

}  // namespace cmr::bench
