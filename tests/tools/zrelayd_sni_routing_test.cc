// zrelayd's route_by = "sni" with real TLS peers: `openssl s_client` with a
// server name (exact, wildcard, none) reaches the nginx TLS server of its
// route, told apart by what each answers and by the certificate it shows;
// garbage and a client that sends nothing reach no backend at all.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/test_certs.h"
#include "tests/tools/external_peers.h"
#include "tests/tools/log_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::ReadFile;

std::string WriteConfig(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/zrelayd.toml";
  std::ofstream(path) << text;
  return path;
}

// route_by = "sni": route "a" for a.example, route "b" for *.b.example,
// the listener's own backend for every other client.
std::string RoutingConfig(const std::string& access_log, const Address& a, const Address& b,
                          const Address& other) {
  return "workers = 1\ndrain_grace = \"200ms\"\n[log]\naccess_log = \"" + access_log +
         "\"\n\n[[listener]]\nname = \"edge\"\nlisten = \"127.0.0.1:0\"\n"
         "route_by = \"sni\"\npreamble_timeout = \"300ms\"\n"
         "[[listener.backend]]\naddress = \"" +
         other.ToString() +
         "\"\n"
         "[[listener.route]]\nname = \"a\"\nsni = \"a.example\"\n"
         "[[listener.route.backend]]\naddress = \"" +
         a.ToString() +
         "\"\n"
         "[[listener.route]]\nname = \"b\"\nsni = \"*.b.example\"\n"
         "[[listener.route.backend]]\naddress = \"" +
         b.ToString() + "\"\n";
}

// What `openssl s_client` printed from the server, after verifying its
// certificate against `ca` for `expected_host`; `sni` empty: none sent.
std::string SClient(const Address& to, const std::string& sni, const std::string& expected_host,
                    const std::string& ca) {
  return testing::RunShell("openssl s_client -quiet -connect " + to.ToString() +
                           (sni.empty() ? " -noservername" : " -servername " + sni) + " -CAfile " +
                           ca + " -verify_return_error -verify_hostname " + expected_host +
                           " </dev/null 2>/dev/null");
}

TEST(ZrelaydSniRouting, EachNameReachesItsRoutesServer) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  const std::string dir = testing::LogTestDir("sni_nginx");
  struct Server {
    const char* name;
    const char* san;
    int port;
  };
  std::vector<Server> servers = {{"a", "a.example", testing::FreePort()},
                                 {"b", "*.b.example", testing::FreePort()},
                                 {"other", "other.example", testing::FreePort()}};
  std::string stream;
  for (const Server& server : servers) {
    auto cert = testing::IssueCert(
        certs->dir, server.name, {.common_name = server.san, .dns_names = {server.san}}, certs->ca);
    ASSERT_TRUE(cert.ok()) << cert.error().message();
    stream += "  server {\n    listen 127.0.0.1:" + std::to_string(server.port) +
              " ssl;\n    ssl_certificate " + cert->cert + ";\n    ssl_certificate_key " +
              cert->key + ";\n    return \"route " + server.name + "\\n\";\n  }\n";
  }
  pid_t nginx = testing::StartNginxStream(dir, stream, servers.back().port);
  ASSERT_GT(nginx, 0) << ReadFile(dir + "/nginx.log");
  for (const Server& server : servers) ASSERT_TRUE(testing::WaitListening(server.port));

  auto zrelayd = testing::StartZrelaydConfig(
      WriteConfig(dir,
                  RoutingConfig(dir + "/access.log", testing::Loopback(AF_INET, servers[0].port),
                                testing::Loopback(AF_INET, servers[1].port),
                                testing::Loopback(AF_INET, servers[2].port))),
      "edge");
  ASSERT_TRUE(zrelayd.address.ok()) << zrelayd.banner;
  EXPECT_NE(zrelayd.banner.find("; 2 routes by SNI"), std::string::npos) << zrelayd.banner;
  const Address& front = zrelayd.address.value();
  const std::string& ca = certs->ca.cert;

  EXPECT_EQ(SClient(front, "a.example", "a.example", ca), "route a\n");
  EXPECT_EQ(SClient(front, "A.Example", "a.example", ca), "route a\n");  // names ignore case
  EXPECT_EQ(SClient(front, "x.b.example", "x.b.example", ca), "route b\n");
  // One label or more before .b.example (the certificate's *.b.example
  // covers one: it is checked for x.b.example).
  EXPECT_EQ(SClient(front, "y.x.b.example", "x.b.example", ca), "route b\n");
  EXPECT_EQ(SClient(front, "b.example", "other.example", ca), "route other\n");  // not *.b.example
  EXPECT_EQ(SClient(front, "c.example", "other.example", ca), "route other\n");
  EXPECT_EQ(SClient(front, "", "other.example", ca), "route other\n");

  EXPECT_EQ(testing::StopZrelayd(zrelayd.process), 0);
  testing::StopPeer(nginx);
  testing::RemoveTestCerts(certs.value());
}

// A listening socket the test never serves: it only counts the connections
// zrelayd made to it (the kernel completes them into the backlog).
class CountingBackend {
 public:
  CountingBackend() {
    auto fd = ListenOn(testing::Loopback(AF_INET));
    EXPECT_TRUE(fd.ok());
    if (!fd.ok()) return;
    fd_ = std::move(fd.value());
    address_ = LocalAddress(fd_.get()).value();
  }
  const Address& address() const { return address_; }
  // Accepts (and closes) what waits; the total so far.
  int Accepted() {
    while (true) {
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!c) return accepted_;
      ++accepted_;
    }
  }

 private:
  UniqueFd fd_;
  Address address_;
  int accepted_ = 0;
};

// What zrelayd sent before closing `client` (EOF or reset, 10 s at most).
std::string UntilClosed(int client) { return testing::ReadToEof(client); }

TEST(ZrelaydSniRouting, GarbageAndSilenceReachNoBackend) {
  const std::string dir = testing::LogTestDir("sni_refused");
  CountingBackend a, b, other;
  const std::string access = dir + "/access.log";
  auto zrelayd = testing::StartZrelaydConfig(
      WriteConfig(dir, RoutingConfig(access, a.address(), b.address(), other.address())), "edge");
  ASSERT_TRUE(zrelayd.address.ok()) << zrelayd.banner;
  const Address& front = zrelayd.address.value();

  {  // Not TLS: an HTTP request naming a routed host.
    auto client = testing::BlockingConnect(front);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(testing::WriteAll(client->get(), "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"));
    EXPECT_EQ(UntilClosed(client->get()), "");
  }
  {  // Silent: closed at preamble_timeout.
    auto client = testing::BlockingConnect(front);
    ASSERT_TRUE(client.ok());
    Result<Address> own = LocalAddress(client->get());
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(UntilClosed(client->get()), "");
    const std::string needle = "client=" + own->ToString() + " ";
    std::string line;
    testing::WaitFor(
        [&] {
          for (const std::string& l : testing::Lines(ReadFile(access))) {
            if (l.find(needle) != std::string::npos) line = l;
          }
          return !line.empty();
        },
        seconds(10), milliseconds(10));
    EXPECT_NE(line.find(needle + "backend=- "), std::string::npos) << ReadFile(access);
    EXPECT_NE(line.find(" cause=timeout"), std::string::npos) << line;
  }
  EXPECT_EQ(a.Accepted() + b.Accepted() + other.Accepted(), 0);

  // The same listener does connect a ClientHello for a.example (the
  // handshake then goes nowhere: route a's backend never answers).
  pid_t hello = testing::SpawnShell(
      "openssl s_client -connect " + front.ToString() + " -servername a.example </dev/null",
      dir + "/s_client.log");
  EXPECT_TRUE(testing::WaitFor([&] { return a.Accepted() == 1; }, seconds(10), milliseconds(10)));
  testing::StopPeer(hello);
  EXPECT_EQ(b.Accepted() + other.Accepted(), 0);

  EXPECT_EQ(testing::StopZrelayd(zrelayd.process), 0);
}

}  // namespace
}  // namespace zrelay
