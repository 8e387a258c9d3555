// zrelayd --config as a load balancer, on the real process: listeners with
// several backends (and several addresses), round-robin across them, and
// retries past a backend that is down.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/clock.h"
#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::ListenerAddress;
using testing::Process;
using testing::ReadUntil;
using testing::WaitExit;

// Backends on 127.0.0.1 that echo every connection back to its client until
// its EOF, one connection at a time, counting the connections each accepted.
class EchoBackends {
 public:
  explicit EchoBackends(size_t count) : accepted_(count) {
    for (size_t i = 0; i < count; ++i) {
      auto fd = ListenOn(testing::Loopback(AF_INET));
      if (!fd.ok()) return;
      addresses_.push_back(LocalAddress(fd->get())->ToString());
      fds_.push_back(std::move(fd.value()));
    }
    if (ok()) thread_ = std::thread([this] { Serve(); });
  }
  ~EchoBackends() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  bool ok() const { return fds_.size() == accepted_.size(); }
  const std::string& address(size_t i) const { return addresses_[i]; }
  int accepted(size_t i) const { return accepted_[i].load(); }

 private:
  void Serve() {
    TimePoint deadline = Clock::now() + seconds(60);
    std::vector<pollfd> polled;
    for (const UniqueFd& fd : fds_) polled.push_back({fd.get(), POLLIN, 0});
    while (!stop_ && Clock::now() < deadline) {
      if (::poll(polled.data(), polled.size(), 50) <= 0) continue;
      for (size_t i = 0; i < polled.size(); ++i) {
        if (polled[i].revents == 0) continue;
        UniqueFd c(::accept4(polled[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) continue;
        ++accepted_[i];
        testing::SetBlocking(c.get(), true);
        Echo(c.get());
      }
    }
  }
  static void Echo(int fd) {
    char buf[64 << 10];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      if (!testing::WriteAll(fd, std::string(buf, static_cast<size_t>(n)))) break;
    }
    ::shutdown(fd, SHUT_WR);
  }

  std::vector<UniqueFd> fds_;
  std::vector<std::string> addresses_;
  std::vector<std::atomic<int>> accepted_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// One client: `size` pattern bytes up; the echo must come back byte-exact.
testing::Received EchoThrough(const Address& front, uint64_t seed, uint64_t size) {
  auto client = testing::BlockingConnect(front);
  if (!client.ok()) return {.bytes = 0, .first_mismatch = -1, .error = ECONNREFUSED};
  std::thread sender([&] { testing::SendPattern(client->get(), seed, size); });
  testing::Received back = testing::ReceivePattern(client->get(), seed);
  sender.join();
  return back;
}

std::string WriteConfig(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string Backend(const std::string& address) {
  return "[[listener.backend]]\naddress = \"" + address + "\"\n";
}

// Two listeners, one on an IPv4 and an IPv6 address, two backends each. With
// one worker, round-robin gives each backend of a listener every other
// client, whichever of the listener's addresses the client came in on.
TEST(ZrelaydBalance, TwoListenersSpreadRoundRobin) {
  EchoBackends backends(4);
  ASSERT_TRUE(backends.ok());
  int v4 = testing::FreePort(AF_INET), v6 = testing::FreePort(AF_INET6);
  ASSERT_GT(v4, 0);
  ASSERT_GT(v6, 0);
  std::string path =
      WriteConfig("two_pools.toml",
                  "workers = 1\ndrain_grace = \"200ms\"\n\n[[listener]]\nname = \"dual\"\n"
                  "listen = [\"127.0.0.1:" +
                      std::to_string(v4) + "\", \"[::1]:" + std::to_string(v6) + "\"]\n" +
                      Backend(backends.address(0)) + Backend(backends.address(1)) +
                      "\n[[listener]]\nname = \"single\"\nlisten = \"127.0.0.1:0\"\n" +
                      Backend(backends.address(2)) + Backend(backends.address(3)));
  Process p = testing::SpawnZrelayd({"--config", path});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  EXPECT_NE(banner.find("listener dual: listening on 127.0.0.1:" + std::to_string(v4) +
                        ", [::1]:" + std::to_string(v6) + "; 2 backends, round-robin\n"),
            std::string::npos)
      << banner;
  auto single = ListenerAddress(banner, "single");
  ASSERT_TRUE(single.ok()) << single.error().message();

  const Address dual[2] = {testing::Loopback(AF_INET, v4), testing::Loopback(AF_INET6, v6)};
  constexpr int kClients = 8;
  for (int i = 0; i < kClients; ++i) {
    testing::Received back = EchoThrough(dual[i % 2], i, 64 << 10);
    EXPECT_EQ(back.bytes, 64u << 10) << "dual client " << i;
    EXPECT_EQ(back.first_mismatch, -1) << "dual client " << i;
    back = EchoThrough(single.value(), 100 + i, 64 << 10);
    EXPECT_EQ(back.bytes, 64u << 10) << "single client " << i;
    EXPECT_EQ(back.first_mismatch, -1) << "single client " << i;
  }
  for (size_t b = 0; b < 4; ++b) EXPECT_EQ(backends.accepted(b), kClients / 2) << "backend " << b;

  ::kill(p.pid, SIGTERM);
  std::string tail = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(tail.find("accepted 16,"), std::string::npos) << tail;
  ::close(p.err_fd);
  ::unlink(path.c_str());
}

// A backend that refuses every connect, and retries = 1: each client whose
// first pick is the dead backend is retried on the live one, so no client
// fails, and every pair names the live backend.
TEST(ZrelaydBalance, BackendDownWithOneRetryFailsNoClient) {
  EchoBackends backends(1);
  ASSERT_TRUE(backends.ok());
  int down = testing::FreePort(AF_INET);
  ASSERT_GT(down, 0);
  std::string path =
      WriteConfig("one_down.toml",
                  "workers = 1\ndrain_grace = \"200ms\"\nlog_closes = true\n\n"
                  "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nretries = 1\n" +
                      Backend("127.0.0.1:" + std::to_string(down)) + Backend(backends.address(0)));
  Process p = testing::SpawnZrelayd({"--config", path});
  auto front = ListenerAddress(ReadUntil(p.err_fd, "workers\n"), "web");
  ASSERT_TRUE(front.ok()) << front.error().message();

  constexpr int kClients = 10;
  int failed = 0;
  for (int i = 0; i < kClients; ++i) {
    testing::Received back = EchoThrough(front.value(), i, 16 << 10);
    if (back.bytes != 16u << 10 || back.first_mismatch != -1) ++failed;
  }
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(backends.accepted(0), kClients);

  ::kill(p.pid, SIGTERM);
  std::string log = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  // Every client's access line names the live backend.
  const std::string relayed =
      " backend=" + backends.address(0) + " bytes_up=16384 bytes_down=16384 ";
  const std::string web = "zrelayd: listener=web client=";
  int lines = 0;
  for (size_t at = log.find(relayed); at != std::string::npos; at = log.find(relayed, at + 1)) {
    size_t start = log.rfind('\n', at) + 1;  // npos + 1 == 0 for the first line
    if (log.compare(start, web.size(), web) == 0) ++lines;
  }
  EXPECT_EQ(lines, kClients) << log;
  EXPECT_NE(log.find("accepted 10,"), std::string::npos) << log;
  ::close(p.err_fd);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace zrelay
