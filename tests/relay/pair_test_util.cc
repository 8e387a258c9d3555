#include "tests/relay/pair_test_util.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>

#include "tests/relay/relay_test_util.h"

namespace zrelay::testing {

std::string Pattern(uint64_t seed, uint64_t offset, size_t len) {
  std::string out(len, '\0');
  FillPattern(seed, offset, out.data(), len);
  return out;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool SendPatternFrom(int fd, uint64_t seed, uint64_t offset, uint64_t size) {
  constexpr uint64_t kChunk = 64 << 10;
  for (uint64_t sent = 0; sent < size;) {
    const size_t len = static_cast<size_t>(std::min(kChunk, size - sent));
    if (!SendAll(fd, Pattern(seed, offset + sent, len))) return false;
    sent += len;
  }
  return true;
}

Stream ReadToEof(int fd, size_t limit) {
  Stream s;
  char buf[64 << 10];
  while (s.data.size() <= limit) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s.error = errno;
      break;
    }
    if (n == 0) break;
    s.data.append(buf, static_cast<size_t>(n));
  }
  return s;
}

void SetIoTimeout(int fd, Duration timeout) {
  const auto us = std::chrono::duration_cast<microseconds>(timeout).count();
  struct timeval tv {};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace zrelay::testing
