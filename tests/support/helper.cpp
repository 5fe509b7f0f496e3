// tests/support/helper.cpp: the helper-process harness (helper.hpp).
#include "support/helper.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>

#include <cmr/detail/hooks.hpp>

namespace cmr_test {

std::atomic<int> g_failures{0};

namespace {

int g_socket = -1;  // the helper's end
std::atomic<bool> g_skipped{false};

// In the helper: gtest's assertion results, sent to the test as reports. The helper's copy
// of gtest records them too, but that copy ends with the helper.
class ForwardResults : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.skipped()) {
      g_skipped = true;
      say("SKIP %s", r.message());
    } else if (r.failed()) {
      g_failures.fetch_add(1);
      say("FAIL %s:%d: %s", r.file_name() != nullptr ? r.file_name() : "?", r.line_number(),
          r.message());
    }
  }
};

}  // namespace

void say(const char* fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!send(g_socket, buf, std::min<std::size_t>(n, sizeof buf - 1), MSG_NOSIGNAL);
}

void fail_at(int line, const char* condition, const std::string& message) {
  g_failures.fetch_add(1);
  say("FAIL line %d: %s: %s", line, condition, message.c_str());
}

void skip(const std::string& reason) {
  say("SKIP %s", reason.c_str());
  _exit(kSkipCode);
}

char await_command() {
  char c = 0;
  for (;;) {
    const ssize_t n = recv(g_socket, &c, 1, 0);
    if (n == 1) return c;
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

Helper::Helper(std::function<void()> body) {
  // A fork of a multi-threaded process could inherit a lock some other thread held.
  EXPECT_EQ(threads_in_this_process(), 1u) << "the test process must stay single-threaded";
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    ADD_FAILURE() << "socketpair: " << std::strerror(errno);
    return;
  }
  std::fflush(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    close(sv[0]);
    g_socket = sv[1];
    alarm(kHelperAlarmSeconds);
    ::testing::UnitTest::GetInstance()->listeners().Append(new ForwardResults);
    cmr::detail::g_test_faults.use_child = true;
    try {
      body();
    } catch (const std::exception& e) {
      say("FAIL uncaught exception: %s", e.what());
      _exit(3);
    }
    _exit(g_failures.load() != 0 ? 1 : g_skipped.load() ? kSkipCode : 0);
  }
  close(sv[1]);
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    close(sv[0]);
    return;
  }
  socket_ = sv[0];
  name_ = pid_;
}

Helper::~Helper() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, __WALL);
  }
  if (socket_ >= 0) close(socket_);
}

void Helper::send_command(char c) {
  if (socket_ >= 0 && ::send(socket_, &c, 1, MSG_NOSIGNAL) != 1)
    ADD_FAILURE() << "cannot send '" << c << "' to the helper: " << std::strerror(errno);
}

std::optional<std::string> Helper::await(const std::string& key, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (auto it = messages_.begin(); it != messages_.end(); ++it) {
      if (it->compare(0, key.size(), key) == 0 &&
          (it->size() == key.size() || (*it)[key.size()] == ' ')) {
        std::string rest = it->size() > key.size() ? it->substr(key.size() + 1) : "";
        messages_.erase(it);
        return rest;
      }
    }
    if (!receive(deadline)) {
      ADD_FAILURE() << "the helper did not report \"" << key << "\" within " << ms(timeout)
                    << " ms; its threads:" << describe_threads(pid_);
      return std::nullopt;
    }
  }
}

void Helper::kill_now() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, __WALL);
  pid_ = -1;
}

int Helper::finish(Clock::duration timeout) {
  if (socket_ >= 0) shutdown(socket_, SHUT_WR);  // its await_command() returns 0
  const auto deadline = Clock::now() + timeout;
  int status = -1;
  while (pid_ > 0) {
    const pid_t r = waitpid(pid_, &status, WNOHANG | __WALL);
    if (r == pid_) break;
    if (Clock::now() >= deadline) {
      ADD_FAILURE() << "the helper did not end within " << ms(timeout)
                    << " ms; its threads:" << describe_threads(pid_);
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, __WALL);
      break;
    }
    receive(Clock::now() + std::chrono::milliseconds(10));
  }
  pid_ = -1;
  // What it sent before it ended is still queued (a scanner it left may hold the socket
  // open, so do not wait for end-of-file).
  while (receive(Clock::now())) {
  }
  return status;
}

bool Helper::receive(Clock::time_point deadline) {
  if (socket_ < 0 || eof_) return false;
  pollfd p{socket_, POLLIN, 0};
  const auto left = std::max<long long>(0, ms(deadline - Clock::now()));
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char buf[4096];
  const ssize_t n = recv(socket_, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0) eof_ = true;
  if (n <= 0) return false;
  std::string m(buf, static_cast<std::size_t>(n));
  if (m.compare(0, 4, "FAIL") == 0)
    ADD_FAILURE() << "[helper " << name_ << "] " << m;
  else if (m.compare(0, 5, "SKIP ") == 0)
    skip_reason_ = m.substr(5);
  else
    messages_.push_back(std::move(m));
  return true;
}

void expect_passed(int status) {
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the helper " << describe_status(status);
}

void expect_helper_passed(Helper& h, Clock::duration timeout) {
  const int status = h.finish(timeout);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kSkipCode) GTEST_SKIP() << h.skip_reason();
  expect_passed(status);
}

void run_in_helper(std::function<void()> body, Clock::duration timeout) {
  Helper h(std::move(body));
  expect_helper_passed(h, timeout);
}

}  // namespace cmr_test
