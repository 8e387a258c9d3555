// zrelayd and the PROXY protocol with the real peers that speak it: HAProxy
// in front sends a v1 or v2 header into a listener with proxy_protocol =
// "accept" (the access log shows the real client, not HAProxy), and zrelayd
// sends one with send_proxy = "v1" or "v2" to nginx, which answers with the
// address it read.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/external_peers.h"
#include "tests/tools/log_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Lines;
using testing::ReadFile;

constexpr uint64_t kBytes = 256 << 10;

std::string WriteConfig(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/zrelayd.toml";
  std::ofstream(path) << text;
  return path;
}

// The access log's line about `client`, once there (10 s at most).
std::string AccessLineOf(const std::string& log, const Address& client) {
  const std::string needle = " client=" + client.ToString() + " ";
  std::string found;
  testing::WaitFor(
      [&] {
        for (const std::string& line : Lines(ReadFile(log))) {
          if (line.find(needle) != std::string::npos) found = line;
        }
        return !found.empty();
      },
      seconds(10), milliseconds(10));
  return found;
}

class ZrelaydBehindHaproxy : public ::testing::TestWithParam<const char*> {};

// client -> HAProxy -> zrelayd -> backend, byte for byte; zrelayd logs the
// client's own address and port, which only the PROXY header carried.
TEST_P(ZrelaydBehindHaproxy, AccessLogShowsTheRealClient) {
  const std::string option = GetParam();
  const std::string dir = testing::LogTestDir("haproxy_" + option);
  testing::PatternBackend backend(40);
  const std::string access = dir + "/access.log";
  auto zrelayd = testing::StartZrelaydConfig(
      WriteConfig(dir, "workers = 1\ndrain_grace = \"200ms\"\n[log]\naccess_log = \"" + access +
                           "\"\n\n[[listener]]\nname = \"edge\"\nlisten = \"127.0.0.1:0\"\n"
                           "proxy_protocol = \"accept\"\nproxy_protocol_from = \"127.0.0.0/8\"\n"
                           "[[listener.backend]]\naddress = \"" +
                           backend.address().ToString() + "\"\n"),
      "edge");
  ASSERT_TRUE(zrelayd.address.ok()) << zrelayd.banner;
  EXPECT_NE(zrelayd.banner.find("; proxy protocol accepted"), std::string::npos) << zrelayd.banner;

  const int port = testing::FreePort();
  pid_t haproxy = testing::StartHaproxy(dir, port, zrelayd.address.value(), option);
  ASSERT_GT(haproxy, 0) << ReadFile(dir + "/haproxy.log");
  const Address client = testing::PatternClient(testing::Loopback(AF_INET, port), 40, kBytes);
  EXPECT_EQ(backend.received(), kBytes);

  const std::string line = AccessLineOf(access, client);
  EXPECT_NE(line.find("listener=edge client=" + client.ToString() + " backend=" +
                      backend.address().ToString() + " bytes_up=" + std::to_string(kBytes) +
                      " bytes_down=" + std::to_string(kBytes) + " "),
            std::string::npos)
      << "client " << client.ToString() << "; access log:\n"
      << ReadFile(access);
  EXPECT_TRUE(line.size() > 11 && line.substr(line.size() - 11) == " cause=done") << line;

  testing::StopPeer(haproxy);
  EXPECT_EQ(testing::StopZrelayd(zrelayd.process), 0);
}

INSTANTIATE_TEST_SUITE_P(Versions, ZrelaydBehindHaproxy,
                         ::testing::Values("send-proxy", "send-proxy-v2"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param) == "send-proxy" ? "V1" : "V2";
                         });

class ZrelaydInFrontOfNginx : public ::testing::TestWithParam<const char*> {};

// nginx's stream server reads zrelayd's header and answers with the address
// in it: the client's own, as its socket has it.
TEST_P(ZrelaydInFrontOfNginx, NginxSeesTheClientsAddress) {
  const std::string version = GetParam();
  const std::string dir = testing::LogTestDir("nginx_" + version);
  const int port = testing::FreePort();
  pid_t nginx = testing::StartNginxStream(
      dir,
      "  server {\n    listen 127.0.0.1:" + std::to_string(port) +
          " proxy_protocol;\n    return \"$proxy_protocol_addr:$proxy_protocol_port\\n\";\n  }\n",
      port);
  ASSERT_GT(nginx, 0) << ReadFile(dir + "/nginx.log");
  auto zrelayd = testing::StartZrelaydConfig(
      WriteConfig(dir,
                  "workers = 1\ndrain_grace = \"200ms\"\n\n[[listener]]\nname = \"edge\"\n"
                  "listen = \"127.0.0.1:0\"\n[[listener.backend]]\naddress = \"127.0.0.1:" +
                      std::to_string(port) + "\"\nsend_proxy = \"" + version + "\"\n"),
      "edge");
  ASSERT_TRUE(zrelayd.address.ok()) << zrelayd.banner;

  for (int i = 0; i < 3; ++i) {  // each client its own port
    auto client = testing::BlockingConnect(zrelayd.address.value());
    ASSERT_TRUE(client.ok());
    Result<Address> own = LocalAddress(client->get());
    ASSERT_TRUE(own.ok());
    EXPECT_EQ(testing::ReadToEof(client->get()), own->ToString() + "\n")
        << ReadFile(dir + "/nginx.log");
  }

  EXPECT_EQ(testing::StopZrelayd(zrelayd.process), 0);
  testing::StopPeer(nginx);
}

INSTANTIATE_TEST_SUITE_P(Versions, ZrelaydInFrontOfNginx, ::testing::Values("v1", "v2"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param) == "v1" ? "V1" : "V2";
                         });

// --check counts routes and PROXY listeners, as the start-up line does.
TEST(ZrelaydPreambleCheck, SummaryNamesRoutesAndProxyListeners) {
  const std::string dir = testing::LogTestDir("check");
  const std::string path = WriteConfig(
      dir,
      "[[listener]]\nname = \"edge\"\nlisten = \"127.0.0.1:8443\"\nproxy_protocol = \"accept\"\n"
      "route_by = \"sni\"\n"
      "[[listener.backend]]\naddress = \"127.0.0.1:9000\"\n"
      "[[listener.route]]\nsni = \"a.example\"\n"
      "[[listener.route.backend]]\naddress = \"127.0.0.1:9001\"\n"
      "[[listener.route]]\nsni = \"*.b.example\"\n"
      "[[listener.route.backend]]\naddress = \"127.0.0.1:9002\"\n"
      "[[listener.route.backend]]\naddress = \"127.0.0.1:9003\"\n");
  testing::Finished run = testing::RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 0) << run.err;
  EXPECT_EQ(run.out, path +
                         ": OK, 1 listener, 4 backends, 2 routes by SNI, proxy protocol accepted "
                         "on 1 listener\n");
  EXPECT_EQ(run.err, "");
}

}  // namespace
}  // namespace zrelay
