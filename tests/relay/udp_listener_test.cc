// UDP listeners: flows per client address, byte-exact datagrams of every
// size both ways, stickiness and spreading, idle expiry, the address a
// reply leaves from, unreachable endpoints (retried or closed), the flow
// cap, Drain, Reconfigure and bad options. Real sockets on loopback; each
// backend tags its replies so a test sees which one answered.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <set>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/relay/udp_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::DeadUdpPort;
using testing::Loopback;
using testing::Pattern;
using testing::ReceiveDatagram;
using testing::UdpClient;
using testing::UdpEchoBackend;

class UdpListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto engine = testing::StartEngine({.workers = 2});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
  }

  ListenOptions Options(const std::vector<Address>& backends, int family = AF_INET) {
    ListenOptions o;
    o.name = "udp";
    o.protocol = Protocol::kUdp;
    o.address = Loopback(family);
    for (const Address& b : backends) o.backends.push_back(BackendOptions{b, nullptr, ""});
    o.on_close = closes_.Callback();
    return o;
  }

  Address Listen(const ListenOptions& options) {
    auto id = engine_->Listen(options);
    EXPECT_TRUE(id.ok()) << id.error().message();
    id_ = *id;
    return engine_->ListenAddress(*id).value();
  }

  // Sends `payload` on `client` and returns the reply (empty on none).
  static std::string Ask(int client, const std::string& payload) {
    EXPECT_EQ(::send(client, payload.data(), payload.size(), 0),
              static_cast<ssize_t>(payload.size()));
    return ReceiveDatagram(client).value_or("");
  }

  std::unique_ptr<Engine> engine_;
  CloseRecorder closes_;
  ListenerId id_ = 0;
};

TEST_F(UdpListenerTest, ManyFlowsEveryDatagramSizeByteExact) {
  UdpEchoBackend backend(AF_INET, "A");
  const Address at = Listen(Options({backend.address()}));
  const std::vector<size_t> sizes = {1, 64, 1400, 9000, 32768, 61440, 65506};
  constexpr int kClients = 200;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(UdpClient(at));
  uint64_t bytes = 0;
  for (int i = 0; i < kClients; ++i) {
    const size_t size = sizes[i % sizes.size()];
    const std::string payload = Pattern(size, i);
    ASSERT_EQ(Ask(clients[i].get(), payload), "A" + payload) << "client " << i << " size " << size;
    bytes += size;
  }
  // A second round on the same sockets: the same flows.
  for (int i = 0; i < kClients; ++i) {
    const std::string payload = Pattern(100, 1000 + i);
    ASSERT_EQ(Ask(clients[i].get(), payload), "A" + payload);
    bytes += 100;
  }
  const EngineStats stats = engine_->Stats();
  EXPECT_EQ(stats.total.udp.flows_created, kClients);
  EXPECT_EQ(stats.total.udp.flows_open, kClients);
  EXPECT_EQ(stats.total.udp.datagrams_client_to_backend, 2 * kClients);
  EXPECT_EQ(stats.total.udp.datagrams_backend_to_client, 2 * kClients);
  EXPECT_EQ(stats.total.udp.bytes_client_to_backend, bytes);
  EXPECT_EQ(stats.total.udp.bytes_backend_to_client, bytes + 2 * kClients);  // the tags
  EXPECT_EQ(stats.total.udp.send_drops, 0u);
  EXPECT_EQ(backend.datagrams(), 2u * kClients);
  const MetricsSnapshot m = engine_->Metrics();
  ASSERT_EQ(m.listeners.size(), 1u);
  EXPECT_EQ(m.listeners[0].protocol, "udp");
  EXPECT_EQ(m.listeners[0].accepted_total, kClients);
  EXPECT_EQ(m.listeners[0].open, kClients);
  EXPECT_EQ(m.listeners[0].datagrams_client_to_backend_total, 2 * kClients);
  EXPECT_EQ(m.listeners[0].bytes_client_to_backend_total, bytes);
  ASSERT_EQ(m.listeners[0].backends.size(), 1u);
  EXPECT_EQ(m.listeners[0].backends[0].connections_open, kClients);
}

TEST_F(UdpListenerTest, FlowsStickToABackendAndSpreadAcrossThem) {
  UdpEchoBackend a(AF_INET, "A");
  UdpEchoBackend b(AF_INET, "B");
  const Address at = Listen(Options({a.address(), b.address()}));
  std::map<char, int> per_backend;
  for (int i = 0; i < 40; ++i) {
    UniqueFd client = UdpClient(at);
    const std::string first = Ask(client.get(), "hello");
    ASSERT_EQ(first.substr(1), "hello");
    for (int k = 0; k < 5; ++k) {
      const std::string payload = Pattern(200, i * 10 + k);
      EXPECT_EQ(Ask(client.get(), payload), first.substr(0, 1) + payload);
    }
    ++per_backend[first[0]];
  }
  EXPECT_GT(per_backend['A'], 0);
  EXPECT_GT(per_backend['B'], 0);
}

TEST_F(UdpListenerTest, MaglevSendsAClientBackToItsBackendAfterItsFlowExpired) {
  UdpEchoBackend a(AF_INET, "A");
  UdpEchoBackend b(AF_INET, "B");
  UdpEchoBackend c(AF_INET, "C");
  ListenOptions o = Options({a.address(), b.address(), c.address()});
  o.balance = BalancePolicy::kMaglev;
  o.idle_timeout = milliseconds(100);
  const Address at = Listen(o);
  for (int i = 0; i < 10; ++i) {
    UniqueFd client = UdpClient(at);
    const std::string first = Ask(client.get(), "x");
    ASSERT_EQ(first.size(), 2u);
    // The flow expires; the next datagram makes a new one.
    auto none_open = [&] { return engine_->Stats().total.udp.flows_open == 0; };
    ASSERT_TRUE(testing::WaitFor(none_open));
    EXPECT_EQ(Ask(client.get(), "y"), first.substr(0, 1) + "y");
    ASSERT_TRUE(testing::WaitFor(none_open));
  }
  EXPECT_EQ(engine_->Stats().total.udp.flows_created, 20u);
}

TEST_F(UdpListenerTest, AnIdleFlowExpiresAndReportsItsBytes) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.idle_timeout = milliseconds(150);
  const Address at = Listen(o);
  UniqueFd client = UdpClient(at);
  ASSERT_EQ(Ask(client.get(), "12345"), "A12345");
  ASSERT_EQ(Ask(client.get(), "678"), "A678");
  const std::vector<PairStats> closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kTimeout);
  EXPECT_EQ(closed[0].a_to_b, 8u);
  EXPECT_EQ(closed[0].b_to_a, 10u);
  EXPECT_EQ(closed[0].backend.ToString(), backend.address().ToString());
  EXPECT_EQ(closed[0].client.ToString(), LocalAddress(client.get())->ToString());
  EXPECT_NE(closed[0].detail.find("listener udp: idle for 150 ms"), std::string::npos)
      << closed[0].detail;
  EXPECT_EQ(engine_->Stats().total.udp.flows_open, 0u);
  // The same client again: a new flow, answered as the first was.
  EXPECT_EQ(Ask(client.get(), "again"), "Aagain");
  EXPECT_EQ(engine_->Stats().total.udp.flows_created, 2u);
}

TEST_F(UdpListenerTest, AFlowEndsOnceEveryDatagramHadItsResponses) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.udp.responses = 1;
  const Address at = Listen(o);
  UniqueFd client = UdpClient(at);
  EXPECT_EQ(Ask(client.get(), "one"), "Aone");
  const std::vector<PairStats> closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone);
  EXPECT_EQ(closed[0].a_to_b, 3u);
  EXPECT_EQ(closed[0].b_to_a, 4u);
  // The next request from the same port is a new flow, answered as well.
  EXPECT_EQ(Ask(client.get(), "two"), "Atwo");
  EXPECT_EQ(closes_.WaitFor(2).size(), 2u);
  EXPECT_EQ(engine_->Stats().total.udp.flows_created, 2u);
  EXPECT_EQ(engine_->Stats().total.udp.flows_open, 0u);
}

TEST_F(UdpListenerTest, AFlowWaitingForMoreResponsesStaysOpen) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.udp.responses = 2;  // the echo sends one: the flow never has them all
  o.idle_timeout = milliseconds(300);
  const Address at = Listen(o);
  UniqueFd client = UdpClient(at);
  EXPECT_EQ(Ask(client.get(), "one"), "Aone");
  EXPECT_EQ(Ask(client.get(), "two"), "Atwo");
  EXPECT_EQ(engine_->Stats().total.udp.flows_created, 1u);
  const std::vector<PairStats> closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kTimeout);
}

TEST_F(UdpListenerTest, RelaysOverIpv6) {
  UdpEchoBackend backend(AF_INET6, "6");
  const Address at = Listen(Options({backend.address()}, AF_INET6));
  for (int i = 0; i < 20; ++i) {
    UniqueFd client = UdpClient(at);
    const std::string payload = Pattern(1000 + i * 2000, i);
    EXPECT_EQ(Ask(client.get(), payload), "6" + payload);
  }
}

TEST_F(UdpListenerTest, AWildcardListenerAnswersFromTheAddressTheClientSentTo) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.address = Address::Parse("0.0.0.0:0").value();
  const Address at = Listen(o);
  // 127.0.0.2 is loopback too, but not the address the kernel would pick
  // for a reply to 127.0.0.1 by route.
  const Address to = Address::Parse("127.0.0.2:" + std::to_string(at.port())).value();
  UniqueFd client(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::sendto(client.get(), "ping", 4, 0, to.sockaddr(), to.length()), 4);
  ASSERT_TRUE(ReceiveDatagram(client.get()).has_value());
  // recvfrom says where the reply came from: a connected socket would have
  // dropped it otherwise. Ask again to read the source of one.
  ASSERT_EQ(::sendto(client.get(), "pong", 4, 0, to.sockaddr(), to.length()), 4);
  struct pollfd p {
    client.get(), POLLIN, 0
  };
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  char buffer[16];
  struct sockaddr_storage from {};
  socklen_t from_length = sizeof(from);
  ASSERT_EQ(::recvfrom(client.get(), buffer, sizeof(buffer), 0,
                       reinterpret_cast<struct sockaddr*>(&from), &from_length),
            5);
  EXPECT_EQ(Address(reinterpret_cast<struct sockaddr*>(&from), from_length).ToString(),
            to.ToString());
}

TEST_F(UdpListenerTest, AnUnreachableEndpointIsRetriedOnAnotherOne) {
  UdpEchoBackend live(AF_INET, "L");
  ListenOptions o = Options({DeadUdpPort(AF_INET), live.address()});
  o.retries = 1;
  o.eject_after = 0;  // every client may meet the dead one first
  const Address at = Listen(o);
  for (int i = 0; i < 10; ++i) {
    UniqueFd client = UdpClient(at);
    EXPECT_EQ(Ask(client.get(), "q" + std::to_string(i)), "Lq" + std::to_string(i));
  }
  const EngineStats stats = engine_->Stats();
  EXPECT_GT(stats.total.udp.backend_unreachable, 0u);
  EXPECT_EQ(stats.total.backend_retries, stats.total.udp.backend_unreachable);
  EXPECT_EQ(stats.total.udp.flows_open, 10u);
}

TEST_F(UdpListenerTest, AnUnreachableEndpointWithoutRetriesClosesTheFlow) {
  ListenOptions o = Options({DeadUdpPort(AF_INET)});
  const Address at = Listen(o);
  UniqueFd client = UdpClient(at);
  ASSERT_EQ(::send(client.get(), "q", 1, 0), 1);
  const std::vector<PairStats> closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kConnectFailed);
  EXPECT_EQ(closed[0].error, ECONNREFUSED);
  EXPECT_NE(closed[0].detail.find("unreachable"), std::string::npos) << closed[0].detail;
  EXPECT_EQ(engine_->Stats().total.udp.backend_unreachable, 1u);
  const MetricsSnapshot m = engine_->Metrics();
  EXPECT_EQ(m.listeners[0].udp_backend_unreachable_total, 1u);
  EXPECT_EQ(m.listeners[0].backends[0].connect_failures_total, 1u);
}

TEST_F(UdpListenerTest, NewClientsPastTheFlowCapAreDroppedAndCounted) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.max_connections = 2;
  const Address at = Listen(o);
  UniqueFd first = UdpClient(at);
  UniqueFd second = UdpClient(at);
  UniqueFd third = UdpClient(at);
  EXPECT_EQ(Ask(first.get(), "1"), "A1");
  EXPECT_EQ(Ask(second.get(), "2"), "A2");
  ASSERT_EQ(::send(third.get(), "3", 1, 0), 1);
  EXPECT_FALSE(ReceiveDatagram(third.get(), 300).has_value());
  EXPECT_EQ(engine_->Stats().total.udp.flow_cap_drops, 1u);
  EXPECT_EQ(engine_->Metrics().listeners[0].udp_flow_cap_drops_total, 1u);
  // The flows already open go on.
  EXPECT_EQ(Ask(first.get(), "again"), "Aagain");
}

TEST_F(UdpListenerTest, GsoRunsFromAClientArriveAsSeparateDatagrams) {
  UdpEchoBackend backend(AF_INET, "A");
  const Address at = Listen(Options({backend.address()}));
  UniqueFd client = UdpClient(at);
  constexpr uint16_t kSegment = 1000;
  const std::string run = Pattern(10 * kSegment - 300, 7);  // 9 full segments and a short one
  const int segment = kSegment;
  if (::setsockopt(client.get(), IPPROTO_UDP, 103 /* UDP_SEGMENT */, &segment, sizeof(segment)) !=
      0) {
    GTEST_SKIP() << "no UDP GSO on this kernel";
  }
  ASSERT_EQ(::send(client.get(), run.data(), run.size(), 0), static_cast<ssize_t>(run.size()));
  for (size_t at_byte = 0; at_byte < run.size(); at_byte += kSegment) {
    const std::string want = "A" + run.substr(at_byte, kSegment);
    EXPECT_EQ(ReceiveDatagram(client.get()).value_or(""), want) << "segment at " << at_byte;
  }
  EXPECT_EQ(backend.datagrams(), 10u);
  EXPECT_EQ(engine_->Stats().total.udp.datagrams_client_to_backend, 10u);
}

TEST_F(UdpListenerTest, DrainLetsFlowsFinishTheirRepliesThenEnds) {
  UdpEchoBackend backend(AF_INET, "A");
  const Address at = Listen(Options({backend.address()}));
  UniqueFd client = UdpClient(at);
  ASSERT_EQ(Ask(client.get(), "before"), "Abefore");
  engine_->Drain(seconds(10));
  const std::vector<PairStats> closed = closes_.WaitFor(1, seconds(1));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone);
  EXPECT_EQ(engine_->Stats().total.udp.flows_open, 0u);
}

TEST_F(UdpListenerTest, ReconfigureSendsNewFlowsToTheNewBackends) {
  UdpEchoBackend a(AF_INET, "A");
  UdpEchoBackend b(AF_INET, "B");
  const Address at = Listen(Options({a.address()}));
  UniqueFd before = UdpClient(at);
  EXPECT_EQ(Ask(before.get(), "1"), "A1");
  ListenOptions next = Options({b.address()});
  next.address = at;
  ASSERT_TRUE(engine_->Reconfigure(id_, next).ok());
  EXPECT_EQ(engine_->ListenAddress(id_)->ToString(), at.ToString());
  for (int i = 0; i < 20; ++i) {
    UniqueFd client = UdpClient(at);
    EXPECT_EQ(Ask(client.get(), "n"), "Bn");
  }
  // The old flow's client is answered too (by a new flow on the new pool).
  EXPECT_EQ(Ask(before.get(), "2")[1], '2');
}

TEST_F(UdpListenerTest, BadOptionsAreRefusedNamingTheField) {
  UdpEchoBackend backend(AF_INET, "A");
  ListenOptions o = Options({backend.address()});
  o.proxy_protocol = true;
  auto refused = engine_->Listen(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("proxy_protocol"), std::string::npos);

  o = Options({backend.address()});
  o.address = Address::Parse("unix:/tmp/zrelay-udp-test.sock").value();
  refused = engine_->Listen(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("IPv4 or IPv6"), std::string::npos);

  o = Options({backend.address()});
  o.idle_timeout = Duration::zero();
  refused = engine_->Listen(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("idle_timeout"), std::string::npos);

  o = Options({backend.address()});
  o.backends[0].send_proxy = BackendOptions::SendProxy::kV2;
  refused = engine_->Listen(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("send_proxy"), std::string::npos);

  // A TCP listener and a UDP one on the same port number are two sockets.
  // The TCP listener takes a port first; the UDP one then binds that number.
  // The kernel draws both from the ephemeral range, where other tests' TCP
  // connections and UDP sockets live too, so a taken number is tried again.
  bool shared = false;
  for (int attempt = 0; attempt < 20 && !shared; ++attempt) {
    ListenOptions tcp;
    tcp.address = Loopback(AF_INET);
    tcp.backends.push_back(BackendOptions{backend.address(), nullptr, ""});
    auto tcp_id = engine_->Listen(tcp);
    ASSERT_TRUE(tcp_id.ok()) << tcp_id.error().message();
    o = Options({backend.address()});
    o.address = engine_->ListenAddress(*tcp_id).value();
    auto udp_id = engine_->Listen(o);
    if (udp_id.ok()) {
      shared = true;
      EXPECT_EQ(engine_->ListenAddress(*udp_id).value().port(), o.address.port());
    } else {
      EXPECT_NE(udp_id.error().message().find("in use"), std::string::npos)
          << udp_id.error().message();
      ASSERT_TRUE(engine_->Close(*tcp_id).ok());
    }
  }
  EXPECT_TRUE(shared);
}

}  // namespace
}  // namespace zrelay
