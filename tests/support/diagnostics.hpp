// tests/support/diagnostics.hpp: a cmr::Options::diagnostics sink that keeps what cmr said.
//
// Tests of failures check that the failure was reported, and in words that name its cause
// ("did not answer", "tid 1234", "scan_timeout"): a message that sends the user looking for
// the wrong cause is a bug. Every message is printed to stderr too.
#pragma once

#include <string>

namespace cmr_test {

// For Options::diagnostics.
void record_diagnostic(const char* message) noexcept;
void clear_diagnostics();
// True if a message since the last clear contains `needle`.
bool diagnosed(const std::string& needle);
// Every message since the last clear, for a failure message.
std::string all_diagnostics();

}  // namespace cmr_test
