// TLS legs through the relay: termination, origination and TLS<->TLS, with
// real OpenSSL peers on loopback and certificates minted at run time.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

#include "engine/socket.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::FillPattern;

// A blocking TLS peer run by a test thread, one operation at a time (an SSL
// object must not be read and written from two threads at once).
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
      if (SSL_write_ex(ssl_, buf.data(), len, &written) != 1) return false;
      sent += written;
    }
    return true;
  }
  // Sends close_notify; the peer can still send to us afterwards.
  void CloseNotify() { SSL_shutdown(ssl_); }
  // Reads until close_notify; checks the pattern. Returns bytes, or -1 on a
  // mismatch or a read that failed any other way.
  int64_t Receive(uint64_t seed) {
    std::vector<char> buf(64 << 10), want(64 << 10);
    uint64_t got = 0;
    for (;;) {
      size_t n = 0;
      if (SSL_read_ex(ssl_, buf.data(), buf.size(), &n) != 1) {
        int err = SSL_get_error(ssl_, 0);
        ERR_clear_error();
        return err == SSL_ERROR_ZERO_RETURN ? static_cast<int64_t>(got) : -1;
      }
      FillPattern(seed, got, want.data(), n);
      if (std::memcmp(buf.data(), want.data(), n) != 0) return -1;
      got += n;
    }
  }

 private:
  SSL* ssl_;
};

class TlsRelayTest : public testing::CertsTest {
 protected:

  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    options.mode = RelayMode::kSplice;  // TLS legs must still copy
    options.handshake_timeout = milliseconds(500);
    engine_ = std::move(Engine::Start(options).value());
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

  // Runs one exchange through Pipe(): the client sends `up` bytes and
  // finishes its side, the backend answers with `down` bytes and finishes.
  // `client_tls`: the client leg is TLS (zrelay terminates it);
  // `backend_tls`: the backend leg is TLS (zrelay originates it, verifying
  // the backend's certificate `backend_cert` against `origin_ctx`).
  void Exchange(bool client_tls, bool backend_tls, uint64_t up, uint64_t down) {
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    ASSERT_TRUE(a.ok() && b.ok());
    Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
    if (client_tls) la.ssl = NewServerSsl(server_ctx_, la.fd.get());
    if (backend_tls) lb.ssl = NewClientSsl(client_ctx_, lb.fd.get(), "localhost");
    engine_->Pipe(std::move(la), std::move(lb), closes_.Callback());

    int64_t at_backend = -2, at_client = -2;
    std::thread backend([&, fd = b->app.get()] {
      if (backend_tls) {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        at_backend = peer.Receive(1);
        peer.Send(2, down);
        peer.CloseNotify();
      } else {
        at_backend = testing::ReceivePattern(fd, 1).bytes;
        testing::SendPattern(fd, 2, down);
      }
    });
    if (client_tls) {
      TlsPeer peer(client_ctx_.get(), a->app.get(), false);
      ASSERT_TRUE(peer.Handshake());
      ASSERT_TRUE(peer.Send(1, up));
      peer.CloseNotify();  // half-close: we still read the answer
      at_client = peer.Receive(2);
    } else {
      testing::SendPattern(a->app.get(), 1, up);
      testing::Received r = testing::ReceivePattern(a->app.get(), 2);
      at_client = r.first_mismatch == -1 ? static_cast<int64_t>(r.bytes) : -1;
    }
    backend.join();
    EXPECT_EQ(at_backend, static_cast<int64_t>(up));
    EXPECT_EQ(at_client, static_cast<int64_t>(down));
  }

  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
  TlsContext server_ctx_;
  TlsContext client_ctx_;
};


TEST_F(TlsRelayTest, AllFourPairKindsAreByteExactWithHalfClose) {
  size_t n = 0;
  for (bool client_tls : {false, true}) {
    for (bool backend_tls : {false, true}) {
      for (uint64_t size : {uint64_t{1}, uint64_t{100000}, uint64_t{4} << 20}) {
        SCOPED_TRACE(::testing::Message() << "client_tls=" << client_tls
                                          << " backend_tls=" << backend_tls << " size=" << size);
        Exchange(client_tls, backend_tls, size, size / 2 + 1);
        auto closed = closes_.WaitFor(++n);
        ASSERT_EQ(closed.size(), n);
        EXPECT_EQ(closed.back().cause, CloseCause::kDone) << closed.back().detail;
        EXPECT_EQ(closed.back().a_to_b, size);
        EXPECT_EQ(closed.back().b_to_a, size / 2 + 1);
      }
    }
  }
  // TLS legs never splice, even in splice mode; the plain<->plain pairs did.
  EngineStats s = engine_->Stats();
  EXPECT_GT(s.total.bytes_copied, 3u * (4u << 20));
  EXPECT_GT(s.total.bytes_spliced, 0u);
}

// Origination checks the backend's certificate: each bad one fails the pair
// with a message saying why, and the client leg is closed.
TEST_F(TlsRelayTest, OriginationRejectsBadBackendCertificates) {
  struct Case {
    const testing::CertFiles* cert;
    const char* reason;
  };
  for (Case c : {Case{&certs_->untrusted, "unable to get local issuer certificate"},
                 Case{&certs_->wrong_name, "hostname mismatch"},
                 Case{&certs_->expired, "certificate has expired"}}) {
    SCOPED_TRACE(c.reason);
    TlsContext backend_ctx = Server(*c.cert);
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    Leg lb{std::move(b->leg)};
    lb.ssl = NewClientSsl(client_ctx_, lb.fd.get(), "localhost");
    size_t before = closes_.count();
    engine_->Pipe(Leg{std::move(a->leg)}, std::move(lb), closes_.Callback());
    std::thread backend([&, fd = b->app.get()] {
      TlsPeer peer(backend_ctx.get(), fd, true);
      EXPECT_FALSE(peer.Handshake());
    });
    testing::Received r = testing::ReceivePattern(a->app.get(), 0);
    backend.join();
    EXPECT_EQ(r.bytes, 0u);
    auto closed = closes_.WaitFor(before + 1);
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed.back().cause, CloseCause::kError);
    EXPECT_NE(closed.back().detail.find(c.reason), std::string::npos) << closed.back().detail;
    EXPECT_NE(closed.back().detail.find("leg B TLS handshake"), std::string::npos)
        << closed.back().detail;
  }
}

TEST_F(TlsRelayTest, InsecureOriginationAcceptsAnyCertificate) {
  TlsClientConfig insecure;
  insecure.verify = false;
  client_ctx_ = std::move(BuildClientContext(insecure).value());
  server_ctx_ = Server(certs_->untrusted);
  Exchange(false, true, 5000, 6000);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
}

// Hostile or broken clients on a terminating leg: each closes with a clear
// cause, and a good pair running alongside is untouched.
TEST_F(TlsRelayTest, BadClientsFailCleanlyWithoutHurtingOthers) {
  std::thread good([&] { Exchange(true, false, 2 << 20, 1 << 20); });
  struct Case {
    std::string bytes;  // sent by the client, then it waits
    bool close_after;   // then closes its socket
    CloseCause cause;
    const char* detail;
  };
  std::string hello_prefix("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  for (const Case& c : {Case{std::string(300, '\x7f'), false, CloseCause::kError, "TLS handshake"},
                        Case{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, CloseCause::kError,
                             "http request"},
                        Case{hello_prefix, true, CloseCause::kReset, "TLS handshake"},
                        Case{"", false, CloseCause::kTimeout, "TLS handshake not finished"}}) {
    SCOPED_TRACE(c.detail);
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    Leg la{std::move(a->leg)};
    la.ssl = NewServerSsl(server_ctx_, la.fd.get());
    CloseRecorder mine;
    engine_->Pipe(std::move(la), Leg{std::move(b->leg)}, mine.Callback());
    if (!c.bytes.empty()) {
      ASSERT_TRUE(testing::WriteAll(a->app.get(), c.bytes));
    }
    if (c.close_after) a->app.Reset();
    auto closed = mine.WaitFor(1, seconds(5));
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0].cause, c.cause) << closed[0].detail;
    EXPECT_NE(closed[0].detail.find(c.detail), std::string::npos) << closed[0].detail;
    // The backend never heard from this client.
    EXPECT_EQ(testing::ReceivePattern(b->app.get(), 0).bytes, 0u);
  }
  good.join();
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
}

TEST_F(TlsRelayTest, EofWithoutCloseNotifyIsReportedAsTruncated) {
  auto a = testing::MakeLegPair(AF_INET);
  auto b = testing::MakeLegPair(AF_INET);
  Leg la{std::move(a->leg)};
  la.ssl = NewServerSsl(server_ctx_, la.fd.get());
  engine_->Pipe(std::move(la), Leg{std::move(b->leg)}, closes_.Callback());
  {
    TlsPeer peer(client_ctx_.get(), a->app.get(), false);
    ASSERT_TRUE(peer.Handshake());
    ASSERT_TRUE(peer.Send(1, 1000));
  }
  ::shutdown(a->app.get(), SHUT_WR);  // FIN, no close_notify
  testing::Received r = testing::ReceivePattern(b->app.get(), 1);
  EXPECT_EQ(r.bytes, 1000u);
  EXPECT_EQ(r.first_mismatch, -1);
  b->app.Reset();
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_NE(closed[0].cause, CloseCause::kDone);
  EXPECT_NE(closed[0].detail.find("leg A"), std::string::npos) << closed[0].detail;
}

}  // namespace
}  // namespace zrelay
