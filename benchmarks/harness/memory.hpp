// harness/memory.hpp: the process's memory as the kernel sees it.
//
// Peak RSS comes from getrusage (ru_maxrss, KiB on Linux): it covers the whole run of this
// process, which is why every configuration runs in its own process. Current RSS comes from
// /proc/self/statm for the timeline. The peak RSS of waited-for children is reported apart:
// cmr's scanner child shares the parent's pages copy-on-write, so adding it to the parent's
// figure would double-count.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace cmr::bench {

inline std::uint64_t peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss);
}

inline std::uint64_t children_peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss);
}

// CPU time (user + system) consumed so far by every thread of this process and by its
// waited-for children (cmr's scanner), in seconds: what a run cost in CPU, whatever share of
// the machine other processes left it.
inline double cpu_seconds() {
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  return seconds(self.ru_utime) + seconds(self.ru_stime) + seconds(children.ru_utime) +
         seconds(children.ru_stime);
}

// Resident set size now, in KiB; 0 when /proc is unavailable.
inline std::uint64_t current_rss_kib() {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char* p = buf;
  std::strtoull(p, &p, 10);  // total program size; the second field is resident pages
  std::uint64_t resident = std::strtoull(p, nullptr, 10);
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) / 1024;
}

}  // namespace cmr::bench
