#include "tests/ssl/tls_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zrelay::testing {
namespace {

using Clock = std::chrono::steady_clock;

void SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  ASSERT_GE(flags, 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

void SetNoDelay(int fd) {
  const int one = 1;
  ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
}

short EventsFor(const TlsResult& r) {
  if (r.status == TlsIo::kWantWrite) return POLLOUT;
  return POLLIN;
}

int MsLeft(Clock::time_point end) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
  return static_cast<int>(std::clamp<long>(left.count(), 0, 100));
}

}  // namespace

TcpPair MakeTcpPair() {
  TcpPair pair;
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(listener.valid()) << std::strerror(errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "loopback listener: " << std::strerror(errno);
    return pair;
  }
  pair.client.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    return pair;
  }
  pair.server.Reset(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(pair.server.valid()) << std::strerror(errno);
  for (int fd : {pair.client.get(), pair.server.get()}) {
    SetNonBlocking(fd);
    SetNoDelay(fd);
  }
  return pair;
}

bool WaitFor(int fd, const TlsResult& r, int timeout_ms) {
  pollfd p{fd, EventsFor(r), 0};
  return poll(&p, 1, timeout_ms) > 0;
}

HandshakeResults Handshake(TlsStream& client, int client_fd, TlsStream& server, int server_fd,
                           std::chrono::milliseconds deadline) {
  HandshakeResults out;
  out.client.status = TlsIo::kWantRead;
  out.server.status = TlsIo::kWantRead;
  bool client_started = false;
  bool server_started = false;
  const auto end = Clock::now() + deadline;
  while (true) {
    // Call each side that has not finished; a side is finished once it
    // returned anything but kWantRead / kWantWrite.
    if (!client_started || out.client.would_block()) out.client = client.Handshake();
    if (!server_started || out.server.would_block()) out.server = server.Handshake();
    client_started = server_started = true;
    if (!out.client.would_block() && !out.server.would_block()) return out;
    if (Clock::now() >= end) return out;
    pollfd fds[2];
    int n = 0;
    if (out.client.would_block()) fds[n++] = {client_fd, EventsFor(out.client), 0};
    if (out.server.would_block()) fds[n++] = {server_fd, EventsFor(out.server), 0};
    poll(fds, n, MsLeft(end));
  }
}

namespace {

struct Side {
  TlsStream* tls;
  int fd;
  const std::string* out;
  std::string in;
  size_t sent = 0;
  size_t retry_len = 0;  // a blocked Write's length, repeated on retry
  bool shut = false;     // our close_notify sent
  bool eof = false;      // the peer's close_notify received
  bool want_write = false;
};

// Moves as much as possible without blocking; returns an error text or "".
std::string Step(Side& s, size_t chunk) {
  s.want_write = false;
  while (s.sent < s.out->size()) {
    const size_t len = s.retry_len ? s.retry_len : std::min(chunk, s.out->size() - s.sent);
    TlsResult r = s.tls->Write(s.out->data() + s.sent, len);
    if (r.ok()) {
      s.sent += r.bytes;
      s.retry_len = 0;
      continue;
    }
    if (r.would_block()) {
      s.retry_len = len;
      s.want_write = r.status == TlsIo::kWantWrite;
      break;
    }
    return "Write: " + Describe(r);
  }
  if (s.sent == s.out->size() && !s.shut) {
    TlsResult r = s.tls->Shutdown();
    if (r.ok()) {
      s.shut = true;
    } else if (r.would_block()) {
      s.want_write = s.want_write || r.status == TlsIo::kWantWrite;
    } else {
      return "Shutdown: " + Describe(r);
    }
  }
  char buf[16384];
  while (!s.eof) {
    TlsResult r = s.tls->Read(buf, sizeof buf);
    if (r.ok()) {
      s.in.append(buf, r.bytes);
    } else if (r.status == TlsIo::kEof) {
      s.eof = true;
    } else if (r.would_block()) {
      s.want_write = s.want_write || r.status == TlsIo::kWantWrite;
      break;
    } else {
      return "Read: " + Describe(r);
    }
  }
  return "";
}

}  // namespace

TransferResult Transfer(TlsStream& a, int a_fd, TlsStream& b, int b_fd, const std::string& a_to_b,
                        const std::string& b_to_a, size_t write_chunk,
                        std::chrono::milliseconds deadline) {
  TransferResult result;
  Side sides[2] = {{&a, a_fd, &a_to_b, {}}, {&b, b_fd, &b_to_a, {}}};
  const auto end = Clock::now() + deadline;
  while (true) {
    for (Side& s : sides) {
      std::string err = Step(s, write_chunk);
      if (!err.empty()) {
        result.error = std::string(&s == &sides[0] ? "a: " : "b: ") + err;
        break;
      }
    }
    const bool done = sides[0].shut && sides[0].eof && sides[1].shut && sides[1].eof;
    if (done || !result.error.empty()) break;
    if (Clock::now() >= end) {
      result.error = "deadline: a sent " + std::to_string(sides[0].sent) + " got " +
                     std::to_string(sides[0].in.size()) + ", b sent " +
                     std::to_string(sides[1].sent) + " got " + std::to_string(sides[1].in.size());
      break;
    }
    pollfd fds[2];
    for (int i = 0; i < 2; ++i) {
      fds[i] = {sides[i].fd,
                static_cast<short>((sides[i].eof ? 0 : POLLIN) | (sides[i].want_write ? POLLOUT : 0)),
                0};
    }
    poll(fds, 2, MsLeft(end));
  }
  result.received_by_a = std::move(sides[0].in);
  result.received_by_b = std::move(sides[1].in);
  return result;
}

std::string PeerCommonName(const TlsStream& stream) {
  X509* peer = SSL_get0_peer_certificate(stream.ssl());
  if (peer == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
  return cn;
}

std::string Describe(const TlsResult& r) {
  std::string out = TlsIoName(r.status);
  if (r.status == TlsIo::kOk) out += " bytes=" + std::to_string(r.bytes);
  if (r.sys_errno != 0) out += " errno=" + std::to_string(r.sys_errno);
  if (!r.detail.empty()) out += " detail=" + r.detail;
  return out;
}

int FreeTcpPort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "FreeTcpPort: " << std::strerror(errno);
    return -1;
  }
  return ntohs(addr.sin_port);
}

}  // namespace zrelay::testing
