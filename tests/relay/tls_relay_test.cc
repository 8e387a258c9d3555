// TLS legs through the relay: termination, origination and TLS<->TLS, with
// real OpenSSL peers on loopback and certificates minted at run time. Also
// what a TLS listener does before a client's handshake is finished (nothing
// that reaches the backend), and how a TLS peer that ends without
// close_notify ends its pair (kTruncated, after its bytes were delivered).
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

namespace zrelay {
namespace {

// The test's own peers write with SSL_write (write(2), no MSG_NOSIGNAL) to
// sockets the relay may have closed; zrelay's workers block SIGPIPE, the
// test's threads do not. A peer must see EPIPE, not kill the test binary
// (it died silently, one run in several, in a truncation test).
const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

}  // namespace

namespace {

using testing::CloseRecorder;
using testing::FillPattern;

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

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
uint64_t ReadExactly(int fd, uint64_t seed, uint64_t n) {
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
std::string RealClientHello(SSL_CTX* ctx) {
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
bool ConnectPendingTo(int port) {
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
    auto engine = Engine::Start(options);
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

// ---------------------------------------------------------------------------
// TLS listeners: the client's handshake comes before its backend connection.
// Parameters: relay mode, and whether zrelay originates TLS to the backend.

class TlsListenerTest : public TlsRelayBase,
                        public ::testing::WithParamInterface<std::tuple<RelayMode, bool>> {
 protected:
  void SetUp() override { StartEngine(std::get<0>(GetParam())); }
  bool backend_tls() const { return std::get<1>(GetParam()); }

  // Starts a listener relaying to `backend`; returns its address.
  Address Listen(const Address& backend, bool client_tls, Duration connect_timeout = seconds(5)) {
    ListenOptions options;
    options.address = testing::Loopback(AF_INET);
    options.backends.push_back(BackendOptions{backend, backend_tls() ? client_ctx_.get() : nullptr,
                                              backend_tls() ? "localhost" : ""});
    options.tls = client_tls ? server_ctx_.get() : nullptr;
    options.connect_timeout = connect_timeout;
    options.on_close = closes_.Callback();
    auto id = engine_->Listen(options);
    EXPECT_TRUE(id.ok()) << id.error().message();
    return engine_->ListenAddress(id.value()).value();
  }

  // Connects `n` clients to `listener` at once and has each do `act` to its
  // socket; waits until each one's pair closed (then closes the clients) and
  // returns those closes.
  std::vector<PairStats> ClientsThatNeverFinish(const Address& listener, size_t n,
                                                const std::function<void(UniqueFd&)>& act) {
    size_t before = closes_.count();
    std::vector<UniqueFd> clients;
    for (size_t i = 0; i < n; ++i) {
      auto c = testing::BlockingConnect(listener);
      EXPECT_TRUE(c.ok()) << c.error().message();
      if (!c.ok()) break;
      clients.push_back(std::move(c.value()));
    }
    for (UniqueFd& c : clients) act(c);
    auto closed = closes_.WaitFor(before + clients.size(), seconds(30));
    EXPECT_EQ(closed.size(), before + n);
    return std::vector<PairStats>(closed.begin() + static_cast<ptrdiff_t>(before), closed.end());
  }

  // A real TLS client through `listener`, byte-exact both ways; its backend
  // connection is the next one `backend` gets.
  void RealClient(const Address& listener, CountingBackend& backend, bool client_tls) {
    size_t before = closes_.count();
    auto c = testing::BlockingConnect(listener);
    ASSERT_TRUE(c.ok()) << c.error().message();
    auto next = [&] { return backend.Next(); };
    Converse(c->get(), client_tls, next, backend_tls(), 3 << 20, 1 << 20);
    auto closed = closes_.WaitFor(before + 1);
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed.back().cause, CloseCause::kDone) << closed.back().detail;
    EXPECT_EQ(closed.back().a_to_b, uint64_t{3} << 20);
    EXPECT_EQ(closed.back().b_to_a, uint64_t{1} << 20);
  }
};

// Regression test: a TLS listener used to connect each client's backend on
// accept, so clients that never finished a handshake each held a backend
// connection for the whole handshake timeout.
TEST_P(TlsListenerTest, SilentClientsNeverReachTheBackend) {
  testing::RaiseFdLimit();
  CountingBackend backend;
  Address listener = Listen(backend.address(), /*client_tls=*/true);
  auto closed = ClientsThatNeverFinish(listener, 300, [](UniqueFd&) {});
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kTimeout) << s.detail;
    EXPECT_NE(s.detail.find("TLS handshake not finished"), std::string::npos) << s.detail;
    EXPECT_EQ(s.a_to_b + s.b_to_a, 0u);
  }
  ASSERT_EQ(backend.Accepted(), 0u);
  RealClient(listener, backend, /*client_tls=*/true);
  EXPECT_EQ(backend.Accepted(), 1u);
}

TEST_P(TlsListenerTest, BrokenHandshakesNeverReachTheBackend) {
  CountingBackend backend;
  Address listener = Listen(backend.address(), /*client_tls=*/true);
  const std::string hello = RealClientHello(client_ctx_.get());
  ASSERT_GT(hello.size(), 100u);
  const std::string half_hello = hello.substr(0, hello.size() / 2);
  // Sends a real ClientHello and waits for the server's answer, so the
  // handshake is under way on both sides.
  auto hello_answered = [&](UniqueFd& c) {
    ASSERT_TRUE(testing::WriteAll(c.get(), hello));
    pollfd p{c.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
  };
  struct Case {
    const char* name;
    std::function<void(UniqueFd&)> act;
    CloseCause cause;
    const char* detail;
  };
  const Case cases[] = {
      {"garbage", [](UniqueFd& c) { testing::WriteAll(c.get(), std::string(300, '\x7f')); },
       CloseCause::kError, "leg A TLS handshake"},
      {"http", [](UniqueFd& c) { testing::WriteAll(c.get(), "GET / HTTP/1.1\r\n\r\n"); },
       CloseCause::kError, "http request"},
      {"half a ClientHello", [&](UniqueFd& c) { testing::WriteAll(c.get(), half_hello); },
       CloseCause::kTimeout, "TLS handshake not finished"},
      {"half a ClientHello, then FIN",
       [&](UniqueFd& c) {
         testing::WriteAll(c.get(), half_hello);
         ::shutdown(c.get(), SHUT_WR);
       },
       CloseCause::kReset, "leg A TLS handshake"},
      {"ClientHello answered, then FIN",
       [&](UniqueFd& c) {
         hello_answered(c);
         ::shutdown(c.get(), SHUT_WR);
       },
       CloseCause::kReset, "leg A TLS handshake"},
      {"ClientHello answered, then RST",
       [&](UniqueFd& c) {
         hello_answered(c);
         (void)SetLingerZero(c.get());
         c.Reset();
       },
       CloseCause::kReset, "leg A TLS handshake"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const PairStats& s : ClientsThatNeverFinish(listener, 40, c.act)) {
      EXPECT_EQ(s.cause, c.cause) << s.detail;
      EXPECT_NE(s.detail.find(c.detail), std::string::npos) << s.detail;
      EXPECT_EQ(s.a_to_b + s.b_to_a, 0u);
    }
    ASSERT_EQ(backend.Accepted(), 0u);
  }
  RealClient(listener, backend, /*client_tls=*/true);
  EXPECT_EQ(backend.Accepted(), 1u);
}

// A client that resets while its backend is being connected ends its pair
// at once (the connect is cancelled), TLS or not.
TEST_P(TlsListenerTest, ClientResetDuringTheBackendConnectEndsThePair) {
  // A backend whose accept queue is full: the kernel drops the SYNs sent to
  // it, so the relay's connect stays in progress.
  ListenSocketOptions full;
  full.backlog = 0;
  full.reuse_port = false;
  auto unanswering = ListenOn(testing::Loopback(AF_INET), full);
  ASSERT_TRUE(unanswering.ok()) << unanswering.error().message();
  Address backend = LocalAddress(unanswering->get()).value();
  auto queued = testing::BlockingConnect(backend);  // takes the only slot
  ASSERT_TRUE(queued.ok()) << queued.error().message();
  ASSERT_FALSE(ConnectPendingTo(backend.port()));
  for (bool client_tls : {false, true}) {
    SCOPED_TRACE(client_tls ? "TLS client" : "plain client");
    Address listener = Listen(backend, client_tls, seconds(10));
    size_t before = closes_.count();
    auto c = testing::BlockingConnect(listener);
    ASSERT_TRUE(c.ok()) << c.error().message();
    if (client_tls) {
      TlsPeer peer(client_ctx_.get(), c->get(), false);
      ASSERT_TRUE(peer.Handshake());
    }
    ASSERT_TRUE(testing::WaitFor([&] { return ConnectPendingTo(backend.port()); }));
    (void)SetLingerZero(c->get());
    c->Reset();
    auto closed = closes_.WaitFor(before + 1, seconds(5));
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed.back().cause, CloseCause::kReset) << closed.back().detail;
    EXPECT_NE(closed.back().detail.find("leg A while connecting the backend"), std::string::npos)
        << closed.back().detail;
    EXPECT_TRUE(testing::WaitFor([&] { return !ConnectPendingTo(backend.port()); }));
  }
}

// Plain listeners connect the backend as soon as a client is accepted.
TEST_P(TlsListenerTest, PlainListenerConnectsAtOnce) {
  CountingBackend backend;
  Address listener = Listen(backend.address(), /*client_tls=*/false);
  auto c = testing::BlockingConnect(listener);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_TRUE(testing::WaitFor([&] { return backend.Accepted() == 1; }));
  auto next = [&] { return backend.Next(); };
  Converse(c->get(), false, next, backend_tls(), 3 << 20, 1 << 20);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, uint64_t{3} << 20);
  EXPECT_EQ(closed[0].b_to_a, uint64_t{1} << 20);
  EXPECT_EQ(backend.Accepted(), 1u);
}

std::string ModeName(RelayMode mode) {
  switch (mode) {
    case RelayMode::kSplice: return "Splice";
    case RelayMode::kCopy: return "Copy";
    case RelayMode::kAuto: return "Auto";
  }
  return "Unknown";
}

INSTANTIATE_TEST_SUITE_P(ModesAndOrigination, TlsListenerTest,
                         ::testing::Combine(::testing::Values(RelayMode::kSplice, RelayMode::kCopy),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<RelayMode, bool>>& info) {
                           return ModeName(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "TlsBackend" : "PlainBackend");
                         });

// ---------------------------------------------------------------------------
// Truncation: a TLS peer whose stream ends without close_notify, in the
// orders real peers produce, per relay mode.

class TlsTruncationTest : public TlsRelayBase, public ::testing::WithParamInterface<RelayMode> {
 protected:
  void SetUp() override { StartEngine(GetParam()); }

  struct Legs {
    testing::LegPair a;  // client side
    testing::LegPair b;  // backend side
  };
  // Two leg pairs relayed by Pipe(), TLS as asked.
  Legs PipeLegs(bool client_tls, bool backend_tls) {
    before_ = closes_.count();
    auto a = testing::MakeLegPair(AF_INET);
    auto b = testing::MakeLegPair(AF_INET);
    EXPECT_TRUE(a.ok() && b.ok());
    Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
    if (client_tls) la.ssl = NewServerSsl(server_ctx_, la.fd.get());
    if (backend_tls) lb.ssl = NewClientSsl(client_ctx_, lb.fd.get(), "localhost");
    engine_->Pipe(std::move(la), std::move(lb), closes_.Callback());
    return Legs{std::move(a.value()), std::move(b.value())};
  }

  // How the pair PipeLegs() made last closed.
  PairStats Closed() {
    auto closed = closes_.WaitFor(before_ + 1);
    EXPECT_EQ(closed.size(), before_ + 1);
    return closed.size() > before_ ? closed[before_] : PairStats{};
  }

  size_t before_ = 0;  // pairs closed before the last PipeLegs()
};

// Regression test: the client's truncation used to end the pair as kError
// ("connection already failed") once the backend's next bytes were written
// towards it, dropping what the client had sent. Now every byte the client
// sent reaches the backend, the backend's bytes reach the client up to the
// truncation (the rest are discarded until the backend finishes), and the
// pair reports kTruncated.
TEST_P(TlsTruncationTest, ClientShutsDownWithoutCloseNotifyWhileTheBackendSends) {
  constexpr uint64_t kUp = 1 << 20;
  Legs legs = PipeLegs(/*client_tls=*/true, /*backend_tls=*/false);
  testing::Received at_backend;
  std::atomic<bool> request_ended{false};
  uint64_t backend_sent = 0;
  std::thread reader([&, fd = legs.b.app.get()] {
    at_backend = testing::ReceivePattern(fd, 1);
    request_ended = true;
  });
  // Streams until the request has ended, then finishes (at most 256 MiB).
  std::thread sender([&, fd = legs.b.app.get()] {
    constexpr uint64_t kChunk = 64 << 10;
    while (!request_ended && backend_sent < (uint64_t{256} << 20)) {
      std::vector<char> buf(kChunk);
      FillPattern(2, backend_sent, buf.data(), buf.size());
      if (!testing::WriteAll(fd, std::string(buf.data(), buf.size()))) break;
      backend_sent += kChunk;
    }
    ::shutdown(fd, SHUT_WR);
  });
  TlsReceived at_client;
  {
    TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
    ASSERT_TRUE(client.Handshake());
    ASSERT_TRUE(client.Send(1, kUp));
    ::shutdown(legs.a.app.get(), SHUT_WR);  // FIN, no close_notify; keeps reading
    at_client = client.ReceiveAll(2);
  }
  reader.join();
  sender.join();
  PairStats s = Closed();
  EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
  EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
  EXPECT_EQ(s.a_to_b, kUp);
  EXPECT_EQ(at_backend.bytes, kUp);
  EXPECT_EQ(at_backend.first_mismatch, -1);
  EXPECT_EQ(at_backend.error, 0);
  EXPECT_TRUE(at_client.intact);
  EXPECT_FALSE(at_client.close_notify);
  EXPECT_EQ(at_client.bytes, s.b_to_a);
  EXPECT_LE(s.b_to_a, backend_sent);
}

// The backend finishes first; then the client reads everything and closes
// its socket without close_notify.
TEST_P(TlsTruncationTest, ClientClosesWithoutCloseNotifyAfterTheBackendFinished) {
  constexpr uint64_t kUp = 1 << 20, kDown = 2 << 20;
  for (bool backend_tls : {false, true}) {
    SCOPED_TRACE(backend_tls ? "TLS backend" : "plain backend");
    Legs legs = PipeLegs(/*client_tls=*/true, backend_tls);
    uint64_t backend_got = 0;
    bool backend_saw_end = false;
    std::thread backend([&, fd = legs.b.app.get()] {
      if (backend_tls) {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        backend_got = peer.ReceiveAll(1, kUp).bytes;
        peer.Send(2, kDown);
        peer.CloseNotify();
        // zrelay passes the client's end on with close_notify of its own.
        TlsReceived rest = peer.ReceiveAll(1);
        backend_saw_end = rest.bytes == 0 && rest.close_notify;
      } else {
        backend_got = ReadExactly(fd, 1, kUp);
        testing::SendPattern(fd, 2, kDown);
        testing::Received rest = testing::ReceivePattern(fd, 1);
        backend_saw_end = rest.bytes == 0 && rest.error == 0;
      }
    });
    TlsReceived at_client;
    {
      TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
      ASSERT_TRUE(client.Handshake());
      ASSERT_TRUE(client.Send(1, kUp));
      at_client = client.ReceiveAll(2);
    }
    legs.a.app.Reset();  // everything read: close() sends FIN
    backend.join();
    PairStats s = Closed();
    EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
    EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
    EXPECT_EQ(s.a_to_b, kUp);
    EXPECT_EQ(s.b_to_a, kDown);
    EXPECT_EQ(backend_got, kUp);
    EXPECT_TRUE(backend_saw_end);
    EXPECT_TRUE(at_client.intact && at_client.close_notify);
    EXPECT_EQ(at_client.bytes, kDown);
  }
}

// The client shuts down without close_notify and the backend, having read
// it all, closes with nothing more to say.
TEST_P(TlsTruncationTest, ClientShutsDownWithoutCloseNotifyThenTheBackendCloses) {
  Legs legs = PipeLegs(/*client_tls=*/true, /*backend_tls=*/false);
  {
    TlsPeer client(client_ctx_.get(), legs.a.app.get(), false);
    ASSERT_TRUE(client.Handshake());
    ASSERT_TRUE(client.Send(1, 100000));
    ::shutdown(legs.a.app.get(), SHUT_WR);  // FIN, no close_notify
    testing::Received r = testing::ReceivePattern(legs.b.app.get(), 1);
    EXPECT_EQ(r.bytes, 100000u);
    EXPECT_EQ(r.first_mismatch, -1);
    EXPECT_EQ(r.error, 0);
    legs.b.app.Reset();
    TlsReceived at_client = client.ReceiveAll(2);
    EXPECT_EQ(at_client.bytes, 0u);
  }
  PairStats s = Closed();
  EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
  EXPECT_NE(s.detail.find("leg A"), std::string::npos) << s.detail;
  EXPECT_EQ(s.a_to_b, 100000u);
  EXPECT_EQ(s.b_to_a, 0u);
}

// Regression test: with TLS origination, a backend that ended without
// close_notify made the client's later FIN fail the pair as kError (its
// close_notify could not be sent); now a plain FIN goes to the backend and
// the pair reports kTruncated. Both orders: the backend's direction ends
// first, or the client's does.
TEST_P(TlsTruncationTest, BackendEndsWithoutCloseNotify) {
  constexpr uint64_t kUp = 700000, kDown = 1500000;
  for (bool client_tls : {false, true}) {
    for (bool backend_first : {true, false}) {
      SCOPED_TRACE(::testing::Message()
                   << "client_tls=" << client_tls << " backend_first=" << backend_first);
      Legs legs = PipeLegs(client_tls, /*backend_tls=*/true);
      uint64_t backend_got = 0;
      std::thread backend([&, fd = legs.b.app.get()] {
        TlsPeer peer(server_ctx_.get(), fd, true);
        if (!peer.Handshake()) return;
        // Backend first: it answers once it has the request, before the
        // client's end; else it reads to the client's end (close_notify).
        TlsReceived got = peer.ReceiveAll(1, backend_first ? kUp : kNoLimit);
        backend_got = got.intact && (backend_first || got.close_notify) ? got.bytes : 0;
        peer.Send(2, kDown);
        ::shutdown(fd, SHUT_WR);  // FIN, no close_notify
      });
      int fd = legs.a.app.get();
      std::unique_ptr<TlsPeer> tls;
      if (client_tls) {
        tls = std::make_unique<TlsPeer>(client_ctx_.get(), fd, false);
        ASSERT_TRUE(tls->Handshake());
      }
      auto finish = [&] {
        if (tls) tls->CloseNotify();
        ::shutdown(fd, SHUT_WR);
      };
      if (client_tls) {
        ASSERT_TRUE(tls->Send(1, kUp));
      } else {
        ASSERT_EQ(testing::SendPattern(fd, 1, kUp, 64 << 10, false), kUp);
      }
      if (!backend_first) finish();
      uint64_t at_client = 0;
      bool clean_end = false;
      if (client_tls) {
        // zrelay ends the client's leg with a close_notify of its own.
        TlsReceived r = tls->ReceiveAll(2);
        at_client = r.intact ? r.bytes : 0;
        clean_end = r.close_notify;
      } else {
        testing::Received r = testing::ReceivePattern(fd, 2);
        at_client = r.first_mismatch == -1 ? r.bytes : 0;
        clean_end = r.error == 0;
      }
      if (backend_first) finish();
      backend.join();
      // The backend's socket sees the relay's end of it: FIN, not reset.
      testing::Received rest = testing::ReceivePattern(legs.b.app.get(), 0);
      EXPECT_EQ(rest.error, 0);
      PairStats s = Closed();
      EXPECT_EQ(s.cause, CloseCause::kTruncated) << s.detail;
      EXPECT_NE(s.detail.find("leg B"), std::string::npos) << s.detail;
      EXPECT_EQ(s.a_to_b, kUp);
      EXPECT_EQ(s.b_to_a, kDown);
      EXPECT_EQ(backend_got, kUp);
      EXPECT_EQ(at_client, kDown);
      EXPECT_TRUE(clean_end);
    }
  }
}

// The same exchanges with close_notify on every TLS end are kDone.
TEST_P(TlsTruncationTest, CloseNotifyOnBothEndsIsDone) {
  size_t n = 0;
  for (auto [client_tls, backend_tls] :
       {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << "client_tls=" << client_tls << " backend_tls=" << backend_tls);
    Exchange(client_tls, backend_tls, 1 << 20, 2 << 20);
    auto closed = closes_.WaitFor(++n);
    ASSERT_EQ(closed.size(), n);
    EXPECT_EQ(closed.back().cause, CloseCause::kDone) << closed.back().detail;
    EXPECT_EQ(closed.back().a_to_b, uint64_t{1} << 20);
    EXPECT_EQ(closed.back().b_to_a, uint64_t{2} << 20);
  }
}

// A TLS peer that resets after its data is kReset, not kTruncated.
TEST_P(TlsTruncationTest, ResetIsStillReset) {
  for (bool client_side : {true, false}) {
    SCOPED_TRACE(client_side ? "client resets" : "backend resets");
    Legs legs = PipeLegs(client_side, !client_side);
    testing::LegPair& resetting = client_side ? legs.a : legs.b;
    testing::LegPair& other = client_side ? legs.b : legs.a;
    {
      TlsPeer peer(client_side ? client_ctx_.get() : server_ctx_.get(), resetting.app.get(),
                   !client_side);
      ASSERT_TRUE(peer.Handshake());
      ASSERT_TRUE(peer.Send(1, 100000));
      // The bytes are through before the reset, so it cannot overtake them.
      EXPECT_EQ(ReadExactly(other.app.get(), 1, 100000), 100000u);
    }
    (void)SetLingerZero(resetting.app.get());
    resetting.app.Reset();
    PairStats s = Closed();
    EXPECT_EQ(s.cause, CloseCause::kReset) << s.detail;
    EXPECT_EQ(s.a_to_b + s.b_to_a, 100000u);
    // The other peer hears of it as a reset too.
    EXPECT_EQ(testing::ReceivePattern(other.app.get(), 0).error, ECONNRESET);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, TlsTruncationTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return ModeName(info.param);
                         });

}  // namespace
}  // namespace zrelay
