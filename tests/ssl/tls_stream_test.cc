// TlsStream over real loopback TCP, both ends non-blocking, driven by poll():
// handshakes, byte-exact transfers, the three ways a stream ends, SNI, ALPN,
// verification, mutual TLS, hostile input and the error-queue hygiene.
#include "ssl/tls_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <csignal>
#include <functional>
#include <random>
#include <string>

#include "ssl/tls_context.h"
#include "tests/ssl/tls_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Describe;
using testing::Handshake;

// OpenSSL writes with write(2); a test thread must not die of SIGPIPE.
const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

// Index of the first difference, or -1: keeps 4 MiB strings out of messages.
long FirstDiff(const std::string& a, const std::string& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) return static_cast<long>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<long>(std::min(a.size(), b.size()));
}

// Reads on `s` (waiting on `fd` when blocked) until something other than
// kOk/kWant* happens or `deadline_ms` passes; data read is appended to `got`.
TlsResult ReadUntilEnd(TlsStream& s, int fd, std::string* got = nullptr, int deadline_ms = 5000) {
  char buf[4096];
  for (int waited = 0; waited < deadline_ms;) {
    TlsResult r = s.Read(buf, sizeof buf);
    if (r.ok()) {
      if (got) got->append(buf, r.bytes);
      continue;
    }
    if (!r.would_block()) return r;
    if (!testing::WaitFor(fd, r, 100)) waited += 100;
  }
  TlsResult r;
  r.status = TlsIo::kWantRead;
  r.detail = "test deadline";
  return r;
}

// Repeats `step` (a Handshake or Read of one stream) until it stops blocking.
TlsResult Drive(const std::function<TlsResult()>& step, int fd, int deadline_ms = 5000) {
  TlsResult r = step();
  for (int waited = 0; r.would_block() && waited < deadline_ms;) {
    if (!testing::WaitFor(fd, r, 100)) waited += 100;
    r = step();
  }
  return r;
}

class TlsStreamTest : public testing::CertsTest {
 protected:
  void TearDown() override { EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty"; }

  static TlsContext ServerCtx(const std::function<void(TlsServerConfig&)>& edit = {}) {
    TlsServerConfig c;
    c.certs = {{certs_->server.cert, certs_->server.key}};
    if (edit) edit(c);
    auto ctx = BuildServerContext(c);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return ctx.ok() ? std::move(ctx.value()) : TlsContext();
  }
  static TlsContext ClientCtx(const std::function<void(TlsClientConfig&)>& edit = {}) {
    TlsClientConfig c;
    c.ca_file = certs_->ca.cert;
    c.sni = "localhost";
    if (edit) edit(c);
    auto ctx = BuildClientContext(c);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return ctx.ok() ? std::move(ctx.value()) : TlsContext();
  }

  // Declaration order matters: the streams die before their fds.
  struct Conn {
    testing::TcpPair fds;
    TlsStream client;
    TlsStream server;
    int cfd() const { return fds.client.get(); }
    int sfd() const { return fds.server.get(); }
    testing::HandshakeResults Handshake() { return testing::Handshake(client, cfd(), server, sfd()); }
  };
  static Conn Connect(const TlsContext& server, const TlsContext& client,
                      std::string_view sni = {}) {
    Conn c;
    c.fds = testing::MakeTcpPair();
    c.client = TlsStream(NewClientSsl(client, c.cfd(), sni));
    c.server = TlsStream(NewServerSsl(server, c.sfd()));
    EXPECT_NE(c.client.ssl(), nullptr);
    EXPECT_NE(c.server.ssl(), nullptr);
    return c;
  }

};

// ---- handshakes and transfers, over TLS 1.2 and TLS 1.3 -------------------

class TlsVersionTest : public TlsStreamTest, public ::testing::WithParamInterface<int> {
 protected:
  // A handshaken connection whose client caps the version at GetParam().
  Conn Ready() {
    Conn c = Connect(server_, client_);
    SSL_set_max_proto_version(c.client.ssl(), GetParam());
    auto hs = c.Handshake();
    EXPECT_TRUE(hs.ok()) << "client " << Describe(hs.client) << " server " << Describe(hs.server);
    EXPECT_EQ(SSL_version(c.client.ssl()), GetParam());
    return c;
  }
  TlsContext server_ = ServerCtx([](TlsServerConfig& c) { c.alpn = {"h2", "http/1.1"}; });
  TlsContext client_ = ClientCtx([](TlsClientConfig& c) { c.alpn = {"http/1.1", "h2"}; });
};

INSTANTIATE_TEST_SUITE_P(Versions, TlsVersionTest, ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const auto& info) {
                           return std::string(info.param == TLS1_2_VERSION ? "TLS12" : "TLS13");
                         });

TEST_P(TlsVersionTest, HandshakeBothWays) {
  Conn c = Ready();
  EXPECT_TRUE(c.client.handshake_done());
  EXPECT_TRUE(c.server.handshake_done());
  EXPECT_EQ(c.server.sni(), "localhost");
  EXPECT_EQ(c.client.sni(), "localhost");
  EXPECT_EQ(testing::PeerCommonName(c.client), "localhost");
  const char* version = GetParam() == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3";
  EXPECT_EQ(c.client.version(), version);
  EXPECT_EQ(c.server.version(), version);
  // The server's preference wins: h2 is first in its list.
  EXPECT_EQ(c.client.alpn(), "h2");
  EXPECT_EQ(c.server.alpn(), "h2");
  // A finished handshake is idempotent.
  EXPECT_TRUE(c.client.Handshake().ok());
}

TEST_P(TlsVersionTest, ByteExactTransferBothWays) {
  std::mt19937 rng(GetParam());
  std::vector<std::pair<size_t, size_t>> sizes = {{1, 0}, {16384, 16385}, {0, 70000}};
  for (int i = 0; i < 2; ++i) {
    sizes.emplace_back(std::uniform_int_distribution<size_t>(1, 4 << 20)(rng),
                       std::uniform_int_distribution<size_t>(1, 4 << 20)(rng));
  }
  sizes.emplace_back(4 << 20, 4 << 20);
  const size_t chunks[] = {1000, 16384, 256 << 10};
  int round = 0;
  for (auto [ab, ba] : sizes) {
    SCOPED_TRACE("a->b " + std::to_string(ab) + " b->a " + std::to_string(ba));
    Conn c = Ready();
    const std::string a_to_b = RandomBytes(ab, 2 * round + 1);
    const std::string b_to_a = RandomBytes(ba, 2 * round + 2);
    auto t = testing::Transfer(c.client, c.cfd(), c.server, c.sfd(), a_to_b, b_to_a,
                               chunks[round % 3]);
    ++round;
    ASSERT_EQ(t.error, "");
    ASSERT_EQ(t.received_by_b.size(), a_to_b.size());
    ASSERT_EQ(t.received_by_a.size(), b_to_a.size());
    EXPECT_EQ(FirstDiff(t.received_by_b, a_to_b), -1);
    EXPECT_EQ(FirstDiff(t.received_by_a, b_to_a), -1);
  }
}

TEST_P(TlsVersionTest, CloseNotifyIsEofAndHalfCloseStillCarriesData) {
  Conn c = Ready();
  ASSERT_TRUE(c.server.Write("last words", 10).ok());
  ASSERT_TRUE(c.server.Shutdown().ok());
  EXPECT_TRUE(c.server.Shutdown().ok());  // once is enough; again is a no-op
  std::string got;
  TlsResult r = ReadUntilEnd(c.client, c.cfd(), &got);
  EXPECT_EQ(r.status, TlsIo::kEof) << Describe(r);
  EXPECT_EQ(got, "last words");
  EXPECT_EQ(c.client.Read(&got[0], 1).status, TlsIo::kEof);  // EOF is sticky

  // The other direction is still open: the client answers, then closes.
  ASSERT_TRUE(c.client.Write("reply", 5).ok());
  ASSERT_TRUE(c.client.Shutdown().ok());
  got.clear();
  r = ReadUntilEnd(c.server, c.sfd(), &got);
  EXPECT_EQ(r.status, TlsIo::kEof) << Describe(r);
  EXPECT_EQ(got, "reply");
}

TEST_P(TlsVersionTest, PlainCloseIsTruncated) {
  Conn c = Ready();
  ASSERT_TRUE(c.server.Write("partial", 7).ok());
  c.fds.server.Reset();  // FIN without close_notify
  std::string got;
  TlsResult r = ReadUntilEnd(c.client, c.cfd(), &got);
  EXPECT_EQ(r.status, TlsIo::kTruncated) << Describe(r);
  EXPECT_EQ(got, "partial");
  EXPECT_THAT(r.detail, HasSubstr("without close_notify"));
  EXPECT_EQ(r.sys_errno, 0);
  // OpenSSL 3 makes truncation fatal: no more writing, no close_notify.
  for (TlsResult after : {c.client.Write("x", 1), c.client.Read(&got[0], 1),
                          c.client.Shutdown()}) {
    EXPECT_EQ(after.status, TlsIo::kError) << Describe(after);
    EXPECT_THAT(after.detail, HasSubstr("connection already failed: peer closed the connection "
                                        "without close_notify"));
  }
}

TEST_P(TlsVersionTest, HalfCloseWithoutCloseNotifyThenFin) {
  Conn c = Ready();
  ASSERT_EQ(shutdown(c.sfd(), SHUT_WR), 0);  // the peer's FIN, no close_notify
  TlsResult r = ReadUntilEnd(c.client, c.cfd());
  EXPECT_EQ(r.status, TlsIo::kTruncated) << Describe(r);
  // No close_notify can go out any more (relay/ ends the pair on this)...
  r = c.client.Shutdown();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("connection already failed: peer closed the connection "
                                  "without close_notify"));
  // ...but the socket can still end with a FIN.
  ASSERT_EQ(shutdown(c.cfd(), SHUT_WR), 0);
  // The peer gets OpenSSL's fatal alert for the truncation (sent when the EOF
  // was read: a plain record in TLS 1.2, an encrypted one in 1.3), then FIN.
  std::string raw;
  char buf[256];
  for (int i = 0; i < 20; ++i) {
    pollfd p{c.sfd(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 2000), 1);
    const ssize_t n = recv(c.sfd(), buf, sizeof buf, 0);
    if (n <= 0) {
      EXPECT_EQ(n, 0) << "the peer sees a FIN, not a reset";
      break;
    }
    raw.append(buf, n);
  }
  ASSERT_GE(raw.size(), 5u);
  EXPECT_EQ(raw[0], GetParam() == TLS1_2_VERSION ? '\x15' : '\x17');
}

TEST_P(TlsVersionTest, ResetIsErrorWithEconnreset) {
  Conn c = Ready();
  const linger abort_close{1, 0};
  ASSERT_EQ(setsockopt(c.sfd(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close), 0);
  c.fds.server.Reset();  // RST
  TlsResult r = ReadUntilEnd(c.client, c.cfd());
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_EQ(r.sys_errno, ECONNRESET) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("Connection reset by peer"));
}

TEST_P(TlsVersionTest, WriteToResetPeerIsError) {
  Conn c = Ready();
  const linger abort_close{1, 0};
  ASSERT_EQ(setsockopt(c.sfd(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close), 0);
  c.fds.server.Reset();
  pollfd p{c.cfd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);  // the RST has arrived
  const std::string data(64 << 10, 'x');
  TlsResult r;
  for (int i = 0; i < 100; ++i) {  // the first write may still be accepted
    r = c.client.Write(data.data(), data.size());
    if (!r.ok()) break;
  }
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_TRUE(r.sys_errno == EPIPE || r.sys_errno == ECONNRESET) << Describe(r);
}

// Regression: once the peer's close_notify had come in, a close_notify of
// ours that could not be written (the peer gone: EPIPE) came back as kEof,
// because SSL_get_error answers ZERO_RETURN whenever the peer's close_notify
// was received. A relay then waited for a writable socket that never came,
// and the pair stayed open until a drain.
TEST_P(TlsVersionTest, ShutdownToAGonePeerAfterItsCloseNotifyIsError) {
  Conn c = Ready();
  ASSERT_TRUE(c.server.Shutdown().ok());
  std::string got;
  TlsResult r = ReadUntilEnd(c.client, c.cfd(), &got);
  ASSERT_EQ(r.status, TlsIo::kEof) << Describe(r);
  const linger abort_close{1, 0};
  ASSERT_EQ(setsockopt(c.sfd(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close), 0);
  c.fds.server.Reset();
  pollfd p{c.cfd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);  // the RST has arrived
  r = c.client.Shutdown();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_TRUE(r.sys_errno == EPIPE || r.sys_errno == ECONNRESET) << Describe(r);
  EXPECT_EQ(c.client.Shutdown().status, TlsIo::kError);  // and it stays failed
}

TEST_P(TlsVersionTest, PendingBytesAreInvisibleToPoll) {
  // The edge-triggered trap: after a short Read, the rest of the record is
  // inside OpenSSL, and the socket itself has nothing to report.
  Conn c = Ready();
  // Consume what the handshake left (TLS 1.3 session tickets) first.
  char buf[100];
  EXPECT_TRUE(c.client.Read(buf, sizeof buf).would_block());
  const std::string record = RandomBytes(10000, 7);
  ASSERT_EQ(c.server.Write(record.data(), record.size()).bytes, record.size());
  TlsResult r = Drive([&] { return c.client.Read(buf, sizeof buf); }, c.cfd());
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r.bytes, sizeof buf);
  EXPECT_EQ(c.client.pending(), record.size() - sizeof buf);
  pollfd p{c.cfd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0) << "socket should look idle";
  std::string got(buf, sizeof buf);
  while (c.client.pending() > 0) {
    r = c.client.Read(buf, sizeof buf);
    ASSERT_TRUE(r.ok()) << Describe(r);
    got.append(buf, r.bytes);
  }
  EXPECT_EQ(got, record);
}

TEST_P(TlsVersionTest, EmptyReadsAndWritesDoNothing) {
  Conn c = Ready();
  EXPECT_TRUE(c.client.Write("", 0).ok());
  char b;
  TlsResult r = c.client.Read(&b, 0);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.bytes, 0u);
}

// ---- the stream object itself -----------------------------------------------

TEST_F(TlsStreamTest, ShutdownBeforeHandshakeIsAnError) {
  TlsContext server = ServerCtx(), client = ClientCtx();
  Conn c = Connect(server, client);
  TlsResult r = c.client.Shutdown();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("shutdown while in init"));
}

TEST_F(TlsStreamTest, VersionIsEmptyUntilTheHandshakeIsDone) {
  TlsContext server = ServerCtx(), client = ClientCtx();
  Conn c = Connect(server, client);
  EXPECT_EQ(c.client.version(), "");
  EXPECT_EQ(c.server.version(), "");
  ASSERT_TRUE(c.Handshake().ok());
  EXPECT_EQ(c.server.version(), "TLSv1.3");
}

// OpenSSL puts a session back "in init" when it fails fatally; the stream
// still reports what the finished handshake agreed on.
TEST_F(TlsStreamTest, VersionSurvivesTruncation) {
  TlsContext server = ServerCtx(), client = ClientCtx();
  Conn c = Connect(server, client);
  ASSERT_TRUE(c.Handshake().ok());
  c.fds.server.Reset();  // FIN without close_notify
  TlsResult r = ReadUntilEnd(c.client, c.cfd());
  ASSERT_EQ(r.status, TlsIo::kTruncated) << Describe(r);
  EXPECT_TRUE(c.client.handshake_done());
  EXPECT_EQ(c.client.version(), "TLSv1.3");
}

// An SSL from a bare context gets what TlsStream relies on.
TEST_F(TlsStreamTest, SetStreamModesOverridesTheContext) {
  SSL_CTX* bare = SSL_CTX_new(TLS_method());
  ASSERT_NE(bare, nullptr);
  SSL_CTX_clear_mode(bare, SSL_CTX_get_mode(bare));
  SSL_CTX_set_options(bare, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL* ssl = SSL_new(bare);
  SSL_CTX_free(bare);
  ASSERT_NE(ssl, nullptr);
  const long wanted = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                      SSL_MODE_RELEASE_BUFFERS;
  EXPECT_EQ(SSL_get_mode(ssl) & wanted, 0);
  SetStreamModes(ssl);
  EXPECT_EQ(SSL_get_mode(ssl) & wanted, wanted);
  EXPECT_EQ(SSL_get_options(ssl) & SSL_OP_IGNORE_UNEXPECTED_EOF, 0u);
  SSL_free(ssl);
}

TEST_F(TlsStreamTest, MoveAndRelease) {
  TlsContext server = ServerCtx(), client = ClientCtx();
  Conn c = Connect(server, client);
  char b;
  SSL* raw = c.client.ssl();
  TlsStream moved(std::move(c.client));
  EXPECT_EQ(moved.ssl(), raw);
  EXPECT_EQ(c.client.ssl(), nullptr);  // NOLINT: moved-from state
  EXPECT_FALSE(c.client.handshake_done());
  EXPECT_EQ(c.client.pending(), 0u);
  SSL* released = moved.Release();
  EXPECT_EQ(released, raw);
  SSL_free(released);
  // No SSL: errors, not crashes.
  EXPECT_EQ(c.client.Handshake().status, TlsIo::kError);
  EXPECT_EQ(c.client.Read(&b, 1).status, TlsIo::kError);
  EXPECT_EQ(c.client.Write("x", 1).status, TlsIo::kError);
  EXPECT_EQ(c.client.Shutdown().status, TlsIo::kError);
}

TEST_F(TlsStreamTest, RawCtxOutlivesTlsContext) {
  // relay/ holds SSL_CTX* (ListenOptions::tls); the SNI map must live with it.
  SSL_CTX* raw = nullptr;
  {
    TlsContext ctx = ServerCtx([](TlsServerConfig& c) {
      c.certs.push_back({certs_->second.cert, certs_->second.key});
    });
    raw = ctx.get();
    SSL_CTX_up_ref(raw);
  }
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.sni = "other.test"; });
  testing::TcpPair fds = testing::MakeTcpPair();
  TlsStream cs(NewClientSsl(client, fds.client.get()));
  TlsStream ss(NewServerSsl(raw, fds.server.get()));
  SSL_CTX_free(raw);  // the SSL holds its own reference
  auto hs = Handshake(cs, fds.client.get(), ss, fds.server.get());
  ASSERT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
  EXPECT_EQ(testing::PeerCommonName(cs), "other.test");
}

// ---- SNI and ALPN -------------------------------------------------------------

// Origination resumes: a client context offers the last session a server
// gave it, but only to the same server name.
TEST_F(TlsStreamTest, ClientResumesTheLastSessionForTheSameName) {
  TlsContext server = ServerCtx(
      [](TlsServerConfig& c) { c.certs.push_back({certs_->second.cert, certs_->second.key}); });
  TlsContext client = ClientCtx();
  auto resumed = [&](std::string_view sni) {
    Conn c = Connect(server, client, sni);
    auto hs = c.Handshake();
    EXPECT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
    // Reading is what makes a TLS 1.3 client take the server's tickets.
    auto t = testing::Transfer(c.client, c.cfd(), c.server, c.sfd(), "ping", "pong");
    EXPECT_TRUE(t.error.empty()) << t.error;
    return SSL_session_reused(c.client.ssl()) == 1;
  };
  EXPECT_FALSE(resumed("localhost")) << "the first connection has nothing to resume";
  EXPECT_TRUE(resumed("localhost"));
  EXPECT_FALSE(resumed("other.test")) << "a session is only offered to its own name";
  EXPECT_TRUE(resumed("other.test"));
}

TEST_F(TlsStreamTest, SniPicksTheCertificate) {
  TlsContext server = ServerCtx([](TlsServerConfig& c) {
    c.certs.push_back({certs_->second.cert, certs_->second.key});
    c.alpn = {"h2"};
  });
  struct Case {
    std::string sni;
    std::string want_cn;
    bool verify;
  };
  const Case cases[] = {
      {"localhost", "localhost", true},
      {"other.test", "other.test", true},
      {"OTHER.Test", "other.test", true},       // names are case-insensitive
      {"a.wild.test", "other.test", true},      // "*.wild.test"
      {"b.a.wild.test", "localhost", false},    // a wildcard is one label
      {"wild.test", "localhost", false},
      {"unknown.test", "localhost", false},     // default certificate
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.sni);
    TlsContext client = ClientCtx([&](TlsClientConfig& c) {
      c.verify = k.verify;
      c.alpn = {"h2"};
    });
    Conn c = Connect(server, client, k.sni);
    auto hs = c.Handshake();
    ASSERT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
    EXPECT_EQ(testing::PeerCommonName(c.client), k.want_cn);
    EXPECT_EQ(c.server.sni(), k.sni);
    EXPECT_EQ(c.client.alpn(), "h2");  // ALPN works on switched contexts too
  }
}

TEST_F(TlsStreamTest, NoSniGetsTheDefaultCertificate) {
  TlsContext server = ServerCtx([](TlsServerConfig& c) {
    c.certs.push_back({certs_->second.cert, certs_->second.key});
  });
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.sni.clear(); });
  Conn c = Connect(server, client);
  ASSERT_TRUE(c.Handshake().ok());
  EXPECT_EQ(testing::PeerCommonName(c.client), "localhost");
  EXPECT_EQ(c.server.sni(), "");
}

TEST_F(TlsStreamTest, AlpnWithoutOverlapNegotiatesNothing) {
  TlsContext server = ServerCtx([](TlsServerConfig& c) { c.alpn = {"h2"}; });
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.alpn = {"spdy/3", "imap"}; });
  Conn c = Connect(server, client);
  auto hs = c.Handshake();
  ASSERT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
  EXPECT_EQ(c.client.alpn(), "");
  EXPECT_EQ(c.server.alpn(), "");
}

TEST_F(TlsStreamTest, AlpnPicksTheServersFirstCommonProtocol) {
  TlsContext server = ServerCtx([](TlsServerConfig& c) { c.alpn = {"x-a", "x-b", "x-c"}; });
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.alpn = {"x-c", "x-b"}; });
  Conn c = Connect(server, client);
  ASSERT_TRUE(c.Handshake().ok());
  EXPECT_EQ(c.client.alpn(), "x-b");
}

// ---- client verification --------------------------------------------------------

struct VerifyCase {
  const char* name;
  testing::CertFiles testing::TestCerts::*server_cert;
  std::string sni;
  std::string want;  // "" = success, else a substring of the client's detail
};

TEST_F(TlsStreamTest, ClientVerification) {
  const VerifyCase cases[] = {
      {"trusted", &testing::TestCerts::server, "localhost", ""},
      {"ip_san", &testing::TestCerts::server, "127.0.0.1", ""},
      {"unknown_ca", &testing::TestCerts::untrusted, "localhost",
       "certificate verify failed: unable to get local issuer certificate"},
      {"wrong_name", &testing::TestCerts::wrong_name, "localhost",
       "certificate verify failed: hostname mismatch"},
      {"wrong_ip", &testing::TestCerts::server, "127.0.0.2",
       "certificate verify failed: IP address mismatch"},
      {"expired", &testing::TestCerts::expired, "localhost",
       "certificate verify failed: certificate has expired"},
  };
  for (const VerifyCase& k : cases) {
    SCOPED_TRACE(k.name);
    const testing::CertFiles& files = (*certs_).*(k.server_cert);
    TlsContext server = ServerCtx([&](TlsServerConfig& c) { c.certs = {{files.cert, files.key}}; });
    TlsContext client = ClientCtx();
    Conn c = Connect(server, client, k.sni);
    auto hs = c.Handshake();
    if (k.want.empty()) {
      EXPECT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
      continue;
    }
    EXPECT_EQ(hs.client.status, TlsIo::kError);
    EXPECT_THAT(hs.client.detail, HasSubstr(k.want));
    EXPECT_THAT(hs.client.detail, HasSubstr("SSL routines::certificate verify failed"));
    EXPECT_EQ(hs.server.status, TlsIo::kError) << "the client's alert reaches the server";
    EXPECT_THAT(hs.server.detail, HasSubstr("alert"));
  }
}

TEST_F(TlsStreamTest, VerifyOffAcceptsAnything) {
  for (auto cert : {&testing::TestCerts::untrusted, &testing::TestCerts::expired,
                    &testing::TestCerts::wrong_name}) {
    const testing::CertFiles& files = (*certs_).*cert;
    TlsContext server = ServerCtx([&](TlsServerConfig& c) { c.certs = {{files.cert, files.key}}; });
    TlsContext client = ClientCtx([](TlsClientConfig& c) {
      c.verify = false;
      c.ca_file.clear();
    });
    Conn c = Connect(server, client);
    auto hs = c.Handshake();
    EXPECT_TRUE(hs.ok()) << files.cert << ": " << Describe(hs.client);
  }
}

TEST_F(TlsStreamTest, SystemStoreDoesNotTrustTheTestCa) {
  TlsContext server = ServerCtx();
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.ca_file.clear(); });
  Conn c = Connect(server, client);
  auto hs = c.Handshake();
  EXPECT_EQ(hs.client.status, TlsIo::kError);
  EXPECT_THAT(hs.client.detail, HasSubstr("unable to get local issuer certificate"));
}

TEST_F(TlsStreamTest, VerifyHostnameDiffersFromSni) {
  TlsContext server = ServerCtx();
  // SNI "localhost" (server picks its default anyway), but we insist on a
  // name the certificate does not carry.
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.verify_hostname = "other.test"; });
  Conn c = Connect(server, client);
  auto hs = c.Handshake();
  EXPECT_EQ(hs.client.status, TlsIo::kError);
  EXPECT_THAT(hs.client.detail, HasSubstr("hostname mismatch"));
}

TEST_F(TlsStreamTest, PerConnectionSniOverridesConfig) {
  TlsContext server = ServerCtx();
  TlsContext client = ClientCtx([](TlsClientConfig& c) { c.sni = "wrong.test"; });
  Conn c = Connect(server, client, "localhost");
  auto hs = c.Handshake();
  EXPECT_TRUE(hs.ok()) << Describe(hs.client);
  EXPECT_EQ(c.server.sni(), "localhost");
}

// ---- mutual TLS ---------------------------------------------------------------

class MutualTlsTest : public TlsStreamTest, public ::testing::WithParamInterface<int> {
 protected:
  TlsContext server_ =
      ServerCtx([](TlsServerConfig& c) { c.client_ca_file = certs_->ca.cert; });
  Conn Connect(const TlsContext& client) {
    Conn c = TlsStreamTest::Connect(server_, client);
    SSL_set_max_proto_version(c.client.ssl(), GetParam());
    return c;
  }
  // The client's view of a server-side rejection: in TLS 1.3 the client's
  // handshake completes first and the alert arrives on its first Read.
  TlsResult ClientOutcome(Conn& c, const testing::HandshakeResults& hs) {
    if (!hs.client.ok()) return hs.client;
    return Drive([&] {
      char b;
      return c.client.Read(&b, 1);
    }, c.cfd());
  }
};

INSTANTIATE_TEST_SUITE_P(Versions, MutualTlsTest, ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const auto& info) {
                           return std::string(info.param == TLS1_2_VERSION ? "TLS12" : "TLS13");
                         });

TEST_P(MutualTlsTest, WithoutClientCertificateFailsClearly) {
  TlsContext client = ClientCtx();
  Conn c = Connect(client);
  auto hs = c.Handshake();
  EXPECT_EQ(hs.server.status, TlsIo::kError);
  EXPECT_THAT(hs.server.detail, HasSubstr("peer did not return a certificate"));
  TlsResult r = ClientOutcome(c, hs);
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("alert"));
}

TEST_P(MutualTlsTest, UntrustedClientCertificateFailsClearly) {
  TlsContext client = ClientCtx([](TlsClientConfig& c) {
    c.cert_file = certs_->untrusted_client.cert;
    c.key_file = certs_->untrusted_client.key;
  });
  Conn c = Connect(client);
  auto hs = c.Handshake();
  EXPECT_EQ(hs.server.status, TlsIo::kError);
  EXPECT_THAT(hs.server.detail,
              HasSubstr("certificate verify failed: unable to get local issuer certificate"));
  TlsResult r = ClientOutcome(c, hs);
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("alert unknown ca"));
}

TEST_P(MutualTlsTest, WithClientCertificateSucceeds) {
  TlsContext client = ClientCtx([](TlsClientConfig& c) {
    c.cert_file = certs_->client.cert;
    c.key_file = certs_->client.key;
  });
  Conn c = Connect(client);
  auto hs = c.Handshake();
  ASSERT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
  EXPECT_EQ(testing::PeerCommonName(c.server), "zrelay test client");
  auto t = testing::Transfer(c.client, c.cfd(), c.server, c.sfd(), "ping", "pong");
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.received_by_b, "ping");
  EXPECT_EQ(t.received_by_a, "pong");
}

// ---- error-queue hygiene ---------------------------------------------------------

TEST_F(TlsStreamTest, FailedHandshakeDoesNotLeakIntoTheNextConnection) {
  TlsContext good_server = ServerCtx();
  TlsContext bad_server = ServerCtx([](TlsServerConfig& c) {
    c.certs = {{certs_->untrusted.cert, certs_->untrusted.key}};
  });
  TlsContext client = ClientCtx();
  {
    Conn bad = Connect(bad_server, client);
    auto hs = bad.Handshake();
    ASSERT_EQ(hs.client.status, TlsIo::kError);
    EXPECT_THAT(hs.client.detail, HasSubstr("unable to get local issuer certificate"));
    EXPECT_EQ(ERR_peek_error(), 0u) << "the failure must drain the queue";
  }
  // Same thread, fresh connection: succeeds, and its own later failure says
  // nothing about the old one.
  Conn good = Connect(good_server, client);
  auto hs = good.Handshake();
  ASSERT_TRUE(hs.ok()) << Describe(hs.client) << " / " << Describe(hs.server);
  EXPECT_EQ(SSL_get_verify_result(good.client.ssl()), X509_V_OK);
  good.fds.server.Reset();
  TlsResult r = ReadUntilEnd(good.client, good.cfd());
  EXPECT_EQ(r.status, TlsIo::kTruncated) << Describe(r);
  EXPECT_THAT(r.detail, Not(HasSubstr("issuer")));
  EXPECT_THAT(r.detail, Not(HasSubstr("verify")));
}

TEST_F(TlsStreamTest, StaleErrorFromOtherCodeDoesNotBreakIo) {
  // An embedder left an entry on this thread's queue; SSL_get_error would
  // read it as a failure of our call unless the queue is cleared first.
  TlsContext server = ServerCtx(), client = ClientCtx();
  Conn c = Connect(server, client);
  ASSERT_TRUE(c.Handshake().ok());
  ERR_raise(ERR_LIB_SSL, SSL_R_HTTP_REQUEST);
  char b;
  TlsResult r = c.client.Read(&b, 1);
  EXPECT_TRUE(r.would_block()) << Describe(r);
  ERR_raise(ERR_LIB_SSL, SSL_R_HTTP_REQUEST);
  r = c.client.Write("x", 1);
  EXPECT_TRUE(r.ok()) << Describe(r);
  ERR_clear_error();
}

// ---- hostile and broken peers ------------------------------------------------------

class HostileClientTest : public TlsStreamTest {
 protected:
  // A server stream on one end; the test writes raw bytes on the other.
  void SetUp() override {
    fds_ = testing::MakeTcpPair();
    server_ = TlsStream(NewServerSsl(ctx_, fds_.server.get()));
  }
  void SendRaw(const std::string& bytes) {
    ASSERT_EQ(send(fds_.client.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  TlsResult ServerHandshake() {
    return Drive([this] { return server_.Handshake(); }, fds_.server.get());
  }
  // A genuine ClientHello from an OpenSSL client, taken off the wire.
  std::string CaptureClientHello() {
    TlsContext client = ClientCtx();
    testing::TcpPair p = testing::MakeTcpPair();
    TlsStream c(NewClientSsl(client, p.client.get()));
    EXPECT_TRUE(c.Handshake().would_block());
    pollfd pfd{p.server.get(), POLLIN, 0};
    EXPECT_EQ(poll(&pfd, 1, 2000), 1);
    std::string hello(16384, '\0');
    const ssize_t n = recv(p.server.get(), hello.data(), hello.size(), 0);
    EXPECT_GT(n, 5);
    hello.resize(n > 0 ? n : 0);
    return hello;
  }

  TlsContext ctx_ = ServerCtx();
  testing::TcpPair fds_;
  TlsStream server_;
};

TEST_F(HostileClientTest, GarbageIsWrongVersionNumber) {
  SendRaw("\x7a\x7a\x7a\x7a\x7a garbage garbage garbage garbage\r\n");
  TlsResult r = ServerHandshake();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("wrong version number"));
}

TEST_F(HostileClientTest, PlainHttpIsNamed) {
  SendRaw("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  TlsResult r = ServerHandshake();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("http request"));
}

TEST_F(HostileClientTest, BinaryNoiseNeverCrashes) {
  // Random records that claim to be handshakes: any error, never a crash,
  // never a success, and a clean queue (the fixture checks).
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SetUp();
    std::string noise = RandomBytes(300, seed);
    noise[0] = 0x16;  // handshake record
    noise[1] = 0x03;
    noise[2] = static_cast<char>(seed % 4);
    SendRaw(noise);
    shutdown(fds_.client.get(), SHUT_WR);
    TlsResult r = ServerHandshake();
    EXPECT_TRUE(r.status == TlsIo::kError || r.status == TlsIo::kTruncated) << Describe(r);
    EXPECT_FALSE(r.detail.empty());
  }
}

TEST_F(HostileClientTest, TruncatedClientHelloThenCloseIsTruncated) {
  const std::string hello = CaptureClientHello();
  ASSERT_GT(hello.size(), 100u);
  SendRaw(hello.substr(0, hello.size() / 2));
  EXPECT_EQ(server_.Handshake().status, TlsIo::kWantRead);  // waits for the rest
  shutdown(fds_.client.get(), SHUT_WR);
  TlsResult r = ServerHandshake();
  EXPECT_EQ(r.status, TlsIo::kTruncated) << Describe(r);
  EXPECT_THAT(r.detail, HasSubstr("during the TLS handshake"));
}

TEST_F(HostileClientTest, TruncatedClientHelloThenResetIsEconnreset) {
  const std::string hello = CaptureClientHello();
  SendRaw(hello.substr(0, 20));
  EXPECT_EQ(server_.Handshake().status, TlsIo::kWantRead);
  const linger abort_close{1, 0};
  setsockopt(fds_.client.get(), SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
  fds_.client.Reset();
  TlsResult r = ServerHandshake();
  EXPECT_EQ(r.status, TlsIo::kError) << Describe(r);
  EXPECT_EQ(r.sys_errno, ECONNRESET);
}

TEST_F(HostileClientTest, WholeClientHelloGetsAServerHello) {
  // Control for the two tests above: the captured bytes are a real hello.
  SendRaw(CaptureClientHello());
  EXPECT_EQ(server_.Handshake().status, TlsIo::kWantRead);  // now waits for Finished
  pollfd pfd{fds_.client.get(), POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 2000), 1) << "a ServerHello should be on its way";
}

}  // namespace
}  // namespace zrelay
