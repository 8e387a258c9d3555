// Helpers for Connection tests: a thread-safe log of what handlers saw (they
// run on engine workers, the test waits on its own thread), and blocking
// reads with a deadline for the test's end of a socket.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"
#include "relay/connection.h"

namespace zrelay::testing {

class EventLog {
 public:
  void Add(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  // Waits until `n` events were logged or `deadline` passed; returns them.
  std::vector<std::string> WaitFor(size_t n, Duration deadline = seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, deadline, [&] { return events_.size() >= n; });
    return events_;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
};

// "data:<bytes>" or "error <errno>: <message>".
inline std::string Describe(const Result<std::string>& r) {
  if (r.ok()) return "data:" + r.value();
  return "error " + std::to_string(r.error().code().value()) + ": " + r.error().message();
}
inline std::string Describe(const Status& s) {
  if (s.ok()) return "ok";
  return "error " + std::to_string(s.error().code().value()) + ": " + s.error().message();
}
// The errno of a logged "error <errno>: ..." event; 0 for anything else.
inline int LoggedErrno(const std::string& event) {
  if (event.rfind("error ", 0) != 0) return 0;
  return std::stoi(event.substr(6));
}

// Gives reads on a blocking fd a deadline (SO_RCVTIMEO).
inline void SetReadDeadline(int fd, Duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  struct timeval tv {};
  tv.tv_sec = us / 1000000;
  tv.tv_usec = us % 1000000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// Reads exactly `n` bytes from a blocking fd (shorter at EOF, error or the
// read deadline).
inline std::string RecvExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Reads until EOF (or error / deadline); at most `limit` bytes.
inline std::string RecvToEof(int fd, size_t limit = 1 << 20) {
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

}  // namespace zrelay::testing
