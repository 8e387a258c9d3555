// Engine::Metrics() of a TLS listener: client and backend handshakes and
// their failures (no TLS, a silent client, a backend that speaks none), the
// closes they end in, bytes always copied, and the TLS fields of PairStats.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/relay/metrics_fixture.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

// The test's TLS peers write with write(2) to sockets the relay may have
// closed; a peer must see EPIPE, not kill the test binary.
const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

using testing::MetricsTest;
using testing::ScriptedBackend;

// A blocking TLS peer's helpers, over ssl/TlsStream on a blocking socket.
bool TlsSend(TlsStream& tls, uint64_t seed, uint64_t size) {
  std::vector<char> buf(64 << 10);
  for (uint64_t sent = 0; sent < size;) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - sent));
    testing::FillPattern(seed, sent, buf.data(), len);
    TlsResult r = tls.Write(buf.data(), len);
    if (!r.ok()) return false;
    sent += r.bytes;
  }
  return true;
}

// Reads until close_notify; returns the bytes, or -1 on a wrong byte or a
// stream that ended any other way.
int64_t TlsReceive(TlsStream& tls, uint64_t seed) {
  std::vector<char> buf(64 << 10);
  uint64_t got = 0;
  for (;;) {
    TlsResult r = tls.Read(buf.data(), buf.size());
    if (r.status == TlsIo::kEof) return static_cast<int64_t>(got);
    if (!r.ok()) return -1;
    for (size_t i = 0; i < r.bytes; ++i) {
      if (static_cast<uint8_t>(buf[i]) != testing::PatternByte(seed, got + i)) return -1;
    }
    got += r.bytes;
  }
}

TEST_F(MetricsTest, TlsListenerCountsHandshakesAndFillsPairStats) {
  StartEngine(RelayMode::kAuto, milliseconds(300));
  TlsServerConfig server_config;
  server_config.certs = {{certs_->server.cert, certs_->server.key}};
  TlsContext server_ctx = std::move(BuildServerContext(server_config).value());
  TlsClientConfig client_config;
  client_config.ca_file = certs_->ca.cert;
  TlsContext client_ctx = std::move(BuildClientContext(client_config).value());

  constexpr uint64_t kUp = 300000, kDown = 100000;
  std::atomic<int64_t> at_backend{-2};
  ScriptedBackend tls_backend([&](int fd) {
    TlsStream tls(NewServerSsl(server_ctx, fd));
    if (!tls.Handshake().ok()) return;
    at_backend = TlsReceive(tls, 1);
    TlsSend(tls, 2, kDown);
    tls.Shutdown();
  });
  // Accepts and closes at once: a TLS handshake with it cannot finish.
  ScriptedBackend closing([](int) {});

  ListenOptions options = Options("tls", {});
  options.tls = server_ctx.get();
  options.backends.push_back(BackendOptions{tls_backend.address(), client_ctx.get(), "localhost"});
  Address front = Listen(options);
  ListenOptions broken = Options("tls-to-plain", {});
  broken.backends.push_back(BackendOptions{closing.address(), client_ctx.get(), "localhost"});
  Address broken_front = Listen(broken);

  // A real client: TLS both sides, byte-exact both ways.
  {
    auto c = testing::BlockingConnect(front);
    ASSERT_TRUE(c.ok());
    TlsStream tls(NewClientSsl(client_ctx, c->get(), "localhost"));
    TlsResult hs = tls.Handshake();
    ASSERT_TRUE(hs.ok()) << hs.detail;
    EXPECT_TRUE(TlsSend(tls, 1, kUp));
    EXPECT_TRUE(tls.Shutdown().ok());
    EXPECT_EQ(TlsReceive(tls, 2), static_cast<int64_t>(kDown));
    auto closed = closes_.WaitFor(1);
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
    EXPECT_EQ(closed[0].tls_version, "TLSv1.3");
    EXPECT_EQ(closed[0].sni, "localhost");
    EXPECT_EQ(closed[0].client.ToString(), LocalAddress(c->get()).value().ToString());
  }
  EXPECT_EQ(at_backend.load(), static_cast<int64_t>(kUp));

  // A client that speaks no TLS, and one that says nothing until the
  // handshake timeout.
  {
    auto garbage = testing::BlockingConnect(front);
    ASSERT_TRUE(garbage.ok());
    ASSERT_TRUE(testing::WriteAll(garbage->get(), std::string("GET / HTTP/1.0\r\n\r\n")));
    auto silent = testing::BlockingConnect(front);
    ASSERT_TRUE(silent.ok());
    auto closed = closes_.WaitFor(3);
    ASSERT_EQ(closed.size(), 3u);
  }
  // A backend that cannot speak TLS.
  {
    auto c = testing::BlockingConnect(broken_front);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(testing::ReceivePattern(c->get(), 0).bytes, 0u);
    auto closed = closes_.WaitFor(4);
    ASSERT_EQ(closed.size(), 4u);
    EXPECT_NE(closed[3].cause, CloseCause::kDone);
    EXPECT_TRUE(closed[3].tls_version.empty()) << "a plain client leg has no TLS version";
  }

  ListenerMetrics tls = Listener("tls");
  EXPECT_EQ(tls.accepted_total, 3u);
  EXPECT_EQ(tls.open, 0u);
  EXPECT_EQ(tls.client_tls_handshakes_total, 1u);
  EXPECT_EQ(tls.client_tls_handshake_failures_total, 2u);
  EXPECT_EQ(tls.backend_tls_handshakes_total, 1u);
  EXPECT_EQ(tls.backend_tls_handshake_failures_total, 0u);
  EXPECT_EQ(tls.closed_total[kDone], 1u);
  EXPECT_EQ(tls.closed_total[kTimeout], 1u);
  EXPECT_EQ(tls.closed_total[kError] + tls.closed_total[kReset], 1u);
  EXPECT_EQ(tls.bytes_client_to_backend_total, kUp);
  EXPECT_EQ(tls.bytes_backend_to_client_total, kDown);
  EXPECT_EQ(tls.bytes_copied_total, kUp + kDown) << "TLS legs always copy";
  EXPECT_EQ(tls.bytes_spliced_total, 0u);
  ASSERT_EQ(tls.backends.size(), 1u);
  EXPECT_EQ(tls.backends[0].connects_total, 1u) << "failed client handshakes cost no backend";

  ListenerMetrics b = Listener("tls-to-plain");
  EXPECT_EQ(b.client_tls_handshakes_total + b.client_tls_handshake_failures_total, 0u);
  EXPECT_EQ(b.backend_tls_handshakes_total, 0u);
  EXPECT_EQ(b.backend_tls_handshake_failures_total, 1u);
  ASSERT_EQ(b.backends.size(), 1u);
  EXPECT_EQ(b.backends[0].connects_total, 1u) << "the TCP connect itself succeeded";
}

}  // namespace
}  // namespace zrelay
