// src/threads/exec_guard.cpp: exec from a registered thread.
//
// execve() keeps the signals pending on the calling thread and resets cmr's handler to the
// default action, which for SIGUSR1 ends the new program: a handshake signal that reached
// the thread just before its exec would kill what it executes. So the exec family is
// wrapped (these definitions take precedence over the C library's for the whole program):
// before the real call, the thread leaves the handshake under the registry lock (no cycle
// holds the lock then, and none will signal it afterwards), and a raw system call lets any
// signal already sent be delivered to cmr's handler, which returns at once since its cycle
// is over. If the exec fails, the thread rejoins.
//
// The wrappers find the C library's functions with dlsym(RTLD_NEXT); posix_spawn and
// system() need nothing (their children start with no pending signals).
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <mutex>

#include "runtime/runtime.hpp"
#include "threads/registry.hpp"

namespace cmr::detail {
namespace {

// Leaves the handshake for the lifetime of the scope (the exec call).
class ExecScope {
 public:
  ExecScope() noexcept : record_(tls_record) {
    if (record_ == nullptr) return;
    {
      std::lock_guard lock(registry().mutex);
      record_->presence = ThreadRecord::Presence::kInExec;
    }
    ::syscall(SYS_getpid);  // a kernel round trip: a pending handshake signal is delivered now
  }
  ~ExecScope() {  // only reached when the exec failed
    if (record_ == nullptr) return;
    const int saved = errno;
    {
      std::lock_guard lock(registry().mutex);
      record_->presence = ThreadRecord::Presence::kRegistered;
    }
    errno = saved;
  }
  ExecScope(const ExecScope&) = delete;
  ExecScope& operator=(const ExecScope&) = delete;

 private:
  ThreadRecord* record_;
};

template <class F>
F next(const char* name) noexcept {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

using ExecveFn = int (*)(const char*, char* const[], char* const[]);
using ExecvFn = int (*)(const char*, char* const[]);
using FexecveFn = int (*)(int, char* const[], char* const[]);
using ExecveatFn = int (*)(int, const char*, char* const[], char* const[], int);

int real_execve(const char* path, char* const argv[], char* const envp[]) {
  static const auto fn = next<ExecveFn>("execve");
  if (fn != nullptr) return fn(path, argv, envp);
  return static_cast<int>(::syscall(SYS_execve, path, argv, envp));
}

// Collects the variadic arguments of execl/execlp/execle into an array on the stack.
constexpr int kMaxArgs = 4096;

}  // namespace
}  // namespace cmr::detail

using cmr::detail::ExecScope;

extern "C" {

int execve(const char* path, char* const argv[], char* const envp[]) {
  ExecScope scope;
  return cmr::detail::real_execve(path, argv, envp);
}

int execv(const char* path, char* const argv[]) {
  ExecScope scope;
  static const auto fn = cmr::detail::next<cmr::detail::ExecvFn>("execv");
  return fn != nullptr ? fn(path, argv) : cmr::detail::real_execve(path, argv, environ);
}

int execvp(const char* file, char* const argv[]) {
  ExecScope scope;
  static const auto fn = cmr::detail::next<cmr::detail::ExecvFn>("execvp");
  if (fn == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return fn(file, argv);
}

int execvpe(const char* file, char* const argv[], char* const envp[]) {
  ExecScope scope;
  static const auto fn = cmr::detail::next<cmr::detail::ExecveFn>("execvpe");
  if (fn == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return fn(file, argv, envp);
}

int fexecve(int fd, char* const argv[], char* const envp[]) {
  ExecScope scope;
  static const auto fn = cmr::detail::next<cmr::detail::FexecveFn>("fexecve");
  if (fn == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return fn(fd, argv, envp);
}

int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags) {
  ExecScope scope;
  static const auto fn = cmr::detail::next<cmr::detail::ExecveatFn>("execveat");
  if (fn == nullptr) return static_cast<int>(::syscall(SYS_execveat, dirfd, path, argv, envp, flags));
  return fn(dirfd, path, argv, envp, flags);
}

// The execl family: the arguments up to the terminating null (and, for execle, the
// environment after it), then the vector form above.
#define CMR_COLLECT_ARGS(first, ap, argv, count)                                  \
  char* argv[cmr::detail::kMaxArgs];                                              \
  int count = 0;                                                                  \
  argv[count++] = const_cast<char*>(first);                                       \
  while (count < cmr::detail::kMaxArgs && (argv[count] = va_arg(ap, char*)) != nullptr) \
    ++count;                                                                      \
  if (count == cmr::detail::kMaxArgs) {                                           \
    va_end(ap);                                                                   \
    errno = E2BIG;                                                                \
    return -1;                                                                    \
  }

int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  CMR_COLLECT_ARGS(arg, ap, argv, count)
  va_end(ap);
  return execv(path, argv);
}

int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  CMR_COLLECT_ARGS(arg, ap, argv, count)
  va_end(ap);
  return execvp(file, argv);
}

int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  CMR_COLLECT_ARGS(arg, ap, argv, count)
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return execve(path, argv, envp);
}

}  // extern "C"
