// compare/options.cpp: parsing and validating cmr_compare's flags.
#include "options.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace cmr::bench {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep = ',') {
  std::vector<std::string_view> out;
  while (true) {
    auto pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  try {
    std::size_t used = 0;
    double v = std::stod(std::string(s), &used);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

bool fail(const char* what, std::string_view value) {
  std::fprintf(stderr, "cmr_compare: invalid %s '%.*s'\n", what, static_cast<int>(value.size()),
               value.data());
  return false;
}

bool apply(DriverOptions& o, std::string_view flag, std::string_view v) {
  if (flag == "--impl") {
    o.impls.clear();
    for (auto s : split(v)) o.impls.emplace_back(s);
  } else if (flag == "--workload") {
    o.workloads.clear();
    for (auto s : split(v)) {
      if (s == "all") {
        o.workloads.assign(std::begin(kAllWorkloads), std::end(kAllWorkloads));
        continue;
      }
      auto w = parse_workload(s);
      if (!w) return fail("workload", s);
      o.workloads.push_back(*w);
    }
  } else if (flag == "--mix") {
    o.mixes.clear();
    for (auto s : split(v)) {
      auto m = parse_mix(s);
      if (!m) return fail("mix (want lookup/insert/erase adding to 100, or scan/insert/erase/sW)", s);
      o.mixes.push_back(*m);
    }
  } else if (flag == "--keys") {
    o.keys.clear();
    for (auto s : split(v)) {
      auto k = parse_int<std::uint64_t>(s);
      if (!k || *k < 2 || *k > (std::uint64_t{1} << 32)) return fail("key range", s);
      o.keys.push_back(*k);
    }
  } else if (flag == "--threads") {
    o.threads.clear();
    for (auto s : split(v)) {
      auto t = parse_int<int>(s);
      if (!t || *t < 1 || *t > 4096) return fail("thread count", s);
      o.threads.push_back(*t);
    }
  } else if (flag == "--seconds") {
    auto d = parse_double(v);
    if (!d || *d <= 0) return fail("duration", v);
    o.seconds = *d;
  } else if (flag == "--timeline") {
    o.timeline_path = std::string(v);
  } else if (flag == "--sample-ms") {
    auto n = parse_int<int>(v);
    if (!n || *n < 1) return fail("sample period", v);
    o.sample_ms = *n;
  } else if (flag == "--timeline-ms") {
    auto n = parse_int<int>(v);
    if (!n || *n < 0) return fail("timeline period", v);
    o.timeline_ms = *n;
  } else if (flag == "--timeout") {
    auto d = parse_double(v);
    if (!d || *d <= 0) return fail("timeout", v);
    o.timeout_s = *d;
  } else if (flag == "--seed") {
    auto n = parse_int<std::uint64_t>(v);
    if (!n) return fail("seed", v);
    o.seed = *n;
  } else if (flag == "--result-fd") {
    auto n = parse_int<int>(v);
    if (!n || *n < 0) return fail("result fd", v);
    o.result_fd = *n;
  } else {
    std::fprintf(stderr, "cmr_compare: unknown option '%.*s'\n", static_cast<int>(flag.size()),
                 flag.data());
    return false;
  }
  return true;
}

}  // namespace

void print_usage(const char* argv0) {
  std::fprintf(stderr,
R"(usage: %s [options]
Runs every (impl, workload, mix, keys, threads) configuration in its own process and
prints one row per configuration.

  --impl LIST        implementations, or 'all' (default: all); see --list
  --workload LIST    queue,stack,set,list,skiplist,tree,harris or all (default: all)
                       set: 1024-bucket hash set; list: one ordered list of 1000 keys;
                       skiplist, tree, harris: a skip list, a lock-free external binary
                       search tree, a Harris(-Michael) list, each over --keys
  --mix LIST         keyed-workload mixes lookup/insert/erase, e.g. 90/5/5,50/25/25
                     (default 90/5/5). L/I/E/sW is a scan mix: L%% range scans instead of
                     lookups, each over the keys present in [lo, lo+W) (about W/2 keys at
                     the half-full steady state), plus I%% inserts and E%% erases; e.g.
                     80/10/10/s100. Scan mixes run on skiplist only, and only for the
                     implementations whose scan is safe under concurrent erase (--list:
                     "scan"); other pairs are skipped with a message
  --keys LIST        key ranges of set, skiplist, tree and harris, e.g. 1000,1000000
                     (default 1000; the list workload always uses 1000). Half the range is
                     inserted before the timed phase, in random order (on several threads
                     from 131072 keys on); that and the end check are not timed
  --threads LIST     worker thread counts (default 1,2,4)
  --seconds S        timed phase per configuration (default 1)
  --csv              CSV on stdout (header: impl,workload,mix,threads,mops,peak_rss_kib,...)
  --no-header        omit the CSV header (for appending)
  --stall            one extra thread holds a guard / read lock / hazard pointer all run
  --timeline FILE    RSS and unreclaimed objects every --timeline-ms (default 100) to FILE
  --sample-ms N      unreclaimed-object sampling period (default 1)
  --pin              pin worker i to CPU i mod nproc
  --timeout S        kill a configuration after S seconds (default 10 x seconds + 60)
  --seed N           workload seed
  --in-process       run configurations in this process (debugging one configuration:
                     memory figures leak from one run into the next, and cmr cannot be
                     initialised again after its first run's shutdown)
  --list             list implementations and the workloads each provides

Environment: CMR_BENCH_TRIGGER_KIB and CMR_BENCH_TRIGGER_RATIO set cmr's
Options::trigger_bytes and trigger_ratio (default: the library's), for studies of memory
against throughput and pause.
)",
               argv0);
}

std::optional<DriverOptions> parse_options(int argc, char** argv) {
  DriverOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--csv") {
      o.csv = true;
    } else if (a == "--no-header") {
      o.header = false;
    } else if (a == "--stall") {
      o.stall = true;
    } else if (a == "--pin") {
      o.pin = true;
    } else if (a == "--list") {
      o.list = true;
    } else if (a == "--in-process") {
      o.in_process = true;
    } else if (a == "--child") {
      o.child = true;
    } else if (a == "--help" || a == "-h") {
      print_usage(argv[0]);
      std::exit(0);
    } else {
      std::string_view flag = a, value;
      if (auto eq = a.find('='); eq != std::string_view::npos) {
        flag = a.substr(0, eq);
        value = a.substr(eq + 1);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::fprintf(stderr, "cmr_compare: %s needs a value\n", argv[i]);
        return std::nullopt;
      }
      if (!apply(o, flag, value)) {
        print_usage(argv[0]);
        return std::nullopt;
      }
    }
  }
  if (o.impls.empty() || o.workloads.empty() || o.mixes.empty() || o.keys.empty() ||
      o.threads.empty()) {
    std::fprintf(stderr, "cmr_compare: empty list\n");
    return std::nullopt;
  }
  return o;
}

}  // namespace cmr::bench
