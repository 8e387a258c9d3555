// route_by kSni: a client's ClientHello, peeked and never consumed, picks
// the route whose server names match (exact first, then the longest
// wildcard), else the listener's own backends. The backend gets the TLS
// stream byte for byte; a client that sends no ClientHello in time, or
// something else, reaches no backend.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/recording_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/ssl/client_hello_capture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CaptureClientHello;
using testing::CloseRecorder;
using testing::Exchange;
using testing::RecordingBackend;

// What a client sends after its ClientHello: the backend must get it as is.
std::string Payload(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  testing::FillPattern(seed, 0, out.data(), out.size());
  return out;
}

class SniRouteTest : public ::testing::Test {
 protected:
  void SetUp() override { StartEngine(RelayMode::kSplice); }

  void StartEngine(RelayMode mode) {
    EngineOptions options;
    options.workers = 2;
    options.mode = mode;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options() {
    ListenOptions options;
    options.address = testing::Loopback();
    options.name = "tls-in";
    options.backends.push_back(BackendOptions{fallback_.address(), nullptr, {}});
    options.route_by = RouteBy::kSni;
    options.routes.push_back(RouteOptions{"a", {"a.example"}, {{a_.address(), nullptr, {}}}});
    options.routes.push_back(RouteOptions{"wild", {"*.example"}, {{wild_.address(), nullptr, {}}}});
    options.routes.push_back(
        RouteOptions{"eu", {"*.eu.example", "EU.example"}, {{eu_.address(), nullptr, {}}}});
    options.preamble_timeout = milliseconds(300);
    options.on_close = closes_.Callback();
    return options;
  }

  Address Listen(const ListenOptions& options) { return testing::ListenOrFail(*engine_, options); }

  int BackendConnections() {
    return fallback_.accepted() + a_.accepted() + wild_.accepted() + eu_.accepted();
  }

  // Sends a ClientHello naming `sni` and a payload; expects `backend` to
  // answer and to have received both, untouched.
  void ExpectRoutedTo(const Address& listener, const std::string& sni, RecordingBackend& backend,
                      const std::string& reply) {
    SCOPED_TRACE("server name '" + sni + "'");
    const size_t before = backend.received().size();
    const std::string hello = CaptureClientHello({"h2"}, sni);
    const std::string payload = Payload(3000, sni.size());
    EXPECT_EQ(Exchange(listener, {hello + payload}), reply);
    const std::vector<std::string> got = backend.received();
    ASSERT_EQ(got.size(), before + 1);
    EXPECT_TRUE(got.back() == hello + payload) << "the backend got other bytes";
  }

  RecordingBackend fallback_{"fallback"};
  RecordingBackend a_{"a"};
  RecordingBackend wild_{"wild"};
  RecordingBackend eu_{"eu"};
  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(SniRouteTest, ExactNameWinsOverWildcardCaseInsensitively) {
  const Address listener = Listen(Options());
  ExpectRoutedTo(listener, "a.example", a_, "a");
  ExpectRoutedTo(listener, "A.EXAMPLE", a_, "a");
  ExpectRoutedTo(listener, "eu.example", eu_, "eu");  // exact, though "*.example" matches too
  auto closed = closes_.WaitFor(3);
  ASSERT_EQ(closed.size(), 3u);
  for (const PairStats& s : closed) EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
  EXPECT_EQ(closed[0].backend.ToString(), a_.address().ToString());
}

TEST_F(SniRouteTest, LongestWildcardWins) {
  const Address listener = Listen(Options());
  ExpectRoutedTo(listener, "x.eu.example", eu_, "eu");
  ExpectRoutedTo(listener, "deep.x.eu.example", eu_, "eu");
  ExpectRoutedTo(listener, "b.example", wild_, "wild");
  ExpectRoutedTo(listener, "x.y.example", wild_, "wild");
}

TEST_F(SniRouteTest, UnknownNameBareDomainAndNoSniUseTheListenersBackends) {
  const Address listener = Listen(Options());
  ExpectRoutedTo(listener, "other.test", fallback_, "fallback");
  ExpectRoutedTo(listener, "example", fallback_, "fallback");  // "*.example" needs a label
  ExpectRoutedTo(listener, "", fallback_, "fallback");         // no server_name extension
  EXPECT_EQ(a_.accepted() + wild_.accepted() + eu_.accepted(), 0);
}

TEST_F(SniRouteTest, ClientHelloSplitOverSeveralSegments) {
  const Address listener = Listen(Options());
  const std::string hello = CaptureClientHello({"h2", "http/1.1"}, "a.example");
  ASSERT_GT(hello.size(), 60u);
  const std::string payload = Payload(1000, 5);
  // Pieces cut inside the record header, inside the extensions, then the rest.
  const std::vector<std::string> pieces = {hello.substr(0, 3), hello.substr(3, 40),
                                           hello.substr(43), payload};
  EXPECT_EQ(Exchange(listener, pieces, milliseconds(40)), "a");
  ASSERT_EQ(a_.received().size(), 1u);
  EXPECT_TRUE(a_.received()[0] == hello + payload);
}

TEST_F(SniRouteTest, NotTlsIsClosedBeforeAnyBackend) {
  const Address listener = Listen(Options());
  EXPECT_EQ(Exchange(listener, {"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"}), "");
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kError);
  EXPECT_NE(closed[0].detail.find("listener tls-in: not TLS"), std::string::npos)
      << closed[0].detail;
  EXPECT_EQ(BackendConnections(), 0);
  EXPECT_EQ(closed[0].backend.family(), AF_UNSPEC);  // no endpoint was even tried
}

TEST_F(SniRouteTest, SilenceAndHalfAHelloTimeOutBeforeAnyBackend) {
  const Address listener = Listen(Options());
  const std::string hello = CaptureClientHello({}, "a.example");
  std::vector<UniqueFd> clients;
  for (const std::string& sent : {std::string(), hello.substr(0, hello.size() / 2)}) {
    auto fd = testing::BlockingConnect(listener);
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(testing::WriteAll(fd->get(), sent));
    clients.push_back(std::move(fd).value());
  }
  auto closed = closes_.WaitFor(2, seconds(10));
  ASSERT_EQ(closed.size(), 2u);
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kTimeout);
    EXPECT_NE(s.detail.find("preamble: TLS ClientHello not complete within 300 ms"),
              std::string::npos)
        << s.detail;
  }
  EXPECT_EQ(BackendConnections(), 0);
}

TEST_F(SniRouteTest, ClientClosingWithinTheHelloReachesNoBackend) {
  const Address listener = Listen(Options());
  const std::string hello = CaptureClientHello({}, "a.example");
  EXPECT_EQ(Exchange(listener, {hello.substr(0, 20)}), "");
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kError);
  EXPECT_NE(closed[0].detail.find("client closed within its TLS ClientHello (20 bytes)"),
            std::string::npos)
      << closed[0].detail;
  EXPECT_EQ(BackendConnections(), 0);
}

TEST_F(SniRouteTest, RoutedStreamIsSplicedUntouched) {
  const Address listener = Listen(Options());
  const uint64_t spliced_before = engine_->Stats().total.bytes_spliced;
  const std::string hello = CaptureClientHello({"h2"}, "x.eu.example");
  const std::string payload = Payload(4 << 20, 9);
  EXPECT_EQ(Exchange(listener, {hello, payload}), "eu");
  ASSERT_EQ(eu_.received().size(), 1u);
  EXPECT_EQ(eu_.received()[0].size(), hello.size() + payload.size());
  EXPECT_TRUE(eu_.received()[0] == hello + payload);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].a_to_b, hello.size() + payload.size());
  EXPECT_GT(engine_->Stats().total.bytes_spliced, spliced_before);
}

TEST_F(SniRouteTest, CopyModeRoutesToo) {
  engine_.reset();
  StartEngine(RelayMode::kCopy);
  const Address listener = Listen(Options());
  ExpectRoutedTo(listener, "b.example", wild_, "wild");
  EXPECT_EQ(engine_->Stats().total.bytes_spliced, 0u);
}

TEST_F(SniRouteTest, MetricsListEachRoutesEndpoints) {
  ListenOptions options = Options();
  // The same address in two pools: each has its own counters.
  options.routes[1].backends.push_back({a_.address(), nullptr, {}});
  auto id = engine_->Listen(options);
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address listener = engine_->ListenAddress(*id).value();
  ExpectRoutedTo(listener, "a.example", a_, "a");
  ASSERT_EQ(closes_.WaitFor(1).size(), 1u);
  const MetricsSnapshot metrics = engine_->Metrics();
  ASSERT_EQ(metrics.listeners.size(), 1u);
  std::vector<std::pair<std::string, std::string>> endpoints;
  uint64_t connects_to_a = 0;
  for (const BackendMetrics& b : metrics.listeners[0].backends) {
    endpoints.emplace_back(b.route, b.address);
    if (b.address == a_.address().ToString()) connects_to_a += b.connects_total;
  }
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"", fallback_.address().ToString()},
      {"a", a_.address().ToString()},
      {"wild", wild_.address().ToString()},
      {"wild", a_.address().ToString()},
      {"eu", eu_.address().ToString()}};
  EXPECT_EQ(endpoints, expected);
  EXPECT_EQ(connects_to_a, 1u);  // counted once, in route a's pool
  EXPECT_EQ(metrics.listeners[0].backends[1].connects_total, 1u);
}

TEST_F(SniRouteTest, InvalidRoutingOptionsAreRefusedNamingTheRoute) {
  auto refused = [&](const ListenOptions& options) {
    auto id = engine_->Listen(options);
    EXPECT_FALSE(id.ok());
    return id.ok() ? std::string() : id.error().message();
  };
  ListenOptions no_names = Options();
  no_names.routes[1].server_names.clear();
  EXPECT_EQ(refused(no_names), "listener tls-in: route wild: no server names");
  ListenOptions no_backends = Options();
  no_backends.routes[2].backends.clear();
  EXPECT_EQ(refused(no_backends), "listener tls-in: route eu: no backends");
  ListenOptions bad_wildcard = Options();
  bad_wildcard.routes[0].server_names = {"a*.example"};
  EXPECT_NE(refused(bad_wildcard).find("route a: server name 'a*.example'"), std::string::npos);
  ListenOptions same_name = Options();
  same_name.routes[2].name = "a";
  EXPECT_EQ(refused(same_name), "listener tls-in: route a: the name is used by another route too");
  ListenOptions unnamed_bad = Options();
  unnamed_bad.routes[1].name.clear();
  unnamed_bad.routes[1].server_names = {"*"};
  EXPECT_NE(refused(unnamed_bad).find("route 2: server name '*'"), std::string::npos);
  ListenOptions no_timeout = Options();
  no_timeout.preamble_timeout = Duration::zero();
  EXPECT_EQ(refused(no_timeout), "listener tls-in: preamble_timeout must be > 0");

  TlsClientConfig config;
  config.verify = false;
  auto ctx = BuildClientContext(config);
  ASSERT_TRUE(ctx.ok());
  ListenOptions terminating = Options();
  terminating.tls = ctx->get();
  EXPECT_NE(refused(terminating).find("route_by sni"), std::string::npos);
}

}  // namespace
}  // namespace zrelay
