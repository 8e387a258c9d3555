// zrelayd's [admin] on the real process: a transfer shows up in what
// /metrics serves (and promtool accepts it), /healthz turns to 503 once a
// drain starts, and an admin address that cannot be bound stops the start.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/holding_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/admin_http_client.h"
#include "tests/tools/promtool_check.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::HoldingBackend;
using testing::HttpGet;
using testing::HttpReply;
using testing::Process;
using testing::ReadUntil;
using testing::WaitExit;

std::string WriteConfig(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// A listener "web" in front of `backend`, and [admin] at `admin`.
std::string Config(const Address& backend, const std::string& admin, const std::string& grace) {
  return "workers = 2\ndrain_grace = \"" + grace + "\"\n\n[admin]\nlisten = \"" + admin +
         "\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n"
         "[[listener.backend]]\naddress = \"" +
         backend.ToString() + "\"\n";
}

// The address of zrelayd's "admin: listening on ADDR" line.
Result<Address> AdminAddress(const std::string& banner) {
  const std::string prefix = "zrelayd: admin: listening on ";
  const size_t at = banner.find(prefix);
  if (at == std::string::npos) return Error::Invalid("no admin line in: " + banner);
  const size_t start = at + prefix.size();
  return Address::Parse(banner.substr(start, banner.find('\n', start) - start));
}

// A client of `front`: `size` bytes of HoldingBackend's pattern up, with a
// FIN; the same number back, checked byte for byte.
std::thread StartClient(const Address& front, uint64_t size, testing::Received* back) {
  return std::thread([front, size, back] {
    auto client = testing::BlockingConnect(front);
    if (!client.ok()) return;
    std::thread sender([&] { testing::SendPattern(client->get(), HoldingBackend::kUpSeed, size); });
    *back = testing::ReceivePattern(client->get(), HoldingBackend::kDownSeed);
    sender.join();
  });
}

// Scrapes `admin` until the exposition has `line` (at most 10 s): counters
// of a pair that just closed are summed from the workers without waiting.
std::string ScrapeUntil(const Address& admin, const std::string& line) {
  std::string body;
  testing::WaitFor(
      [&] {
        Result<HttpReply> reply = HttpGet(admin, "/metrics");
        body = reply.ok() ? reply->body : "";
        return body.find("\n" + line + "\n") != std::string::npos;
      },
      seconds(10), milliseconds(20));
  return body;
}

TEST(AdminZrelayd, MetricsCountATransfer) {
  HoldingBackend backend;
  backend.Serve();
  std::string path = WriteConfig("metrics.toml", Config(backend.address(), "127.0.0.1:0", "1s"));
  Process p = testing::SpawnZrelayd({"--config", path});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  auto admin = AdminAddress(banner);
  auto front = testing::ListenerAddress(banner, "web");
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  ASSERT_TRUE(front.ok()) << front.error().message();

  Result<HttpReply> health = HttpGet(admin.value(), "/healthz");
  ASSERT_TRUE(health.ok()) << health.error().message();
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");

  constexpr uint64_t kSize = 3 << 20;
  testing::Received back;
  StartClient(front.value(), kSize, &back).join();
  EXPECT_EQ(back.bytes, kSize);
  EXPECT_EQ(back.first_mismatch, -1);
  EXPECT_TRUE(backend.ok());

  const std::string size = std::to_string(kSize);
  std::string body = ScrapeUntil(
      admin.value(), "zrelay_listener_connections_closed_total{listener=\"web\",cause=\"done\"} 1");
  const std::string to_backend = "listener=\"web\",backend=\"" + backend.address().ToString();
  for (const std::string& line : std::vector<std::string>{
           "zrelay_listener_connections_accepted_total{listener=\"web\"} 1",
           "zrelay_listener_connections_open{listener=\"web\"} 0",
           "zrelay_listener_relayed_bytes_total{listener=\"web\",side=\"client\"} " + size,
           "zrelay_listener_relayed_bytes_total{listener=\"web\",side=\"backend\"} " + size,
           "zrelay_backend_up{" + to_backend + "\"} 1",
           "zrelay_backend_connects_total{" + to_backend + "\"} 1",
           "zrelay_draining 0",
       }) {
    EXPECT_NE(body.find("\n" + line + "\n"), std::string::npos) << line << "\n" << body;
  }
  Status checked = testing::PromtoolCheckMetrics(body);
  EXPECT_TRUE(checked.ok()) << checked.error().message();

  ::kill(p.pid, SIGTERM);
  ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_FALSE(testing::BlockingConnect(admin.value()).ok());  // stopped with zrelayd
}

TEST(AdminZrelayd, HealthzIs503WhileDraining) {
  HoldingBackend backend;  // holds the pair open until Serve(), well within the grace
  std::string path = WriteConfig("drain.toml", Config(backend.address(), "127.0.0.1:0", "30s"));
  Process p = testing::SpawnZrelayd({"--config", path});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  auto admin = AdminAddress(banner);
  auto front = testing::ListenerAddress(banner, "web");
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  ASSERT_TRUE(front.ok()) << front.error().message();

  testing::Received back;
  std::thread client = StartClient(front.value(), 1 << 16, &back);
  ASSERT_TRUE(testing::WaitFor([&] { return backend.accepted() == 1; }, seconds(10)));
  ::kill(p.pid, SIGTERM);
  bool draining = testing::WaitFor(
      [&] {
        Result<HttpReply> reply = HttpGet(admin.value(), "/healthz");
        return reply.ok() && reply->status == 503 && reply->body == "draining\n";
      },
      seconds(10), milliseconds(20));
  EXPECT_TRUE(draining);
  std::string body = ScrapeUntil(admin.value(), "zrelay_draining 1");
  EXPECT_NE(body.find("\nzrelay_listener_connections_open{listener=\"web\"} 1\n"),
            std::string::npos)
      << body;

  backend.Serve();  // the pair finishes, and with it the drain
  client.join();
  EXPECT_EQ(back.bytes, 1u << 16);
  EXPECT_EQ(back.first_mismatch, -1);
  ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
}

TEST(AdminZrelayd, AdminAddressInUseIsASetupError) {
  HoldingBackend backend;
  ListenSocketOptions exclusive;
  exclusive.reuse_port = false;
  auto taken = ListenOn(testing::Loopback(AF_INET), exclusive);
  ASSERT_TRUE(taken.ok());
  const std::string address = LocalAddress(taken->get())->ToString();
  std::string path = WriteConfig("taken.toml", Config(backend.address(), address, "1s"));
  testing::Finished run = testing::RunZrelayd({"--config", path});
  EXPECT_EQ(run.exit, 1);
  EXPECT_NE(run.err.find("zrelayd: admin: bind " + address + ": Address already in use\n"),
            std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace zrelay
