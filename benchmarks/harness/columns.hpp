// harness/columns.hpp: the result of one run as named columns, and the CSV layout.
//
// A run (in its own process) reports `name=value` lines; the driver lays them out in the
// fixed column order below, so every row of a CSV has the same columns whatever the
// implementation. Implementations add their own measurements through extra_columns(): a
// name listed in kCsvColumns lands in its column, any other name is appended to `note`.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cmr::bench {

// The first six are the fixed contract of issue 7; the rest are extra columns, empty where
// an implementation cannot tell.
inline constexpr std::string_view kCsvColumns[] = {
    "impl",            "workload",   "mix",
    "threads",         "mops",       "peak_rss_kib",
    "peak_unreclaimed", "ok",        "end_unreclaimed",
    "keys",            "seconds",    "stall",
    "ops",             "children_peak_rss_kib",
    "cycles",          "pause_p50_us", "pause_p99_us", "pause_max_us",
    "note"};

class Columns {
 public:
  void set(std::string_view name, std::string value) {
    for (auto& [k, v] : entries_)
      if (k == name) {
        v = std::move(value);
        return;
      }
    entries_.emplace_back(std::string(name), std::move(value));
  }
  template <class Number>
  void set_number(std::string_view name, Number value) {
    set(name, std::to_string(value));
  }
  void set_fixed(std::string_view name, double value, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    set(name, buf);
  }
  // Appends "text" to the note column, ';'-separated.
  void add_note(std::string_view text) {
    std::string note = get("note");
    if (!note.empty()) note += ';';
    note += text;
    set("note", std::move(note));
  }
  std::string get(std::string_view name) const {
    for (const auto& [k, v] : entries_)
      if (k == name) return v;
    return {};
  }
  bool has(std::string_view name) const {
    for (const auto& [k, v] : entries_)
      if (k == name) return true;
    return false;
  }
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

}  // namespace cmr::bench
