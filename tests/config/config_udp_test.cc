// UDP listeners in zrelayd's file: the protocol key, the socket buffer
// sizes, every key a UDP listener refuses (each error naming its key and
// line), idle_timeout, and which listen addresses may be shared.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/config/config_test_util.h"
#include "tests/config/parse_util.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

using testing::ErrorCase;
using testing::ErrorOf;
using testing::ExpectErrors;
using testing::kMinimal;
using testing::Parse;
using testing::WithListenerKeys;

// kMinimal's listener made a UDP one (line 5), with `lines` from line 6 on.
std::string Udp(const std::string& lines) {
  return WithListenerKeys("protocol = \"udp\"\n" + lines);
}

// A second listener, "dns" (line 9 on), after kMinimal's.
std::string SecondListener(const std::string& keys) {
  return std::string(kMinimal) + "[[listener]]\nname = \"dns\"\n" + keys +
         "\n[[listener.backend]]\naddress = \"10.0.0.2:53\"\n";
}

TEST(ConfigUdp, ProtocolDefaultsToTcp) {
  Result<FileConfig> config = Parse(kMinimal);
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].protocol, Protocol::kTcp);
  EXPECT_EQ(config->listeners[0].udp.receive_buffer, 0u);
  EXPECT_EQ(config->listeners[0].udp.send_buffer, 0u);

  Result<FileConfig> tcp = Parse(WithListenerKeys("protocol = \"tcp\""));
  ASSERT_TRUE(tcp.ok()) << tcp.error().message();
  EXPECT_EQ(tcp->listeners[0].protocol, Protocol::kTcp);
}

TEST(ConfigUdp, EveryKeyAUdpListenerTakes) {
  Result<FileConfig> config = Parse(R"(
[[listener]]
name = "dns"
protocol = "udp"
listen = ["127.0.0.1:53", "[::1]:53"]
balance = "maglev"
idle_timeout = "10s"
resolve_interval = "1m"
max_connections = 20000
retries = 1
udp_receive_buffer = "4M"
udp_send_buffer = 262144

[listener.health]
interval = "5s"

[[listener.backend]]
address = "resolver.internal:53"
weight = 2

[[listener.backend]]
address = "[fd00::53]:53"
)");
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& dns = config->listeners[0];
  EXPECT_EQ(dns.protocol, Protocol::kUdp);
  ASSERT_EQ(dns.listen.size(), 2u);
  EXPECT_EQ(dns.listen[0].ToString(), "127.0.0.1:53");
  EXPECT_EQ(dns.listen[1].ToString(), "[::1]:53");
  EXPECT_EQ(dns.balance, BalancePolicy::kMaglev);
  EXPECT_EQ(dns.idle_timeout, seconds(10));
  EXPECT_EQ(dns.resolve_interval, std::chrono::minutes(1));
  EXPECT_EQ(dns.max_connections, 20000u);  // flows at once
  EXPECT_EQ(dns.retries, 1);
  EXPECT_EQ(dns.udp.receive_buffer, 4u << 20);
  EXPECT_EQ(dns.udp.send_buffer, 262144u);
  ASSERT_TRUE(dns.health.has_value());
  EXPECT_EQ(dns.health->interval, seconds(5));
  ASSERT_EQ(dns.backends.size(), 2u);
  EXPECT_EQ(dns.backends[0].host, "resolver.internal");
  EXPECT_EQ(dns.backends[0].port, 53);
  EXPECT_EQ(dns.backends[0].weight, 2u);
  ASSERT_TRUE(dns.backends[1].literal.has_value());
  EXPECT_EQ(dns.backends[1].literal->ToString(), "[fd00::53]:53");
  // Unused by flows, left at their defaults.
  EXPECT_FALSE(dns.tls.has_value());
  EXPECT_FALSE(dns.backend_tls.has_value());
  EXPECT_EQ(dns.backlog, 1024);
}

TEST(ConfigUdp, ProtocolValues) {
  ExpectErrors({
      {WithListenerKeys("protocol = \"UDP\""),
       "zrelayd.toml:5: listener[0].protocol: expected \"tcp\" or \"udp\", got \"UDP\""},
      {WithListenerKeys("protocol = \"sctp\""),
       "zrelayd.toml:5: listener[0].protocol: expected \"tcp\" or \"udp\", got \"sctp\""},
      {WithListenerKeys("protocol = 17"),
       "zrelayd.toml:5: listener[0].protocol: expected \"tcp\" or \"udp\", got 17"},
      {WithListenerKeys("protocl = \"udp\""),
       "zrelayd.toml:5: listener[0].protocl: unknown key (did you mean \"protocol\"?)"},
  });
}

// Each key about streams, on line 6 of a UDP listener: its own error, with
// its line and why.
TEST(ConfigUdp, StreamKeysAreRefusedByName) {
  const std::string no_tls =
      "not with protocol = \"udp\": a UDP listener relays datagrams as they come (no TLS, no "
      "DTLS)";
  const std::string no_proxy =
      "not with protocol = \"udp\": PROXY headers are for streams; a flow's client is its "
      "datagrams' source address";
  const std::string no_sni =
      "not with protocol = \"udp\": routing by SNI reads a TLS ClientHello from a stream";
  struct Refused {
    std::string line;
    std::string key;
    std::string why;
  };
  const std::vector<Refused> refused = {
      {"tls_cert = \"/etc/zrelay/a.pem\"", "tls_cert", no_tls},
      {"tls_key = \"/etc/zrelay/a.key\"", "tls_key", no_tls},
      {"tls_min = \"TLS1.3\"", "tls_min", no_tls},
      {"alpn = [\"dot\"]", "alpn", no_tls},
      {"backend_tls = true", "backend_tls", no_tls},
      {"backend_ca = \"/etc/zrelay/ca.pem\"", "backend_ca", no_tls},
      {"backend_sni = \"dns.example\"", "backend_sni", no_tls},
      {"backend_insecure = true", "backend_insecure", no_tls},
      {"handshake_timeout = \"5s\"", "handshake_timeout",
       "not with protocol = \"udp\": a UDP listener has no TLS handshakes"},
      {"proxy_protocol = \"accept\"", "proxy_protocol", no_proxy},
      {"proxy_protocol_from = \"10.0.0.0/8\"", "proxy_protocol_from", no_proxy},
      {"preamble_timeout = \"2s\"", "preamble_timeout",
       "not with protocol = \"udp\": a UDP listener reads no PROXY header or ClientHello"},
      {"route_by = \"sni\"", "route_by", no_sni},
      {"backlog = 128", "backlog",
       "not with protocol = \"udp\": a UDP socket has no accept queue (max_connections caps the "
       "flows)"},
      {"connect_timeout = \"1s\"", "connect_timeout",
       "not with protocol = \"udp\": a flow's socket to its backend connects at once, with no "
       "handshake to wait for (idle_timeout ends flows)"},
  };
  std::vector<ErrorCase> cases;
  for (const Refused& r : refused) {
    cases.push_back({Udp(r.line), "zrelayd.toml:6: listener[0]." + r.key + ": " + r.why});
    // The same on a TCP listener is not this error.
    EXPECT_EQ(ErrorOf(WithListenerKeys(r.line)).find("not with protocol"), std::string::npos)
        << r.line;
  }
  // Routes: the [[listener.route]] table itself, even without route_by.
  cases.push_back({Udp("[[listener.route]]\nsni = \"a.example\"\n"
                       "[[listener.route.backend]]\naddress = \"10.0.0.3:53\""),
                   "zrelayd.toml:6: listener[0].route: " + no_sni});
  // A backend's send_proxy, on its own line.
  cases.push_back({Udp("") + "send_proxy = \"v2\"\n",
                   "zrelayd.toml:9: listener[0].backend[0].send_proxy: " + no_proxy});
  ExpectErrors(cases);
}

TEST(ConfigUdp, TheFirstRefusedKeyInTheFileIsNamed) {
  ExpectErrors({
      // In file order, not in the order of any list.
      {Udp("backlog = 64\ntls_cert = \"/a.pem\"\ntls_key = \"/a.key\""),
       "zrelayd.toml:6: listener[0].backlog: not with protocol = \"udp\": a UDP socket has no "
       "accept queue (max_connections caps the flows)"},
      // protocol may come after the key it refuses.
      {WithListenerKeys("tls_key = \"/a.key\"\nprotocol = \"udp\""),
       "zrelayd.toml:5: listener[0].tls_key: not with protocol = \"udp\": a UDP listener relays "
       "datagrams as they come (no TLS, no DTLS)"},
      // Refused before its value is read: a bad value still gets the UDP error.
      {Udp("tls_min = \"SSLv3\""),
       "zrelayd.toml:6: listener[0].tls_min: not with protocol = \"udp\": a UDP listener relays "
       "datagrams as they come (no TLS, no DTLS)"},
  });
}

TEST(ConfigUdp, IdleTimeout) {
  // Unset: 0, which leaves flows to the engine's 30 s.
  Result<FileConfig> unset = Parse(Udp(""));
  ASSERT_TRUE(unset.ok()) << unset.error().message();
  EXPECT_EQ(unset->listeners[0].idle_timeout, Duration::zero());
  ExpectErrors({
      {Udp("idle_timeout = \"0s\""),
       "zrelayd.toml:6: listener[0].idle_timeout: expected a duration above 0 with protocol = "
       "\"udp\", got \"0s\": a flow ends only when idle (unset: 30s)"},
      {Udp("idle_timeout = \"soon\""),
       "zrelayd.toml:6: listener[0].idle_timeout: bad duration 'soon': expected a number"},
  });
  // A TCP listener's 0 still means never.
  Result<FileConfig> tcp = Parse(WithListenerKeys("idle_timeout = \"0s\""));
  ASSERT_TRUE(tcp.ok()) << tcp.error().message();
}

TEST(ConfigUdp, BufferSizes) {
  Result<FileConfig> config = Parse(Udp("udp_receive_buffer = \"1G\"\nudp_send_buffer = \"64k\""));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].udp.receive_buffer, 1u << 30);
  EXPECT_EQ(config->listeners[0].udp.send_buffer, 64u << 10);
  ExpectErrors({
      {WithListenerKeys("udp_receive_buffer = \"4M\""),
       "zrelayd.toml:5: listener[0].udp_receive_buffer: needs protocol = \"udp\""},
      {WithListenerKeys("udp_send_buffer = 65536"),
       "zrelayd.toml:5: listener[0].udp_send_buffer: needs protocol = \"udp\""},
      {Udp("udp_receive_buffer = \"2G\""),
       "zrelayd.toml:6: listener[0].udp_receive_buffer: expected a size of at most \"1G\", got "
       "\"2G\""},
      {Udp("udp_send_buffer = 0"),
       "zrelayd.toml:6: listener[0].udp_send_buffer: expected a size above 0 such as \"64k\" or "
       "\"1M\" or a number of bytes, got 0"},
      {Udp("udp_receive_buffer = \"4X\""),
       "zrelayd.toml:6: listener[0].udp_receive_buffer: bad size '4X': unknown suffix 'x' (use "
       "k, M, G or T; binary, k = 1024)"},
      {Udp("udp_recieve_buffer = \"4M\""),
       "zrelayd.toml:6: listener[0].udp_recieve_buffer: unknown key (did you mean "
       "\"udp_receive_buffer\"?)"},
  });
}

TEST(ConfigUdp, Responses) {
  Result<FileConfig> config = Parse(Udp("udp_responses = 1"));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[0].udp.responses, 1u);
  Result<FileConfig> unset = Parse(Udp(""));
  ASSERT_TRUE(unset.ok()) << unset.error().message();
  EXPECT_EQ(unset->listeners[0].udp.responses, 0u);
  ExpectErrors({
      {WithListenerKeys("udp_responses = 1"),
       "zrelayd.toml:5: listener[0].udp_responses: needs protocol = \"udp\""},
      {Udp("udp_responses = -1"),
       "zrelayd.toml:6: listener[0].udp_responses: expected an integer 0..1000, got -1"},
  });
}

TEST(ConfigUdp, TcpAndUdpMayShareAnAddress) {
  // kMinimal listens on TCP 127.0.0.1:8080; UDP on the same address is
  // another socket.
  Result<FileConfig> config =
      Parse(SecondListener("protocol = \"udp\"\nlisten = \"127.0.0.1:8080\""));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->listeners[1].protocol, Protocol::kUdp);
  EXPECT_EQ(config->listeners[1].listen[0].ToString(), "127.0.0.1:8080");
  // And the admin endpoint's address (TCP) too.
  Result<FileConfig> admin =
      Parse("[admin]\nlisten = \"127.0.0.1:9901\"\n" +
            SecondListener("protocol = \"udp\"\nlisten = \"127.0.0.1:9901\""));
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  // Port 0: each socket gets a port of its own.
  EXPECT_EQ(ErrorOf("[[listener]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:0\"\n"
                    "[[listener.backend]]\naddress = \"10.0.0.1:53\"\n"
                    "[[listener]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:0\"\n"
                    "[[listener.backend]]\naddress = \"10.0.0.2:53\"\n"),
            "(parsed)");
}

TEST(ConfigUdp, TwoUdpListenersMayNotShareAnAddress) {
  const std::string first_udp =
      "[[listener]]\nname = \"a\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:53\"\n"
      "[[listener.backend]]\naddress = \"10.0.0.1:53\"\n";
  ExpectErrors({
      {first_udp +
           "[[listener]]\nname = \"b\"\nprotocol = \"udp\"\nlisten = [\":54\", \"127.0.0.1:53\"]\n"
           "[[listener.backend]]\naddress = \"10.0.0.2:53\"\n",
       "zrelayd.toml:10: listener[1].listen[1]: 127.0.0.1:53 (udp) is already listened on by "
       "listener[0].listen"},
      // Within one listener too.
      {Udp("").replace(Udp("").find("\"127.0.0.1:8080\""), 16, "[\"[::1]:53\", \"[0::1]:53\"]"),
       "zrelayd.toml:4: listener[0].listen[1]: [::1]:53 (udp) is already listened on by "
       "listener[0].listen[0]"},
      // Two TCP listeners still may not.
      {SecondListener("listen = \"127.0.0.1:8080\""),
       "zrelayd.toml:10: listener[1].listen: 127.0.0.1:8080 is already listened on by "
       "listener[0].listen"},
  });
}

TEST(ConfigUdp, UnixSocketsAreStreamsOnly) {
  ExpectErrors({
      {Udp("").replace(Udp("").find("\"127.0.0.1:8080\""), 16, "\"unix:/run/dns.sock\""),
       "zrelayd.toml:4: listener[0].listen: expected an IP address and port with protocol = "
       "\"udp\", got \"unix:/run/dns.sock\""},
      {Udp("").replace(Udp("").find("\"10.0.0.1:9000\""), 15, "\"unix:/run/resolver.sock\""),
       "zrelayd.toml:8: listener[0].backend[0].address: expected host:port, IPv4:port or "
       "[IPv6]:port with protocol = \"udp\", got \"unix:/run/resolver.sock\""},
  });
}

}  // namespace
}  // namespace zrelay
