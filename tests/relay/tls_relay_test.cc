// TLS legs through the relay: termination, origination and TLS<->TLS, with
// real OpenSSL peers on loopback and certificates minted at run time: the
// four pair kinds, PROXY headers around handshakes, bad certificates and
// hostile clients.
#include "tests/relay/tls_relay_base.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::CountingBackend;
using testing::TlsPeer;
using testing::TlsRelayBase;

class TlsRelayTest : public TlsRelayBase {
 protected:
  void SetUp() override { StartEngine(RelayMode::kSplice); }  // TLS legs must still copy
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

// send_proxy to a TLS backend: the PROXY header is the first bytes on the
// wire, in the clear, and the TLS handshake only follows it.
TEST_F(TlsRelayTest, SendProxyPrecedesTheBackendHandshake) {
  CountingBackend backend;
  ListenOptions options;
  options.address = testing::Loopback(AF_INET);
  BackendOptions tls_backend{backend.address(), client_ctx_.get(), "localhost"};
  tls_backend.send_proxy = BackendOptions::SendProxy::kV1;
  options.backends.push_back(tls_backend);
  options.on_close = closes_.Callback();
  auto id = engine_->Listen(options);
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address listener = engine_->ListenAddress(*id).value();
  auto client = testing::BlockingConnect(listener);
  ASSERT_TRUE(client.ok());
  testing::SetBlocking(client->get(), true);
  const std::string header = "PROXY TCP4 127.0.0.1 127.0.0.1 " +
                             std::to_string(LocalAddress(client->get())->port()) + " " +
                             std::to_string(listener.port()) + "\r\n";
  auto backend_after_header = [&] {
    const int fd = backend.Next();
    if (fd < 0) return -1;
    std::string got(header.size(), '\0');
    EXPECT_EQ(::recv(fd, got.data(), got.size(), MSG_WAITALL),
              static_cast<ssize_t>(header.size()));
    EXPECT_EQ(got, header);
    return got == header ? fd : -1;
  };
  Converse(client->get(), /*client_tls=*/false, backend_after_header, /*backend_tls=*/true, 100000,
           5000);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
}

// A TLS-terminating listener with proxy_protocol: the PROXY header comes in
// the clear before the client's TLS handshake, and is not part of the stream.
TEST_F(TlsRelayTest, ProxyHeaderBeforeTheClientsHandshake) {
  CountingBackend backend;
  ListenOptions options;
  options.address = testing::Loopback(AF_INET);
  options.backends.push_back(BackendOptions{backend.address(), nullptr, {}});
  options.tls = server_ctx_.get();
  options.proxy_protocol = true;
  options.on_close = closes_.Callback();
  auto id = engine_->Listen(options);
  ASSERT_TRUE(id.ok()) << id.error().message();
  auto client = testing::BlockingConnect(engine_->ListenAddress(*id).value());
  ASSERT_TRUE(client.ok());
  testing::SetBlocking(client->get(), true);
  ASSERT_TRUE(testing::WriteAll(client->get(), "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n"));
  Converse(client->get(), /*client_tls=*/true, [&] { return backend.Next(); },
           /*backend_tls=*/false, 100000, 5000);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].client.ToString(), "192.0.2.1:51234");
  EXPECT_EQ(closed[0].sni, "localhost");
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

}  // namespace
}  // namespace zrelay
