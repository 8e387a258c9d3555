// TLS sessions an embedder set up itself, handed to Engine::Pipe: already
// handshaken (server or client side), made with bare OpenSSL on a context
// without the modes the relay needs (the engine sets them on the SSL), and
// Pipe called from a worker (inside an on_close), where the new pair stays.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tests/relay/tls_pipe_fixture.h"

namespace zrelay {
namespace {

using testing::FillPattern;

constexpr uint64_t kUp = 1 << 20;
constexpr uint64_t kDown = 3 << 20;

std::string Pattern(uint64_t seed, uint64_t size) {
  std::string data(size, '\0');
  FillPattern(seed, 0, data.data(), data.size());
  return data;
}

class TlsHandoverTest : public testing::TlsPipeTest {
 protected:
  // Two connected sockets whose TLS handshake the test finishes itself, on
  // blocking sockets: `server` on the relay's end (`leg`), `client` on the
  // test's (`app`), or the other way round.
  struct Handshaken {
    testing::LegPair sockets;
    TlsStream leg;  // the session to hand to the relay
    TlsStream app;  // the test's peer
  };
  Handshaken Handshake(bool leg_is_server) {
    auto sockets = testing::MakeLegPair(AF_INET);
    EXPECT_TRUE(sockets.ok());
    if (!sockets.ok()) return {};
    testing::SetBlocking(sockets->leg.get(), true);
    const int leg_fd = sockets->leg.get(), app_fd = sockets->app.get();
    TlsStream leg(leg_is_server ? NewServerSsl(server_ctx_, leg_fd)
                                : NewClientSsl(client_ctx_, leg_fd, "localhost"));
    TlsStream app(leg_is_server ? NewClientSsl(client_ctx_, app_fd, "localhost")
                                : NewServerSsl(server_ctx_, app_fd));
    std::thread other([&] { EXPECT_TRUE(app.Handshake().ok()); });
    EXPECT_TRUE(leg.Handshake().ok());
    other.join();
    return Handshaken{std::move(sockets.value()), std::move(leg), std::move(app)};
  }

  // A TLS peer `tls` sends kUp bytes of pattern 1 and close_notify, then
  // reads to the relay's close_notify: what it read.
  static std::string TlsPeerExchange(TlsStream& tls) {
    std::string got;
    if (!WriteAll(tls, Pattern(1, kUp)) || !tls.Shutdown().ok()) return got;
    EXPECT_EQ(ReadToEnd(tls, got), TlsIo::kEof);
    return got;
  }

  // A plain peer on `fd` reads kUp bytes of pattern 1 to EOF, then sends
  // kDown bytes of pattern 2 and FIN. Returns the bytes it read that matched.
  static uint64_t PlainPeerExchange(int fd) {
    testing::Received r = testing::ReceivePattern(fd, 1);
    EXPECT_EQ(r.first_mismatch, -1);
    EXPECT_EQ(r.error, 0);
    EXPECT_EQ(testing::SendPattern(fd, 2, kDown), kDown);
    return r.bytes;
  }

  // The last pair to close, once `n` have.
  PairStats NthClosed(size_t n) {
    auto closed = closes_.WaitFor(n);
    EXPECT_EQ(closed.size(), n);
    return closed.size() >= n ? closed[n - 1] : PairStats{};
  }
};

// A server session handshaken by the test: the relay only moves bytes, and
// reports the session's version and server name.
TEST_F(TlsHandoverTest, HandshakenServerSessionRelaysBothWays) {
  Handshaken a = Handshake(/*leg_is_server=*/true);
  ASSERT_TRUE(a.leg.handshake_done());
  auto b = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(b.ok());
  Leg leg_a{std::move(a.sockets.leg)};
  leg_a.ssl = a.leg.Release();
  engine_->Pipe(std::move(leg_a), Leg{std::move(b->leg)}, closes_.Callback());
  uint64_t at_backend = 0;
  std::thread backend([&] { at_backend = PlainPeerExchange(b->app.get()); });
  std::string at_client = TlsPeerExchange(a.app);
  backend.join();
  EXPECT_EQ(at_backend, kUp);
  EXPECT_TRUE(at_client == Pattern(2, kDown)) << at_client.size() << " bytes";
  PairStats s = NthClosed(1);
  EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
  EXPECT_EQ(s.a_to_b, kUp);
  EXPECT_EQ(s.b_to_a, kDown);
  EXPECT_EQ(s.tls_version, "TLSv1.3");
  EXPECT_EQ(s.sni, "localhost");
}

// A client session handshaken by the test, as leg B (TLS to a backend).
TEST_F(TlsHandoverTest, HandshakenClientSessionRelaysBothWays) {
  auto a = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok());
  Handshaken b = Handshake(/*leg_is_server=*/false);
  ASSERT_TRUE(b.leg.handshake_done());
  Leg leg_b{std::move(b.sockets.leg)};
  leg_b.ssl = b.leg.Release();
  engine_->Pipe(Leg{std::move(a->leg)}, std::move(leg_b), closes_.Callback());
  // The backend (TLS server, the test's end of B) reads to the client's
  // end, answers and sends close_notify.
  std::string at_backend;
  std::thread backend([&] {
    EXPECT_EQ(ReadToEnd(b.app, at_backend), TlsIo::kEof);
    EXPECT_TRUE(WriteAll(b.app, Pattern(2, kDown)));
    EXPECT_TRUE(b.app.Shutdown().ok());
  });
  EXPECT_EQ(testing::SendPattern(a->app.get(), 1, kUp), kUp);
  testing::Received at_client = testing::ReceivePattern(a->app.get(), 2);
  backend.join();
  EXPECT_TRUE(at_backend == Pattern(1, kUp)) << at_backend.size() << " bytes";
  EXPECT_EQ(at_client.bytes, kDown);
  EXPECT_EQ(at_client.first_mismatch, -1);
  EXPECT_EQ(at_client.error, 0);
  PairStats s = NthClosed(1);
  EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
  EXPECT_EQ(s.a_to_b, kUp);
  EXPECT_EQ(s.b_to_a, kDown);
  EXPECT_EQ(s.tls_version, "");  // leg A is plain
}

// An SSL from bare OpenSSL, on a context with none of the relay's modes and
// with SSL_OP_IGNORE_UNEXPECTED_EOF, its handshake not started: the engine
// sets what it needs on the SSL itself. Partial writes and a moving write
// buffer carry megabytes to a client that reads slower than the backend
// sends, and the client's close without close_notify is still told apart
// from a clean end (kTruncated, not kDone), with the session's version.
TEST_F(TlsHandoverTest, BareOpenSslSessionGetsTheModesItNeeds) {
  SSL_CTX* bare = SSL_CTX_new(TLS_server_method());
  ASSERT_NE(bare, nullptr);
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(bare, certs_->server.cert.c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(bare, certs_->server.key.c_str(), SSL_FILETYPE_PEM), 1);
  SSL_CTX_clear_mode(bare, SSL_CTX_get_mode(bare));
  SSL_CTX_set_options(bare, SSL_OP_IGNORE_UNEXPECTED_EOF);
  auto a = testing::MakeLegPair(AF_INET);
  auto b = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  SSL* ssl = SSL_new(bare);
  SSL_CTX_free(bare);  // the SSL holds its own reference
  ASSERT_NE(ssl, nullptr);
  ASSERT_EQ(SSL_set_fd(ssl, a->leg.get()), 1);
  SSL_set_accept_state(ssl);
  EXPECT_EQ(SSL_get_mode(ssl) & (SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER),
            0u);
  Leg leg_a{std::move(a->leg)};
  leg_a.ssl = ssl;
  engine_->Pipe(std::move(leg_a), Leg{std::move(b->leg)}, closes_.Callback());
  // The backend reads the request, answers, and closes once the client did.
  testing::Received at_backend;
  std::thread backend([&, fd = b->app.get()] {
    char* request = new char[kUp];
    size_t have = 0;
    for (ssize_t n = 1; have < kUp && n > 0; have += static_cast<size_t>(n > 0 ? n : 0)) {
      n = ::recv(fd, request + have, kUp - have, 0);
    }
    EXPECT_EQ(std::string(request, have), Pattern(1, kUp));
    delete[] request;
    EXPECT_EQ(testing::SendPattern(fd, 2, kDown, 64 << 10, /*shut_write=*/false), kDown);
    at_backend = testing::ReceivePattern(fd, 1);  // the client's end: nothing more
  });
  std::string at_client;
  {
    TlsStream client(NewClientSsl(client_ctx_, a->app.get(), "localhost"));
    ASSERT_TRUE(client.Handshake().ok());
    ASSERT_TRUE(WriteAll(client, Pattern(1, kUp)));
    // Slow reads: the relay's writes to the client block and are retried.
    char buf[4096];
    while (at_client.size() < kDown) {
      TlsResult r = client.Read(buf, sizeof buf);
      if (!r.ok()) break;
      at_client.append(buf, r.bytes);
      if (at_client.size() % (256 << 10) < r.bytes) std::this_thread::sleep_for(milliseconds(5));
    }
  }
  a->app.Reset();  // FIN without close_notify
  backend.join();
  b->app.Reset();
  EXPECT_EQ(at_backend.bytes, 0u);
  EXPECT_EQ(at_backend.error, 0);
  EXPECT_TRUE(at_client == Pattern(2, kDown)) << at_client.size() << " bytes";
  PairStats s = NthClosed(1);
  EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
  EXPECT_EQ(s.a_to_b, kUp);
  EXPECT_EQ(s.b_to_a, kDown);
  EXPECT_EQ(s.tls_version, "TLSv1.3");
}

// Pipe called on a worker, inside a pair's on_close: the new pair starts on
// that same worker (PairStats::worker), its session handshaken beforehand,
// and relays byte-exact. Each first pair lands on the workers round-robin,
// so both workers take a turn.
TEST_F(TlsHandoverTest, PipeFromOnCloseStaysOnThatWorker) {
  constexpr int kChains = 4;
  for (int chain = 0; chain < kChains; ++chain) {
    SCOPED_TRACE(::testing::Message() << "chain " << chain);
    const size_t before = closes_.count();
    Handshaken second = Handshake(/*leg_is_server=*/true);
    auto second_b = testing::MakeLegPair(AF_INET);
    auto first_a = testing::MakeLegPair(AF_INET);
    auto first_b = testing::MakeLegPair(AF_INET);
    ASSERT_TRUE(second_b.ok() && first_a.ok() && first_b.ok());
    Leg second_a{std::move(second.sockets.leg)};
    second_a.ssl = second.leg.Release();
    // The legs ride in a shared box: on_close is a std::function (copyable).
    auto legs = std::make_shared<std::pair<Leg, Leg>>(std::move(second_a),
                                                      Leg{std::move(second_b->leg)});
    std::promise<size_t> first_worker;
    OnClose record = closes_.Callback();
    Engine* engine = engine_.get();
    engine_->Pipe(Leg{std::move(first_a->leg)}, Leg{std::move(first_b->leg)},
                  [&first_worker, legs, record, engine](const PairStats& s) {
                    first_worker.set_value(s.worker);
                    engine->Pipe(std::move(legs->first), std::move(legs->second), record);
                  });
    first_a->app.Reset();  // the first pair ends at once (both FIN)
    first_b->app.Reset();
    std::future<size_t> worker = first_worker.get_future();
    ASSERT_EQ(worker.wait_for(seconds(5)), std::future_status::ready);
    uint64_t at_backend = 0;
    std::thread backend([&] { at_backend = PlainPeerExchange(second_b->app.get()); });
    std::string at_client = TlsPeerExchange(second.app);
    backend.join();
    EXPECT_EQ(at_backend, kUp);
    EXPECT_TRUE(at_client == Pattern(2, kDown)) << at_client.size() << " bytes";
    PairStats s = NthClosed(before + 1);
    EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
    EXPECT_EQ(s.worker, worker.get());
    EXPECT_EQ(s.a_to_b, kUp);
    EXPECT_EQ(s.b_to_a, kDown);
    EXPECT_EQ(s.sni, "localhost");
  }
}

}  // namespace
}  // namespace zrelay
