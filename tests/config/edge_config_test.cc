// The PROXY protocol and SNI routing keys of zrelayd's file: proxy_protocol,
// proxy_protocol_from, preamble_timeout, route_by, [[listener.route]] and
// send_proxy, their defaults and each error.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/config/parse_util.h"
#include "tools/config/config.h"

namespace zrelay {
namespace {

using testing::ErrorOf;
using testing::Parse;

constexpr char kHead[] = R"([[listener]]
name = "edge"
listen = "127.0.0.1:8443"
)";

constexpr char kBackend[] = R"(
[[listener.backend]]
address = "10.0.0.1:9000"
)";

TEST(EdgeConfig, AbsentKeysMeanNoPreambleNoRoutesNoHeaderSent) {
  Result<FileConfig> config = Parse(std::string(kHead) + kBackend);
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_FALSE(listener.proxy_protocol);
  EXPECT_TRUE(listener.proxy_protocol_from.empty());
  EXPECT_EQ(listener.preamble_timeout, seconds(5));
  EXPECT_EQ(listener.route_by, RouteBy::kNone);
  EXPECT_TRUE(listener.routes.empty());
  EXPECT_EQ(listener.backends[0].send_proxy, BackendOptions::SendProxy::kNone);
}

TEST(EdgeConfig, ProxyProtocolKeys) {
  Result<FileConfig> config = Parse(std::string(kHead) + R"(proxy_protocol = "accept"
proxy_protocol_from = ["10.0.0.0/8", "::1/128"]
preamble_timeout = "750ms"
)" + kBackend + R"(send_proxy = "v2"

[[listener.backend]]
address = "10.0.0.2:9000"
send_proxy = "v1"
)");
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_TRUE(listener.proxy_protocol);
  ASSERT_EQ(listener.proxy_protocol_from.size(), 2u);
  EXPECT_EQ(listener.proxy_protocol_from[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ(listener.proxy_protocol_from[1].ToString(), "::1/128");
  EXPECT_EQ(listener.preamble_timeout, milliseconds(750));
  EXPECT_EQ(listener.backends[0].send_proxy, BackendOptions::SendProxy::kV2);
  EXPECT_EQ(listener.backends[1].send_proxy, BackendOptions::SendProxy::kV1);

  // One network may be a plain string.
  Result<FileConfig> one =
      Parse(std::string(kHead) +
            "proxy_protocol = \"accept\"\nproxy_protocol_from = \"192.0.2.7\"\n" + kBackend);
  ASSERT_TRUE(one.ok()) << one.error().message();
  ASSERT_EQ(one->listeners[0].proxy_protocol_from.size(), 1u);
  EXPECT_EQ(one->listeners[0].proxy_protocol_from[0].ToString(), "192.0.2.7/32");
}

constexpr char kRoutes[] = R"(route_by = "sni"
preamble_timeout = "2s"
)";

TEST(EdgeConfig, RoutesBySni) {
  Result<FileConfig> config = Parse(std::string(kHead) + kRoutes + kBackend + R"(
[[listener.route]]
name = "a"
sni = ["A.Example", "*.B.example"]
balance = "least-conn"

[[listener.route.backend]]
address = "10.0.1.1:443"
send_proxy = "v1"

[[listener.route.backend]]
address = "app.internal:443"
weight = 3

[[listener.route]]
sni = "c.example"

[[listener.route.backend]]
address = "unix:/run/c.sock"
)");
  ASSERT_TRUE(config.ok()) << config.error().message();
  const ListenerConfig& listener = config->listeners[0];
  EXPECT_EQ(listener.route_by, RouteBy::kSni);
  EXPECT_EQ(listener.preamble_timeout, seconds(2));
  ASSERT_EQ(listener.routes.size(), 2u);
  const RouteConfig& a = listener.routes[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.sni, (std::vector<std::string>{"a.example", "*.b.example"}));
  EXPECT_EQ(a.balance, BalancePolicy::kLeastConn);
  ASSERT_EQ(a.backends.size(), 2u);
  EXPECT_EQ(a.backends[0].literal->ToString(), "10.0.1.1:443");
  EXPECT_EQ(a.backends[0].send_proxy, BackendOptions::SendProxy::kV1);
  EXPECT_EQ(a.backends[1].host, "app.internal");
  EXPECT_EQ(a.backends[1].port, 443);
  EXPECT_EQ(a.backends[1].weight, 3u);
  const RouteConfig& c = listener.routes[1];
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.sni, std::vector<std::string>{"c.example"});
  EXPECT_EQ(c.balance, BalancePolicy::kRoundRobin);
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_TRUE(c.backends[0].literal->is_unix());
  ASSERT_EQ(listener.backends.size(), 1u);  // the default, for every other name
}

// Everything after kHead, kRoutes and kBackend (lines 1-9): one route.
std::string WithRoute(const std::string& route) {
  return std::string(kHead) + kRoutes + kBackend + "\n[[listener.route]]\n" + route;
}

constexpr char kRouteBackend[] = "\n[[listener.route.backend]]\naddress = \"10.0.1.1:443\"\n";

TEST(EdgeConfig, ValueErrorsNameTheKey) {
  EXPECT_EQ(ErrorOf(std::string(kHead) + "proxy_protocol = \"send\"\n" + kBackend),
            "zrelayd.toml:4: listener[0].proxy_protocol: expected \"accept\", got \"send\"");
  EXPECT_EQ(ErrorOf(std::string(kHead) + "proxy_protocol = true\n" + kBackend),
            "zrelayd.toml:4: listener[0].proxy_protocol: expected \"accept\", got true");
  EXPECT_EQ(ErrorOf(std::string(kHead) + kBackend + "send_proxy = \"v3\"\n"),
            "zrelayd.toml:7: listener[0].backend[0].send_proxy: expected \"v1\" or \"v2\", got "
            "\"v3\"");
  EXPECT_EQ(ErrorOf(std::string(kHead) + "route_by = \"alpn\"\n" + kBackend),
            "zrelayd.toml:4: listener[0].route_by: expected \"sni\", got \"alpn\"");
  EXPECT_EQ(
      ErrorOf(std::string(kHead) + "proxy_protocol = \"accept\"\npreamble_timeout = \"0s\"\n" +
              kBackend),
      "zrelayd.toml:5: listener[0].preamble_timeout: bad duration '0s': must be greater than 0");
  EXPECT_EQ(
      ErrorOf(WithRoute("sni = \"a..example\"\n") + kRouteBackend),
      "zrelayd.toml:11: listener[0].route[0].sni: expected a server name (\"a.example\") or a "
      "wildcard (\"*.example\"), got \"a..example\"");
  for (const char* bad : {"*", "*.", "a.*.example", "**.example", "a.example.", "-a.example"}) {
    EXPECT_EQ(ErrorOf(WithRoute(std::string("sni = [\"ok.example\", \"") + bad + "\"]\n") +
                      kRouteBackend),
              std::string("zrelayd.toml:11: listener[0].route[0].sni[1]: expected a server name "
                          "(\"a.example\") or a wildcard (\"*.example\"), got \"") +
                  bad + "\"");
  }
  EXPECT_EQ(ErrorOf(WithRoute("sni = []\n") + kRouteBackend)
                .rfind("zrelayd.toml:11: listener[0].route[0].sni: ", 0),
            0u);
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\nbalance = \"random\"\n") + kRouteBackend),
            "zrelayd.toml:12: listener[0].route[0].balance: unknown balancing policy 'random' "
            "(choices: round-robin, least-conn, maglev)");
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\nservers = 1\n") + kRouteBackend),
            "zrelayd.toml:12: listener[0].route[0].servers: unknown key");
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\n") + kRouteBackend + "send_proxy = \"v0\"\n"),
            "zrelayd.toml:15: listener[0].route[0].backend[0].send_proxy: expected \"v1\" or "
            "\"v2\", got \"v0\"");
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\n") + kRouteBackend + "wieght = 2\n"),
            "zrelayd.toml:15: listener[0].route[0].backend[0].wieght: unknown key (did you mean "
            "\"weight\"?)");
}

TEST(EdgeConfig, RouteErrors) {
  EXPECT_EQ(ErrorOf(WithRoute("name = \"a\"\n") + kRouteBackend),
            "zrelayd.toml:10: listener[0].route[0].sni: missing; expected a server name or an "
            "array of them, such as [\"a.example\", \"*.b.example\"]");
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\n")),
            "zrelayd.toml:10: listener[0].route[0].backend: missing; expected at least one "
            "[[listener.route.backend]]");
  EXPECT_EQ(ErrorOf(WithRoute("sni = \"a.example\"\n") + kRouteBackend +
                    "\n[[listener.route.backend]]\naddress = \"10.0.1.1:443\"\n"),
            "zrelayd.toml:17: listener[0].route[0].backend[1].address: \"10.0.1.1:443\" is listed "
            "twice (also backend[0])");
  EXPECT_EQ(ErrorOf(WithRoute("name = \"a\"\nsni = \"a.example\"\n") + kRouteBackend +
                    "\n[[listener.route]]\nname = \"b\"\nsni = [\"b.example\", \"A.example\"]\n" +
                    kRouteBackend),
            "zrelayd.toml:19: listener[0].route[1].sni[1]: \"a.example\" is already a name of "
            "route[0]");
  EXPECT_EQ(ErrorOf(WithRoute("name = \"a\"\nsni = \"a.example\"\n") + kRouteBackend +
                    "\n[[listener.route]]\nname = \"a\"\nsni = \"b.example\"\n" + kRouteBackend),
            "zrelayd.toml:18: listener[0].route[1].name: \"a\" is already the name of route[0]");
}

// CidrBlock::Parse's message, after the key path of the item at fault.
TEST(EdgeConfig, BadNetworkNamesTheItem) {
  EXPECT_EQ(ErrorOf(std::string(kHead) +
                    "proxy_protocol = \"accept\"\nproxy_protocol_from = [\"::1/128\", "
                    "\"10.0.0.1/8\"]\n" +
                    kBackend),
            "zrelayd.toml:5: listener[0].proxy_protocol_from[1]: bad network '10.0.0.1/8': host "
            "bits set below /8");
  EXPECT_EQ(ErrorOf(std::string(kHead) + "proxy_protocol = \"accept\"\nproxy_protocol_from = 10\n" +
                    kBackend),
            "zrelayd.toml:5: listener[0].proxy_protocol_from: expected a network or an array of "
            "them, got 10");
}

TEST(EdgeConfig, CrossChecks) {
  EXPECT_EQ(ErrorOf(std::string(kHead) + "proxy_protocol_from = \"10.0.0.0/8\"\n" + kBackend),
            "zrelayd.toml:4: listener[0].proxy_protocol_from: needs proxy_protocol = \"accept\"");
  EXPECT_EQ(ErrorOf(std::string(kHead) + "preamble_timeout = \"2s\"\n" + kBackend),
            "zrelayd.toml:4: listener[0].preamble_timeout: needs proxy_protocol or route_by");
  EXPECT_EQ(
      ErrorOf(std::string(kHead) +
              "tls_cert = \"/etc/zrelay/a.pem\"\ntls_key = \"/etc/zrelay/a.key\"\n" + kRoutes +
              kBackend + "\n[[listener.route]]\nsni = \"a.example\"\n" + kRouteBackend),
      "zrelayd.toml:6: listener[0].route_by: not with tls_cert: routing by SNI passes the "
      "client's TLS through to the backend");
  EXPECT_EQ(ErrorOf(std::string(kHead) + kBackend + "\n[[listener.route]]\nsni = \"a.example\"\n" +
                    kRouteBackend),
            "zrelayd.toml:8: listener[0].route: needs route_by = \"sni\"");
  EXPECT_EQ(ErrorOf(std::string(kHead) + kRoutes + kBackend),
            "zrelayd.toml:1: listener[0].route: missing; expected at least one [[listener.route]] "
            "with route_by");
  // The listener's own backends stay required: they take every other name.
  EXPECT_EQ(ErrorOf(std::string(kHead) + kRoutes + "\n[[listener.route]]\nsni = \"a.example\"\n" +
                    kRouteBackend),
            "zrelayd.toml:1: listener[0].backend: missing; expected at least one "
            "[[listener.backend]]");
}

}  // namespace
}  // namespace zrelay
