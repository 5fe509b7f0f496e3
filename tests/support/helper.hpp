// tests/support/helper.hpp: run a test's body in a helper process forked for it.
//
// Hostile tests need runtime options of their own, and some stop, trace or kill the process
// that uses cmr, so each body runs in a helper process forked from the test process. The
// test process never uses cmr itself: it stays single-threaded, so a fork gives the helper
// a fresh, uninitialised runtime and no lock another thread held. The test drives the
// helper through a socket (one-byte commands), plays the hostile party (ptrace, SIGSTOP,
// SIGKILL), and turns the helper's reports into test results.
//
// Protocol (SOCK_SEQPACKET, one message per report): "FAIL ..." fails the test, "SKIP
// reason" skips it, anything else is a report the test waits for with Helper::await(key).
// In the helper, HCHECK reports a failed check, and gtest's own EXPECT_ and ASSERT_ macros
// and GTEST_SKIP work too: their results are forwarded the same way. The helper's exit
// status is 0 if nothing failed, 1 if something did, kSkipCode if it skipped.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include "support/proc.hpp"

namespace cmr_test {

using Clock = std::chrono::steady_clock;

inline long long ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// ---- Helper side: runs in the forked helper process -----------------------------------

constexpr int kSkipCode = 77;
constexpr unsigned kHelperAlarmSeconds = 40;  // a hung helper dies of SIGALRM

// Failed checks so far in this helper (a process forked from a helper may reset it and
// report its own).
extern std::atomic<int> g_failures;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void fail_at(int line, const char* condition, const std::string& message);
[[noreturn]] void skip(const std::string& reason);
// The next command from the test; 0 if the test went away.
char await_command();

// The helper's EXPECT: a failed check is reported to the test and fails the helper's exit.
#define HCHECK(cond, ...)                                                                 \
  do {                                                                                    \
    if (!(cond)) ::cmr_test::fail_at(__LINE__, #cond, ::cmr_test::format(__VA_ARGS__)); \
  } while (0)

// ---- Test side ----------------------------------------------------------------------

class Helper {
 public:
  // Forks the helper, which runs `body` and exits. Every cycle in the helper uses a
  // scanner child (the conditions tested concern its creation, exit and reaping, or the
  // handshake, which both kinds of cycle share).
  explicit Helper(std::function<void()> body);
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;
  ~Helper();  // kills and reaps the helper if it still runs

  pid_t pid() const { return pid_; }
  const std::string& skip_reason() const { return skip_reason_; }

  void send_command(char c);

  // The rest of the next report message that starts with `key`; nullopt (and a test
  // failure) if none came within `timeout`.
  std::optional<std::string> await(const std::string& key, Clock::duration timeout);

  // Kills the helper now and reaps it.
  void kill_now();

  // Waits for the helper to end (killing it at the deadline, which fails the test) and
  // reports every message it sent; returns its wait status.
  int finish(Clock::duration timeout);

 private:
  bool receive(Clock::time_point deadline);

  pid_t pid_ = -1;   // -1 once reaped
  pid_t name_ = -1;  // the pid, for messages after that
  int socket_ = -1;
  bool eof_ = false;
  std::deque<std::string> messages_;
  std::string skip_reason_;
};

// The helper's wait status must say it passed.
void expect_passed(int status);

// Waits for the helper to end and makes its exit the test's result: passed, failed (its
// failures were reported as they came), or skipped with its reason.
void expect_helper_passed(Helper& h, Clock::duration timeout);

// Runs `body` in a helper and waits up to `timeout` for its result.
void run_in_helper(std::function<void()> body, Clock::duration timeout = std::chrono::seconds(30));

}  // namespace cmr_test
