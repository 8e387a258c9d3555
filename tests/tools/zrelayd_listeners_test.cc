// zrelayd's settings as engine options, without sockets: every key of a file
// and every flag lands in its field.
#include "tools/zrelayd_listeners.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/support/test_certs.h"
#include "tools/config/config.h"
#include "tools/zrelayd_flags.h"

namespace zrelay {
namespace {

FileConfig Parse(const std::string& text) {
  Result<FileConfig> config = ParseConfig(text, "zrelayd.toml");
  EXPECT_TRUE(config.ok()) << config.error().message();
  return config.ok() ? std::move(config.value()) : FileConfig{};
}

constexpr char kTwoListeners[] = R"(
workers = 3
mode = "copy"
pin = true
pipe_size = "256k"
pipe_pool = 16
buffer_size = "32k"
budget = "1M"
log_closes = true

[[listener]]
name = "web"
listen = ["127.0.0.1:8080", "[::1]:8080", "unix:/run/web.sock"]
balance = "least-conn"
connect_timeout = "2s"
idle_timeout = "5m"
handshake_timeout = "3s"
resolve_interval = "1m"
max_connections = 500
retries = 2
backlog = 64

[listener.health]
interval = "5s"
timeout = "2s"
fall = 4
rise = 5

[[listener.backend]]
address = "app1.internal:9000"
weight = 2

[[listener.backend]]
address = "10.0.0.12:9000"

[[listener]]
name = "other"
listen = "127.0.0.1:8081"
idle_timeout = "1m"

[[listener.backend]]
address = "unix:/run/app.sock"
)";

TEST(ZrelaydListeners, EveryKeyReachesItsOption) {
  FileConfig config = Parse(kTwoListeners);
  EngineOptions engine = EngineOptionsFor(config);
  EXPECT_EQ(engine.workers, 3);
  EXPECT_EQ(engine.mode, RelayMode::kCopy);
  EXPECT_TRUE(engine.pin_cpus);
  EXPECT_EQ(engine.pipe_size, 256u << 10);
  EXPECT_EQ(engine.pipe_pool_cap, 16u);
  EXPECT_EQ(engine.buffer_size, 32u << 10);
  EXPECT_EQ(engine.budget_per_event, 1u << 20);
  // The first listener's timeouts are the engine's.
  EXPECT_EQ(engine.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(engine.handshake_timeout, seconds(3));

  // log_closes: an access log on stderr, which zrelayd hands in.
  EXPECT_EQ(config.access_log, "stderr");
  auto listeners =
      SetUpListeners(config, engine, "zrelayd.toml", std::shared_ptr<LogSink>(LogSink::Stderr()));
  ASSERT_TRUE(listeners.ok()) << listeners.error().message();
  ASSERT_EQ(listeners->size(), 2u);
  const ListenOptions& web = (*listeners)[0].options;
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.address.ToString(), "127.0.0.1:8080");
  ASSERT_EQ(web.extra_addresses.size(), 2u);
  EXPECT_EQ(web.extra_addresses[0].ToString(), "[::1]:8080");
  EXPECT_TRUE(web.extra_addresses[1].is_unix());
  EXPECT_EQ(web.balance, BalancePolicy::kLeastConn);
  EXPECT_EQ(web.connect_timeout, seconds(2));
  EXPECT_EQ(web.resolve_interval, std::chrono::minutes(1));
  EXPECT_EQ(web.max_connections, 500u);
  EXPECT_EQ(web.retries, 2);
  EXPECT_EQ(web.backlog, 64);
  EXPECT_FALSE(web.idle_timeout.has_value());
  EXPECT_FALSE(web.handshake_timeout.has_value());
  ASSERT_TRUE(web.health.has_value());
  EXPECT_EQ(web.health->interval, seconds(5));
  EXPECT_EQ(web.health->timeout, seconds(2));
  EXPECT_EQ(web.health->fall, 4);
  EXPECT_EQ(web.health->rise, 5);
  EXPECT_EQ(web.tls, nullptr);
  EXPECT_TRUE(web.on_close);
  EXPECT_TRUE(web.on_event);
  ASSERT_EQ(web.backends.size(), 2u);
  EXPECT_EQ(web.backends[0].host, "app1.internal");
  EXPECT_EQ(web.backends[0].port, 9000);
  EXPECT_EQ(web.backends[0].weight, 2u);
  EXPECT_EQ(web.backends[1].host, "");
  EXPECT_EQ(web.backends[1].address.ToString(), "10.0.0.12:9000");
  EXPECT_EQ(web.backends[1].weight, 1u);
  for (const BackendOptions& backend : web.backends) {
    EXPECT_EQ(backend.tls, nullptr);
    EXPECT_EQ(backend.sni, "");
  }

  const ListenOptions& other = (*listeners)[1].options;
  EXPECT_FALSE(other.health.has_value());
  EXPECT_EQ(other.balance, BalancePolicy::kRoundRobin);
  EXPECT_TRUE(other.extra_addresses.empty());
  // Only what differs from the engine is overridden.
  ASSERT_TRUE(other.idle_timeout.has_value());
  EXPECT_EQ(*other.idle_timeout, std::chrono::minutes(1));
  ASSERT_TRUE(other.handshake_timeout.has_value());
  EXPECT_EQ(*other.handshake_timeout, seconds(10));
  ASSERT_EQ(other.backends.size(), 1u);
  EXPECT_TRUE(other.backends[0].address.is_unix());
}

// Backend TLS: backend_sni for every backend when given; otherwise a host
// name is left to the engine (sent and verified) and a literal's IP is
// verified; a unix path has no name at all.
TEST(ZrelaydListeners, BackendNamesForTls) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  const std::string backends =
      "[[listener.backend]]\naddress = \"app.internal:443\"\n"
      "[[listener.backend]]\naddress = \"10.0.0.5:443\"\n"
      "[[listener.backend]]\naddress = \"[fd00::5]:443\"\n"
      "[[listener.backend]]\naddress = \"unix:/run/app.sock\"\n";
  FileConfig config = Parse(
      "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\nbackend_tls = true\n"
      "backend_ca = \"" +
      certs->ca.cert + "\"\ntls_cert = \"" + certs->server.cert + "\"\ntls_key = \"" +
      certs->server.key + "\"\n" + backends +
      "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\nbackend_tls = true\n"
      "backend_ca = \"" +
      certs->ca.cert + "\"\nbackend_sni = \"api.internal\"\n" + backends);
  auto listeners = SetUpListeners(config, EngineOptionsFor(config), "zrelayd.toml");
  ASSERT_TRUE(listeners.ok()) << listeners.error().message();

  const ListenerSetup& a = (*listeners)[0];
  EXPECT_NE(a.options.tls, nullptr);
  EXPECT_EQ(a.options.tls, a.client_tls.get());
  std::vector<std::string> names;
  for (const BackendOptions& backend : a.options.backends) {
    EXPECT_EQ(backend.tls, a.backend_tls.get());
    EXPECT_NE(backend.tls, nullptr);
    names.push_back(backend.sni);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"", "10.0.0.5", "fd00::5", ""}));

  const ListenerSetup& b = (*listeners)[1];
  EXPECT_EQ(b.options.tls, nullptr);
  for (const BackendOptions& backend : b.options.backends) EXPECT_EQ(backend.sni, "api.internal");
  testing::RemoveTestCerts(certs.value());
}

// The PROXY protocol and routing keys: each lands in its option, and the
// routes' backends get the listener's backend TLS as its own backends do.
TEST(ZrelaydListeners, PreambleKeysReachTheirOptions) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  FileConfig config = Parse(
      "[[listener]]\nname = \"edge\"\nlisten = \"127.0.0.1:1\"\n"
      "proxy_protocol = \"accept\"\nproxy_protocol_from = [\"10.0.0.0/8\", \"::1/128\"]\n"
      "preamble_timeout = \"3s\"\nroute_by = \"sni\"\nbackend_tls = true\nbackend_ca = \"" +
      certs->ca.cert +
      "\"\n"
      "[[listener.backend]]\naddress = \"10.0.0.1:443\"\nsend_proxy = \"v2\"\n"
      "[[listener.route]]\nname = \"a\"\nsni = [\"a.example\", \"*.b.example\"]\n"
      "balance = \"maglev\"\n"
      "[[listener.route.backend]]\naddress = \"10.0.1.1:443\"\nsend_proxy = \"v1\"\n"
      "[[listener.route.backend]]\naddress = \"app.internal:443\"\nweight = 4\n"
      "[[listener.route]]\nsni = \"c.example\"\n"
      "[[listener.route.backend]]\naddress = \"10.0.2.1:443\"\n");
  auto listeners = SetUpListeners(config, EngineOptionsFor(config), "zrelayd.toml");
  ASSERT_TRUE(listeners.ok()) << listeners.error().message();
  const ListenerSetup& setup = (*listeners)[0];
  const ListenOptions& options = setup.options;
  EXPECT_TRUE(options.proxy_protocol);
  ASSERT_EQ(options.proxy_protocol_from.size(), 2u);
  EXPECT_EQ(options.proxy_protocol_from[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ(options.proxy_protocol_from[1].ToString(), "::1/128");
  EXPECT_EQ(options.preamble_timeout, seconds(3));
  EXPECT_EQ(options.route_by, RouteBy::kSni);
  ASSERT_EQ(options.backends.size(), 1u);
  EXPECT_EQ(options.backends[0].send_proxy, BackendOptions::SendProxy::kV2);
  EXPECT_EQ(options.backends[0].tls, setup.backend_tls.get());

  ASSERT_EQ(options.routes.size(), 2u);
  const RouteOptions& a = options.routes[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.server_names, (std::vector<std::string>{"a.example", "*.b.example"}));
  EXPECT_EQ(a.balance, BalancePolicy::kMaglev);
  ASSERT_EQ(a.backends.size(), 2u);
  EXPECT_EQ(a.backends[0].address.ToString(), "10.0.1.1:443");
  EXPECT_EQ(a.backends[0].send_proxy, BackendOptions::SendProxy::kV1);
  EXPECT_EQ(a.backends[0].sni, "10.0.1.1");  // a literal's IP is verified, as for the listener's
  EXPECT_EQ(a.backends[1].host, "app.internal");
  EXPECT_EQ(a.backends[1].port, 443);
  EXPECT_EQ(a.backends[1].weight, 4u);
  EXPECT_EQ(a.backends[1].send_proxy, BackendOptions::SendProxy::kNone);
  const RouteOptions& c = options.routes[1];
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.server_names, std::vector<std::string>{"c.example"});
  EXPECT_EQ(c.balance, BalancePolicy::kRoundRobin);
  for (const RouteOptions& route : options.routes) {
    for (const BackendOptions& backend : route.backends) {
      EXPECT_NE(backend.tls, nullptr);
      EXPECT_EQ(backend.tls, setup.backend_tls.get());
    }
  }
  testing::RemoveTestCerts(certs.value());
}

// The command line is a file with one listener: its options are what the
// flags said, and the engine's timeouts are the flags', overridden nowhere.
TEST(ZrelaydListeners, FlagsAreAFileWithOneListener) {
  auto flags = ParseZrelaydFlags({"--listen", "127.0.0.1:8080", "--backend", "localhost:9000",
                                  "--workers", "2", "--idle-timeout", "7s", "--handshake-timeout",
                                  "4s", "--connect-timeout", "1s", "--max-connections", "9",
                                  "--drain-grace", "1s", "--backend-tls", "--backend-insecure"});
  ASSERT_TRUE(flags.ok()) << flags.error().message();
  FileConfig config = FileConfigFromFlags(flags.value());
  EXPECT_EQ(config.drain_grace, seconds(1));
  EXPECT_EQ(config.access_log, "");
  auto log_closes =
      ParseZrelaydFlags({"--listen", ":1", "--backend", "127.0.0.1:2", "--log-closes"});
  ASSERT_TRUE(log_closes.ok()) << log_closes.error().message();
  EXPECT_EQ(FileConfigFromFlags(log_closes.value()).access_log, "stderr");
  EngineOptions engine = EngineOptionsFor(config);
  EXPECT_EQ(engine.workers, 2);
  EXPECT_EQ(engine.idle_timeout, seconds(7));
  EXPECT_EQ(engine.handshake_timeout, seconds(4));
  auto listeners = SetUpListeners(config, engine, "");
  ASSERT_TRUE(listeners.ok()) << listeners.error().message();
  ASSERT_EQ(listeners->size(), 1u);
  const ListenOptions& options = (*listeners)[0].options;
  EXPECT_EQ(options.name, "");
  EXPECT_EQ(options.address.ToString(), "127.0.0.1:8080");
  EXPECT_TRUE(options.extra_addresses.empty());
  EXPECT_FALSE(options.idle_timeout.has_value());
  EXPECT_FALSE(options.handshake_timeout.has_value());
  EXPECT_EQ(options.connect_timeout, seconds(1));
  EXPECT_EQ(options.max_connections, 9u);
  EXPECT_FALSE(options.on_close);
  ASSERT_EQ(options.backends.size(), 1u);
  // --backend localhost:9000: resolved by the flags, its name sent as SNI.
  EXPECT_EQ(options.backends[0].host, "");
  EXPECT_EQ(options.backends[0].address.port(), 9000);
  EXPECT_EQ(options.backends[0].sni, "localhost");
  EXPECT_NE(options.backends[0].tls, nullptr);
}

// A UDP listener: protocol and buffer sizes in its options; its flows'
// idle timeout is its own or the engine's UDP default, never a TCP
// listener's; the engine's timeouts come from the first TCP listener.
TEST(ZrelaydListeners, UdpListenerOptions) {
  FileConfig config = Parse(R"(
[[listener]]
name = "dns"
protocol = "udp"
listen = ["127.0.0.1:53", "[::1]:53"]
balance = "maglev"
max_connections = 5000
retries = 1
udp_receive_buffer = "4M"
udp_send_buffer = "1M"

[[listener.backend]]
address = "10.0.0.53:53"

[[listener]]
name = "web"
listen = "127.0.0.1:8080"
idle_timeout = "5m"
handshake_timeout = "3s"

[[listener.backend]]
address = "10.0.0.1:80"

[[listener]]
name = "ntp"
protocol = "udp"
listen = "127.0.0.1:123"
idle_timeout = "2s"

[[listener.backend]]
address = "10.0.0.123:123"
)");
  EngineOptions engine = EngineOptionsFor(config);
  EXPECT_EQ(engine.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(engine.handshake_timeout, seconds(3));
  auto listeners = SetUpListeners(config, engine, "zrelayd.toml");
  ASSERT_TRUE(listeners.ok()) << listeners.error().message();
  ASSERT_EQ(listeners->size(), 3u);

  const ListenOptions& dns = (*listeners)[0].options;
  EXPECT_EQ(dns.protocol, Protocol::kUdp);
  EXPECT_EQ(dns.address.ToString(), "127.0.0.1:53");
  ASSERT_EQ(dns.extra_addresses.size(), 1u);
  EXPECT_EQ(dns.udp.receive_buffer, 4u << 20);
  EXPECT_EQ(dns.udp.send_buffer, 1u << 20);
  EXPECT_EQ(dns.balance, BalancePolicy::kMaglev);
  EXPECT_EQ(dns.max_connections, 5000u);
  EXPECT_EQ(dns.retries, 1);
  EXPECT_EQ(dns.tls, nullptr);
  EXPECT_FALSE(dns.handshake_timeout.has_value());
  // Unset, with the engine's idle timeout a TCP listener's 5 minutes: the
  // engine's UDP default, explicitly.
  ASSERT_TRUE(dns.idle_timeout.has_value());
  EXPECT_EQ(*dns.idle_timeout, kDefaultUdpIdleTimeout);
  ASSERT_EQ(dns.backends.size(), 1u);
  EXPECT_EQ(dns.backends[0].address.ToString(), "10.0.0.53:53");
  EXPECT_EQ(dns.backends[0].tls, nullptr);

  EXPECT_EQ((*listeners)[1].options.protocol, Protocol::kTcp);
  EXPECT_EQ((*listeners)[1].options.udp.receive_buffer, 0u);
  const ListenOptions& ntp = (*listeners)[2].options;
  ASSERT_TRUE(ntp.idle_timeout.has_value());
  EXPECT_EQ(*ntp.idle_timeout, seconds(2));

  // With no TCP listener the engine's idle timeout is 0, and an unset one
  // is left to the engine (which ends flows after 30 s).
  FileConfig udp_only = Parse(
      "[[listener]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:53\"\n"
      "[[listener.backend]]\naddress = \"10.0.0.53:53\"\n");
  EngineOptions udp_engine = EngineOptionsFor(udp_only);
  EXPECT_EQ(udp_engine.idle_timeout, Duration::zero());
  EXPECT_EQ(udp_engine.handshake_timeout, EngineOptions{}.handshake_timeout);
  auto udp_listeners = SetUpListeners(udp_only, udp_engine, "zrelayd.toml");
  ASSERT_TRUE(udp_listeners.ok()) << udp_listeners.error().message();
  EXPECT_FALSE((*udp_listeners)[0].options.idle_timeout.has_value());
}

// Handed-over sockets go to the listeners of their kind: a TCP and a UDP
// listener may be on the same address.
TEST(ZrelaydListeners, SocketsForPicksTheProtocolsKind) {
  const int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int unix_stream = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(tcp, 0);
  ASSERT_GE(udp, 0);
  ASSERT_GE(unix_stream, 0);
  const std::vector<int> fds = {tcp, udp, unix_stream, /*not open*/ 1 << 20};
  EXPECT_EQ(SocketsFor(Protocol::kTcp, fds), (std::vector<int>{tcp, unix_stream}));
  EXPECT_EQ(SocketsFor(Protocol::kUdp, fds), (std::vector<int>{udp}));
  for (int fd : {tcp, udp, unix_stream}) ::close(fd);
}

// The command line's TLS errors read as they always did (no file, no key).
TEST(ZrelaydListeners, FlagTlsErrorsNameTheSide) {
  auto flags =
      ParseZrelaydFlags({"--listen", "127.0.0.1:8080", "--backend", "127.0.0.1:9000", "--tls-cert",
                         "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"});
  ASSERT_TRUE(flags.ok()) << flags.error().message();
  FileConfig config = FileConfigFromFlags(flags.value());
  auto listeners = SetUpListeners(config, EngineOptionsFor(config), "");
  ASSERT_FALSE(listeners.ok());
  EXPECT_EQ(listeners.error().message(),
            "TLS: certificate file '/nonexistent/c.pem': No such file or directory");
}

}  // namespace
}  // namespace zrelay
