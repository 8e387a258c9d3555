// PROXY protocol at a listener: a header read from clients (v1 or v2, from
// IPv4 and IPv6 peers) gives the pair its client address and is not relayed;
// an untrusted peer, or a bad, truncated, oversized or late header, is
// closed before any backend is connected. send_proxy writes a header to the
// backend before the stream: checked byte for byte by a raw backend.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/cidr.h"
#include "engine/socket.h"
#include "relay/proxy_protocol.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/recording_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/ssl/client_hello_capture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::Exchange;
using testing::RecordingBackend;

std::string Payload(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  testing::FillPattern(seed, 0, out.data(), out.size());
  return out;
}

// A v2 PROXY header from 127.0.0.1:`source_port` to 127.0.0.1:`dest_port`,
// written out by hand from the spec (not by the writer under test).
std::string V2Header127(int source_port, int dest_port) {
  std::string h("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
  h += std::string("\x21\x11\x00\x0C", 4);  // v2 PROXY, TCP over IPv4, 12 bytes
  h += std::string("\x7F\x00\x00\x01\x7F\x00\x00\x01", 8);
  for (int port : {source_port, dest_port}) {
    h += static_cast<char>(port >> 8);
    h += static_cast<char>(port & 0xff);
  }
  return h;
}

Address Parse(const std::string& text) { return Address::Parse(text).value(); }

CidrBlock Cidr(const std::string& text) { return CidrBlock::Parse(text).value(); }

class ProxyProtocolRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    options.mode = RelayMode::kSplice;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options(int family = AF_INET) {
    ListenOptions options;
    options.address = testing::Loopback(family);
    options.name = "edge";
    options.backends.push_back(BackendOptions{backend_.address(), nullptr, {}});
    options.proxy_protocol = true;
    options.preamble_timeout = milliseconds(300);
    options.on_close = closes_.Callback();
    return options;
  }

  Address Listen(const ListenOptions& options) { return testing::ListenOrFail(*engine_, options); }

  // One client sends `header` then a payload: the backend must get the
  // payload alone, and the pair report `client` (empty: the client
  // socket's own address).
  void ExpectAccepted(const Address& listener, const std::string& header, std::string client) {
    const std::string payload = Payload(5000, header.size());
    const size_t before = backend_.received().size();
    Address local;
    EXPECT_EQ(Exchange(listener, {header + payload}, milliseconds(0), &local), "ok");
    if (client.empty()) client = local.ToString();
    const std::vector<std::string> got = backend_.received();
    ASSERT_EQ(got.size(), before + 1);
    EXPECT_TRUE(got.back() == payload) << "the backend got " << got.back().size() << " bytes";
    auto closed = closes_.WaitFor(before + 1);
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed.back().cause, CloseCause::kDone) << closed.back().detail;
    EXPECT_EQ(closed.back().client.ToString(), client);
    EXPECT_EQ(closed.back().a_to_b, payload.size());
  }

  RecordingBackend backend_{"ok"};
  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ProxyProtocolRelayTest, V1AndV2FromAnIpv4Client) {
  const Address listener = Listen(Options(AF_INET));
  ExpectAccepted(listener, "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n", "192.0.2.1:51234");
  ExpectAccepted(listener, ProxyHeaderV2(Parse("203.0.113.9:4000"), Parse("198.51.100.1:443")),
                 "203.0.113.9:4000");
  // An IPv6 source told by an IPv4 peer.
  ExpectAccepted(listener, "PROXY TCP6 2001:db8::1 2001:db8::2 4001 443\r\n", "[2001:db8::1]:4001");
}

TEST_F(ProxyProtocolRelayTest, V1AndV2FromAnIpv6Client) {
  const Address listener = Listen(Options(AF_INET6));
  ExpectAccepted(listener, ProxyHeaderV1(Parse("[2001:db8::7]:1234"), Parse("[2001:db8::2]:443")),
                 "[2001:db8::7]:1234");
  ExpectAccepted(listener, ProxyHeaderV2(Parse("[2001:db8::8]:1235"), Parse("[2001:db8::2]:443")),
                 "[2001:db8::8]:1235");
}

TEST_F(ProxyProtocolRelayTest, LocalAndUnknownKeepThePeersAddress) {
  const Address listener = Listen(Options());
  for (const std::string& header :
       {ProxyHeaderV2(Address(), Address()), std::string("PROXY UNKNOWN\r\n")}) {
    ExpectAccepted(listener, header, "");
  }
}

TEST_F(ProxyProtocolRelayTest, UntrustedPeerIsClosedAtAccept) {
  ListenOptions options = Options();
  options.proxy_protocol_from = {Cidr("192.0.2.0/24"), Cidr("::1/128")};
  const Address listener = Listen(options);
  auto fd = testing::BlockingConnect(listener);
  ASSERT_TRUE(fd.ok());
  testing::SetBlocking(fd->get(), true);
  // The header may or may not be written before the close: it is not read.
  (void)testing::WriteAll(fd->get(), "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\nhello");
  EXPECT_EQ(testing::ReadUntilEof(fd->get()), "");
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kError);
  EXPECT_EQ(closed[0].detail.rfind("listener edge: PROXY header from untrusted peer 127.0.0.1:", 0),
            0u)
      << closed[0].detail;
  EXPECT_EQ(backend_.accepted(), 0);
}

TEST_F(ProxyProtocolRelayTest, BadHeadersCloseWithoutABackend) {
  const Address listener = Listen(Options());
  std::string oversized_v2 = ProxyHeaderV2(Parse("192.0.2.1:1"), Parse("192.0.2.2:2"));
  oversized_v2[14] = '\x7f';  // the length: 32 KiB of addresses and TLVs
  struct Case {
    std::string sent;
    CloseCause cause;
    std::string detail;
  };
  const std::vector<Case> cases = {
      {"PROXY TCP4 192.0.2.1 nonsense 1 2\r\nhello", CloseCause::kError, "bad PROXY header: "},
      {"GET / HTTP/1.1\r\n\r\n", CloseCause::kError, "bad PROXY header: "},
      {oversized_v2, CloseCause::kError, "bad PROXY header: "},
      {std::string(200, 'P'), CloseCause::kError, "bad PROXY header: "},
      {"PROXY TCP4 192.0.2.1 198.51", CloseCause::kError,
       "client closed within its PROXY header (27 bytes)"},
      {"", CloseCause::kError, "client closed before its PROXY header was complete"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.detail);
    const size_t before = closes_.count();
    EXPECT_EQ(Exchange(listener, {c.sent}), "");
    auto closed = closes_.WaitFor(before + 1);
    ASSERT_EQ(closed.size(), before + 1);
    EXPECT_EQ(closed.back().cause, c.cause);
    EXPECT_EQ(closed.back().detail.rfind("listener edge: " + c.detail, 0), 0u)
        << closed.back().detail;
  }
  EXPECT_EQ(backend_.accepted(), 0);
}

TEST_F(ProxyProtocolRelayTest, LateOrUnfinishedHeadersTimeOut) {
  const Address listener = Listen(Options());
  std::vector<UniqueFd> clients;
  for (const std::string& sent :
       {std::string(), std::string("PROXY TCP4 192.0.2.1 "),
        ProxyHeaderV2(Parse("192.0.2.1:1"), Parse("192.0.2.2:2")).substr(0, 20)}) {
    auto fd = testing::BlockingConnect(listener);
    ASSERT_TRUE(fd.ok());
    ASSERT_TRUE(testing::WriteAll(fd->get(), sent));
    clients.push_back(std::move(fd).value());
  }
  auto closed = closes_.WaitFor(3, seconds(10));
  ASSERT_EQ(closed.size(), 3u);
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kTimeout);
    EXPECT_EQ(s.detail, "listener edge: preamble: PROXY header not complete within 300 ms");
  }
  EXPECT_EQ(backend_.accepted(), 0);
}

// A listener without proxy_protocol whose backend asks for a header: the
// client's own address and the listener's.
TEST_F(ProxyProtocolRelayTest, SendProxyWritesTheHeaderBeforeTheStream) {
  for (auto version : {BackendOptions::SendProxy::kV1, BackendOptions::SendProxy::kV2}) {
    ListenOptions options = Options();
    options.proxy_protocol = false;
    options.backends[0].send_proxy = version;
    const Address listener = Listen(options);
    auto fd = testing::BlockingConnect(listener);
    ASSERT_TRUE(fd.ok());
    testing::SetBlocking(fd->get(), true);
    const Address client = LocalAddress(fd->get()).value();
    const std::string payload = Payload(100 << 10, 3);
    ASSERT_TRUE(testing::WriteAll(fd->get(), payload));
    ::shutdown(fd->get(), SHUT_WR);
    EXPECT_EQ(testing::ReadUntilEof(fd->get()), "ok");
    const std::string header = version == BackendOptions::SendProxy::kV1
                                   ? "PROXY TCP4 127.0.0.1 127.0.0.1 " +
                                         std::to_string(client.port()) + " " +
                                         std::to_string(listener.port()) + "\r\n"
                                   : V2Header127(client.port(), listener.port());
    ASSERT_FALSE(backend_.received().empty());
    EXPECT_TRUE(backend_.received().back() == header + payload)
        << "the backend got " << backend_.received().back().substr(0, 60);
  }
}

TEST_F(ProxyProtocolRelayTest, ClientAddressIsCarriedThroughToTheBackend) {
  ListenOptions options = Options(AF_INET6);
  options.proxy_protocol_from = {Cidr("::1/128")};
  options.backends[0].send_proxy = BackendOptions::SendProxy::kV2;
  const Address listener = Listen(options);
  const std::string payload = Payload(64 << 10, 4);
  EXPECT_EQ(Exchange(listener, {"PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n", payload},
                     milliseconds(20)),
            "ok");
  ASSERT_EQ(backend_.received().size(), 1u);
  const std::string header = ProxyHeaderV2(Parse("192.0.2.1:51234"), Parse("198.51.100.1:443"));
  EXPECT_TRUE(backend_.received()[0] == header + payload);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].client.ToString(), "192.0.2.1:51234");
}

TEST_F(ProxyProtocolRelayTest, HeaderThenClientHelloRoutesByName) {
  RecordingBackend routed("routed");
  ListenOptions options = Options();
  options.route_by = RouteBy::kSni;
  options.routes.push_back(RouteOptions{"api", {"api.example"}, {{routed.address(), nullptr, {}}}});
  const Address listener = Listen(options);
  const std::string hello = testing::CaptureClientHello({}, "api.example");
  EXPECT_EQ(Exchange(listener, {"PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n" + hello}),
            "routed");
  ASSERT_EQ(routed.received().size(), 1u);
  EXPECT_TRUE(routed.received()[0] == hello);
  EXPECT_EQ(backend_.accepted(), 0);
  EXPECT_EQ(closes_.WaitFor(1).at(0).client.ToString(), "192.0.2.1:51234");
}

TEST_F(ProxyProtocolRelayTest, ProxyFromWithoutProxyProtocolIsRefused) {
  ListenOptions options = Options();
  options.proxy_protocol = false;
  options.proxy_protocol_from = {Cidr("10.0.0.0/8")};
  auto id = engine_->Listen(options);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(),
            "listener edge: proxy_protocol_from is set but proxy_protocol is off");
}

}  // namespace
}  // namespace zrelay
