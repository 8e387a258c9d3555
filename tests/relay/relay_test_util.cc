#include "tests/relay/relay_test_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "tests/support/loop_test_util.h"

namespace zrelay::testing {
namespace {

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  return static_cast<uint8_t>(SplitMix(seed * 0x100000001b3ULL ^ (offset / 8)) >> (8 * (offset % 8)));
}

void FillPattern(uint64_t seed, uint64_t offset, char* buf, size_t len) {
  size_t i = 0;
  while (i < len && (offset + i) % 8 != 0) {
    buf[i] = static_cast<char>(PatternByte(seed, offset + i));
    ++i;
  }
  for (; i + 8 <= len; i += 8) {
    uint64_t word = SplitMix(seed * 0x100000001b3ULL ^ ((offset + i) / 8));
    std::memcpy(buf + i, &word, 8);  // little-endian: byte k is word >> 8k
  }
  for (; i < len; ++i) buf[i] = static_cast<char>(PatternByte(seed, offset + i));
}

uint64_t SendPattern(int fd, uint64_t seed, uint64_t size, size_t chunk, bool shut_write) {
  std::vector<char> buf(chunk);
  uint64_t sent = 0;
  while (sent < size) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(chunk, size - sent));
    FillPattern(seed, sent, buf.data(), len);
    size_t off = 0;
    while (off < len) {
      ssize_t n = ::send(fd, buf.data() + off, len - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return sent + off;
      off += static_cast<size_t>(n);
    }
    sent += len;
  }
  if (shut_write) ::shutdown(fd, SHUT_WR);
  return sent;
}

Received ReceivePattern(int fd, uint64_t seed, size_t chunk) {
  std::vector<char> buf(chunk);
  std::vector<char> want(chunk);
  Received r;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = errno;
      return r;
    }
    if (n == 0) return r;
    if (r.first_mismatch < 0) {
      FillPattern(seed, r.bytes, want.data(), static_cast<size_t>(n));
      if (std::memcmp(buf.data(), want.data(), static_cast<size_t>(n)) != 0) {
        for (ssize_t i = 0; i < n; ++i) {
          if (buf[i] != want[i]) {
            r.first_mismatch = static_cast<int64_t>(r.bytes) + i;
            break;
          }
        }
      }
    }
    r.bytes += static_cast<uint64_t>(n);
  }
}

void SetBlocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

Result<LegPair> MakeLegPair(int family) {
  Result<SocketPair> p = family == AF_UNIX ? UnixPair() : TcpPair(family);
  if (!p.ok()) return p.error();
  LegPair out{std::move(p->client), std::move(p->server)};
  SetBlocking(out.app.get(), true);
  return out;
}

size_t RaiseFdLimit() {
  struct rlimit rl {};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

size_t RssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

IoBackend TestIo() {
  const char* value = std::getenv("ZRELAY_TEST_IO");
  IoBackend io = IoBackend::kEpoll;
  if (value != nullptr && !ParseIoBackend(value, &io)) {
    ADD_FAILURE() << "ZRELAY_TEST_IO='" << value << "': not epoll, uring or auto";
  }
  return io;
}

Result<std::unique_ptr<Engine>> StartEngine(EngineOptions options) {
  options.io = TestIo();
  return Engine::Start(options);
}

}  // namespace zrelay::testing
