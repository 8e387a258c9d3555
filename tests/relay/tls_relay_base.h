// What the TLS relay tests share: blocking TLS peers run by test threads,
// a counting backend, a real ClientHello, and TlsRelayBase (an engine with
// server and client contexts, and Converse(): one byte-exact exchange with
// half-close through a pair, TLS on either side as asked).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/test_certs.h"

namespace zrelay::testing {

// The test's own peers write with SSL_write (write(2), no MSG_NOSIGNAL) to
// sockets the relay may have closed; zrelay's workers block SIGPIPE, the
// test's threads do not. A peer must see EPIPE, not kill the test binary
// (it died silently, one run in several, in a truncation test).
inline const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

inline constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// What a peer read before its stream ended.
struct TlsReceived {
  uint64_t bytes = 0;
  bool intact = true;         // every byte matched the pattern
  bool close_notify = false;  // the stream ended with close_notify
};

// A blocking TLS peer run by a test thread, one operation at a time (an SSL
// object must not be read and written from two threads at once). Destroying
// it sends nothing: a peer that wants to end cleanly calls CloseNotify().
class TlsPeer {
 public:
  TlsPeer(SSL_CTX* ctx, int fd, bool server) : ssl_(SSL_new(ctx)) {
    SSL_set_fd(ssl_, fd);
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_tlsext_host_name(ssl_, "localhost");
      SSL_set_connect_state(ssl_);
    }
  }
  ~TlsPeer() { SSL_free(ssl_); }
  bool Handshake() {
    bool ok = SSL_do_handshake(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }
  bool Send(uint64_t seed, uint64_t size) {
    std::vector<char> buf(64 << 10);
    for (uint64_t sent = 0; sent < size;) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - sent));
      FillPattern(seed, sent, buf.data(), len);
      size_t written = 0;
      if (SSL_write_ex(ssl_, buf.data(), len, &written) != 1) {
        ERR_clear_error();
        return false;
      }
      sent += written;
    }
    return true;
  }
  // Sends close_notify; the peer can still send to us afterwards.
  void CloseNotify() {
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  // Reads until the stream ends (close_notify, EOF, alert or error) or
  // `limit` bytes came, checking pattern `seed`.
  TlsReceived ReceiveAll(uint64_t seed, uint64_t limit = kNoLimit) {
    std::vector<char> buf(64 << 10), want(64 << 10);
    TlsReceived r;
    while (r.bytes < limit) {
      size_t n = 0;
      size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - r.bytes));
      if (SSL_read_ex(ssl_, buf.data(), len, &n) != 1) {
        r.close_notify = SSL_get_error(ssl_, 0) == SSL_ERROR_ZERO_RETURN;
        ERR_clear_error();
        return r;
      }
      FillPattern(seed, r.bytes, want.data(), n);
      r.intact = r.intact && std::memcmp(buf.data(), want.data(), n) == 0;
      r.bytes += n;
    }
    return r;
  }
  // Reads until close_notify. Returns the bytes, or -1 on a mismatch or a
  // stream that ended any other way.
  int64_t Receive(uint64_t seed) {
    TlsReceived r = ReceiveAll(seed);
    return r.intact && r.close_notify ? static_cast<int64_t>(r.bytes) : -1;
  }

 private:
  SSL* ssl_;
};

// Reads exactly `n` bytes of pattern `seed` from a blocking plain socket.
// Returns how many arrived and matched before a mismatch, EOF or error.
inline uint64_t ReadExactly(int fd, uint64_t seed, uint64_t n) {
  std::vector<char> buf(64 << 10), want(64 << 10);
  uint64_t got = 0;
  while (got < n) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - got));
    ssize_t r = ::recv(fd, buf.data(), len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return got;
    FillPattern(seed, got, want.data(), static_cast<size_t>(r));
    if (std::memcmp(buf.data(), want.data(), static_cast<size_t>(r)) != 0) return got;
    got += static_cast<uint64_t>(r);
  }
  return got;
}

// A backend listener that counts the connections the relay makes to it. The
// accept queue holds them until the test takes one (Next) or counts them
// (Accepted); accepted sockets stay open until the backend is destroyed.
class CountingBackend {
 public:
  CountingBackend() {
    ListenSocketOptions options;
    options.reuse_port = false;
    auto fd = ListenOn(testing::Loopback(AF_INET), options);
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    fd_ = std::move(fd.value());
    address_ = LocalAddress(fd_.get()).value();
  }
  const Address& address() const { return address_; }

  // Accepts whatever is queued; returns how many connections came so far.
  size_t Accepted() {
    for (;;) {
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));  // blocking
      if (!c) return conns_.size();
      conns_.push_back(std::move(c));
    }
  }
  // The next connection not handed out yet (blocking), waiting up to
  // `deadline` for it; -1 when none came.
  int Next(Duration deadline = seconds(5)) {
    TimePoint end = Clock::now() + deadline;
    while (handed_out_ == Accepted()) {
      auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
      pollfd p{fd_.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) return -1;
    }
    return conns_[handed_out_++].get();
  }

 private:
  UniqueFd fd_;
  Address address_;
  std::vector<UniqueFd> conns_;
  size_t handed_out_ = 0;
};

// The ClientHello a real client sends first, made with memory BIOs.
inline std::string RealClientHello(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, BIO_new(BIO_s_mem()), out);
  SSL_set_tlsext_host_name(ssl, "localhost");
  (void)SSL_connect(ssl);  // wants to read the ServerHello; the hello is in `out`
  char* data = nullptr;
  long len = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<size_t>(std::max(len, 0L)));
  SSL_free(ssl);
  ERR_clear_error();
  return hello;
}

// Whether a TCP socket of this process's network namespace is in SYN_SENT
// towards 127.0.0.1:`port` (an unanswered connect).
inline bool ConnectPendingTo(int port) {
  std::ifstream table("/proc/net/tcp");
  char want[32];
  std::snprintf(want, sizeof want, "0100007F:%04X", port);
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (remote == want && state == "02") return true;
  }
  return false;
}

class TlsRelayBase : public testing::CertsTest {
 protected:
  void StartEngine(RelayMode mode, Duration handshake_timeout = milliseconds(500)) {
    EngineOptions options;
    options.workers = 2;
    options.mode = mode;
    options.handshake_timeout = handshake_timeout;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
    server_ctx_ = Server(certs_->server);
    TlsClientConfig client;
    client.ca_file = certs_->ca.cert;
    client_ctx_ = std::move(BuildClientContext(client).value());
  }

  static TlsContext Server(const testing::CertFiles& cert) {
    TlsServerConfig config;
    config.certs = {{cert.cert, cert.key}};
    auto ctx = BuildServerContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return std::move(ctx.value());
  }

  // One exchange between a client on `client_fd` and a backend whose socket
  // `backend_fd()` returns (called on the backend's thread; -1: none came):
  // the client sends `up` bytes (pattern 1) and finishes its side, the
  // backend reads them to the end, answers `down` bytes (pattern 2) and
  // finishes. `client_tls`: the client speaks TLS to zrelay (which
  // terminates it); `backend_tls`: the backend is a TLS server (zrelay
  // originates TLS to it).
  void Converse(int client_fd, bool client_tls, const std::function<int()>& backend_fd,
                bool backend_tls, uint64_t up, uint64_t down) {
    int64_t at_backend = -2, at_client = -2;
    std::thread backend([&] {
      int fd = backend_fd();
      if (fd < 0) return;
      if (backend_tls) {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        at_backend = peer.Receive(1);
        peer.Send(2, down);
        peer.CloseNotify();
      } else {
        testing::Received r = testing::ReceivePattern(fd, 1);
        at_backend = r.first_mismatch == -1 && r.error == 0 ? static_cast<int64_t>(r.bytes) : -1;
        testing::SendPattern(fd, 2, down);
      }
    });
    if (client_tls) {
      TlsPeer peer(client_ctx_.get(), client_fd, false);
      EXPECT_TRUE(peer.Handshake());
      EXPECT_TRUE(peer.Send(1, up));
      peer.CloseNotify();  // half-close: we still read the answer
      at_client = peer.Receive(2);
    } else {
      testing::SendPattern(client_fd, 1, up);
      testing::Received r = testing::ReceivePattern(client_fd, 2);
      at_client = r.first_mismatch == -1 ? static_cast<int64_t>(r.bytes) : -1;
    }
    backend.join();
    EXPECT_EQ(at_backend, static_cast<int64_t>(up));
    EXPECT_EQ(at_client, static_cast<int64_t>(down));
  }

  // Converse() through Pipe(), over two fresh loopback leg pairs.
  void Exchange(bool client_tls, bool backend_tls, uint64_t up, uint64_t down) {
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    ASSERT_TRUE(a.ok() && b.ok());
    Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
    if (client_tls) la.ssl = NewServerSsl(server_ctx_, la.fd.get());
    if (backend_tls) lb.ssl = NewClientSsl(client_ctx_, lb.fd.get(), "localhost");
    engine_->Pipe(std::move(la), std::move(lb), closes_.Callback());
    auto backend = [&] { return b->app.get(); };
    Converse(a->app.get(), client_tls, backend, backend_tls, up, down);
  }

  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
  TlsContext server_ctx_;
  TlsContext client_ctx_;
};

}  // namespace zrelay::testing
