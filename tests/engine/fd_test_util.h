// File descriptor accounting for tests that run a process out of fds (in a
// forked child, so the limit cannot hurt the test runner). Neither helper
// opens an fd, so both work when none is left.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>

namespace zrelay::testing {

// The RLIMIT_NOFILE that leaves exactly `free` fd numbers unused (new fds
// take the lowest free number below the limit).
inline rlim_t LimitLeavingFreeFds(int free) {
  int fd = 0;
  for (int seen = 0;; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && ++seen == free) break;
  }
  return static_cast<rlim_t>(fd + 1);
}

// Descriptors open among the numbers below `below`.
inline int OpenFdsBelow(int below) {
  int open = 0;
  for (int fd = 0; fd < below; ++fd) open += ::fcntl(fd, F_GETFD) >= 0;
  return open;
}

}  // namespace zrelay::testing
