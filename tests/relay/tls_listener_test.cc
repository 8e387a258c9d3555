// TLS listeners: what a listener does before a client's handshake is
// finished (nothing that reaches the backend), per relay mode and with or
// without TLS to the backend.
#include "tests/relay/tls_relay_base.h"

namespace zrelay {
namespace {

using testing::ConnectPendingTo;
using testing::CountingBackend;
using testing::RealClientHello;
using testing::TlsPeer;
using testing::TlsRelayBase;

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

INSTANTIATE_TEST_SUITE_P(ModesAndOrigination, TlsListenerTest,
                         ::testing::Combine(::testing::Values(RelayMode::kSplice, RelayMode::kCopy),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<RelayMode, bool>>& info) {
                           return std::string(RelayModeName(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) ? "TlsBackend" : "PlainBackend");
                         });

}  // namespace
}  // namespace zrelay
