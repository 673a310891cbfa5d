// Forked children for tests: reaped with a deadline, so that a child that hangs fails
// its test instead of hanging the suite.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

namespace riffledb::testing {

/// What ReapWithDeadline returns for a child it had to kill.
inline constexpr int kChildTimedOut = 200;

/// Waits for `pid` at most `timeout`, then kills it. Its exit code; 128 + the signal if
/// a signal killed it; kChildTimedOut if it had to be killed.
inline int ReapWithDeadline(pid_t pid,
                            std::chrono::seconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    if (r < 0 && errno != EINTR) return 255;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return kChildTimedOut;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

/// Runs body() in a forked child, which _exit()s with its result (0: passed; an alarm
/// kills it after 30 s), and returns what ReapWithDeadline says; 254 if fork() failed.
inline int RunInForkedChild(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return 254;
  if (pid == 0) {
    alarm(30);
    _exit(body());
  }
  return ReapWithDeadline(pid);
}

}  // namespace riffledb::testing
