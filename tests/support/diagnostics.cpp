// tests/support/diagnostics.cpp: the diagnostics sink of the tests (diagnostics.hpp).
#include "support/diagnostics.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <vector>

namespace cmr_test {
namespace {

std::mutex g_mutex;
std::vector<std::string> g_messages;

}  // namespace

void record_diagnostic(const char* message) noexcept {
  {
    std::lock_guard lock(g_mutex);
    g_messages.emplace_back(message);
  }
  // The pid tells a helper process's messages from the test's.
  std::fprintf(stderr, "cmr [%d]: %s\n", static_cast<int>(getpid()), message);
}

void clear_diagnostics() {
  std::lock_guard lock(g_mutex);
  g_messages.clear();
}

bool diagnosed(const std::string& needle) {
  std::lock_guard lock(g_mutex);
  return std::any_of(g_messages.begin(), g_messages.end(),
                     [&](const std::string& m) { return m.find(needle) != std::string::npos; });
}

std::string all_diagnostics() {
  std::lock_guard lock(g_mutex);
  std::string s;
  for (const auto& m : g_messages) s += "[" + m + "] ";
  return s.empty() ? "(none)" : s;
}

}  // namespace cmr_test
