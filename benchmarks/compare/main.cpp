// compare/main.cpp: cmr_compare, the side-by-side driver of project issue 7.
//
// Expands the command line into configurations (impl x workload x mix x keys x threads),
// skips the pairs an implementation does not provide (saying so once), runs each
// configuration in its own process, and prints one CSV row (or table line) per
// configuration, plus an optional RSS/unreclaimed timeline file. Exit status: 0 when every
// configuration ran and passed its end check, 1 otherwise, 2 on a usage error.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "child_run.hpp"
#include "cmr_adapter.hpp"
#include "extern_impls.hpp"
#include "harness/columns.hpp"
#include "harness/impl.hpp"
#include "options.hpp"

namespace cmr::bench {
namespace {

std::vector<ImplInfo> all_impls() {
  std::vector<ImplInfo> impls;
  add_cmr_impls(impls);
  for (auto& i : extern_impls()) impls.push_back(i);
  return impls;
}

const ImplInfo* find_impl(const std::vector<ImplInfo>& impls, std::string_view name) {
  for (const auto& i : impls)
    if (i.name == name) return &i;
  return nullptr;
}

RunConfig base_config(const DriverOptions& o) {
  RunConfig c;
  c.seconds = o.seconds;
  c.stall = o.stall;
  c.sample_ms = o.sample_ms;
  c.timeline_ms = o.timeline_path.empty() && !o.child ? 0 : o.timeline_ms;
  c.pin = o.pin;
  c.seed = o.seed;
  return c;
}

int run_child(const DriverOptions& o, const std::vector<ImplInfo>& impls) {
  const ImplInfo* impl = find_impl(impls, o.impls.front());
  if (impl == nullptr || o.result_fd < 0 || !impl->provides(o.workloads.front())) {
    std::fprintf(stderr, "cmr_compare --child: bad configuration\n");
    return 2;
  }
  RunConfig c = base_config(o);
  c.impl = o.impls.front();
  c.workload = o.workloads.front();
  c.mix = o.mixes.front();
  c.keys = o.keys.front();
  c.threads = o.threads.front();
  RunReport report = impl->run(c);
  write_report(o.result_fd, report);
  return 0;
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char ch : v) q += (ch == '"') ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

// Lays a report out in kCsvColumns order; names outside it go to `note` as name=value.
std::vector<std::string> row_of(const Columns& cols) {
  Columns c = cols;
  for (const auto& [k, v] : cols.entries()) {
    if (std::find(std::begin(kCsvColumns), std::end(kCsvColumns), k) == std::end(kCsvColumns))
      c.add_note(k + "=" + v);
  }
  std::vector<std::string> row;
  for (auto name : kCsvColumns) row.push_back(c.get(name));
  return row;
}

void print_table_line(const std::vector<std::string>& row) {
  // impl workload mix keys threads mops peak_rss_kib peak_unreclaimed ok note
  auto at = [&](std::string_view name) {
    auto it = std::find(std::begin(kCsvColumns), std::end(kCsvColumns), name);
    return row[static_cast<std::size_t>(it - std::begin(kCsvColumns))];
  };
  std::printf("%-9s %-6s %-9s %-7s %7s %10s %12s %16s %-3s %s\n", at("impl").c_str(),
              at("workload").c_str(), at("mix").c_str(), at("keys").c_str(),
              at("threads").c_str(), at("mops").c_str(), at("peak_rss_kib").c_str(),
              at("peak_unreclaimed").c_str(), at("ok").c_str(), at("note").c_str());
}

int list_impls(const std::vector<ImplInfo>& impls) {
  // One column per workload; skiplist says "scan" where it also runs the scan mixes.
  std::printf("%-9s", "impl");
  for (Workload w : kAllWorkloads) std::printf(" %-8s", std::string(workload_name(w)).c_str());
  std::printf("  reclamation\n");
  for (const auto& i : impls) {
    std::printf("%-9.*s", static_cast<int>(i.name.size()), i.name.data());
    for (Workload w : kAllWorkloads) {
      const char* mark = !i.provides(w) ? "-" : (allows_scans(w) && i.scans ? "scan" : "yes");
      std::printf(" %-8s", mark);
    }
    std::printf("  %.*s\n", static_cast<int>(i.scheme.size()), i.scheme.data());
  }
  if (const char* why = cmr_missing_reason()) std::printf("(cmr not built: %s)\n", why);
  return 0;
}

int run_sweep(const DriverOptions& o, const std::vector<ImplInfo>& impls) {
  std::vector<const ImplInfo*> chosen;
  for (const auto& name : o.impls) {
    if (name == "all") {
      for (const auto& i : impls) chosen.push_back(&i);
      continue;
    }
    const ImplInfo* i = find_impl(impls, name);
    if (i == nullptr) {
      std::fprintf(stderr, "cmr_compare: unknown implementation '%s'", name.c_str());
      if (name == "cmr" && cmr_missing_reason() != nullptr)
        std::fprintf(stderr, " (%s)", cmr_missing_reason());
      std::fprintf(stderr, "; --list shows what this build has\n");
      return 2;
    }
    if (std::find(chosen.begin(), chosen.end(), i) == chosen.end()) chosen.push_back(i);
  }
  if (std::find(o.impls.begin(), o.impls.end(), "all") != o.impls.end() &&
      cmr_missing_reason() != nullptr)
    std::fprintf(stderr, "cmr_compare: note: 'all' without cmr: %s\n", cmr_missing_reason());

  std::vector<RunConfig> configs;
  for (Workload w : o.workloads) {
    for (const ImplInfo* impl : chosen) {
      if (!impl->provides(w)) {
        std::fprintf(stderr, "cmr_compare: skipping %.*s x %.*s: not provided\n",
                     static_cast<int>(impl->name.size()), impl->name.data(),
                     static_cast<int>(workload_name(w).size()), workload_name(w).data());
        continue;
      }
      std::vector<Mix> mixes = uses_mix(w) ? o.mixes : std::vector<Mix>{Mix{}};
      std::vector<std::uint64_t> keys =
          uses_keys(w) ? o.keys : std::vector<std::uint64_t>{kListKeys};
      for (const Mix& m : mixes) {
        if (!impl->provides(w, m)) {
          std::fprintf(stderr, "cmr_compare: skipping %.*s x %.*s x %s: %s\n",
                       static_cast<int>(impl->name.size()), impl->name.data(),
                       static_cast<int>(workload_name(w).size()), workload_name(w).data(),
                       mix_name(m).c_str(),
                       allows_scans(w) ? "no range scan safe under concurrent erase"
                                       : "scan mixes are for the skiplist workload only");
          continue;
        }
        for (std::uint64_t k : keys)
          for (int t : o.threads) {
            RunConfig c = base_config(o);
            c.impl = std::string(impl->name);
            c.workload = w;
            c.mix = m;
            c.keys = k;
            c.threads = t;
            configs.push_back(c);
          }
      }
    }
  }

  std::ofstream timeline;
  if (!o.timeline_path.empty()) {
    timeline.open(o.timeline_path);
    if (!timeline) {
      std::fprintf(stderr, "cmr_compare: cannot write %s\n", o.timeline_path.c_str());
      return 2;
    }
    timeline << "impl,workload,mix,keys,threads,stall,t_ms,rss_kib,unreclaimed\n";
  }
  if (o.header) {
    if (o.csv) {
      std::string h;
      for (auto name : kCsvColumns) {
        if (!h.empty()) h += ',';
        h += name;
      }
      std::printf("%s\n", h.c_str());
    } else {
      std::vector<std::string> names(std::begin(kCsvColumns), std::end(kCsvColumns));
      print_table_line(names);
    }
    std::fflush(stdout);
  }

  const double timeout = o.timeout_s > 0 ? o.timeout_s : 10 * o.seconds + 60;
  bool all_ok = true;
  for (std::size_t n = 0; n < configs.size(); ++n) {
    const RunConfig& c = configs[n];
    ChildOutcome out;
    if (o.in_process) {
      out.report = find_impl(impls, c.impl)->run(c);
    } else {
      out = run_in_child(c, timeout);
    }
    Columns& cols = out.report.columns;
    // The parent's view wins for the identifying columns (a crashed child reported none).
    cols.set("impl", c.impl);
    cols.set("workload", std::string(workload_name(c.workload)));
    cols.set("mix", uses_mix(c.workload) ? mix_name(c.mix) : "-");
    cols.set("keys", uses_mix(c.workload) ? std::to_string(effective_keys(c)) : "-");
    cols.set("threads", std::to_string(c.threads));
    cols.set("stall", c.stall ? "yes" : "no");
    if (!out.failure.empty()) {
      cols.set("ok", "no");
      cols.add_note("run failed: " + out.failure);
    }
    if (cols.get("ok") != "yes") all_ok = false;

    auto row = row_of(cols);
    if (o.csv) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (i != 0) line += ',';
        line += csv_field(row[i]);
      }
      std::printf("%s\n", line.c_str());
      std::fprintf(stderr, "[%zu/%zu] %s %s %s keys=%s threads=%d: %s Mops/s ok=%s\n", n + 1,
                   configs.size(), c.impl.c_str(), std::string(workload_name(c.workload)).c_str(),
                   cols.get("mix").c_str(), cols.get("keys").c_str(), c.threads,
                   cols.get("mops").c_str(), cols.get("ok").c_str());
    } else {
      print_table_line(row);
    }
    std::fflush(stdout);

    if (timeline.is_open()) {
      for (const auto& p : out.report.timeline) {
        timeline << c.impl << ',' << workload_name(c.workload) << ',' << cols.get("mix") << ','
                 << cols.get("keys") << ',' << c.threads << ',' << cols.get("stall") << ','
                 << p.t_ms << ',' << p.rss_kib << ','
                 << (p.unreclaimed ? std::to_string(*p.unreclaimed) : std::string()) << '\n';
      }
      timeline.flush();
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace cmr::bench

int main(int argc, char** argv) {
  using namespace cmr::bench;
  auto options = parse_options(argc, argv);
  if (!options) return 2;
  std::vector<ImplInfo> impls = all_impls();
  if (options->list) return list_impls(impls);
  if (options->child) return run_child(*options, impls);
  return run_sweep(*options, impls);
}
