// zrelayd as a user runs it: a real process, real sockets, real signals.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

std::string ZrelaydPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/zrelay/tools/zrelayd";
}

struct Process {
  pid_t pid = -1;
  int err_fd = -1;  // read end of the child's stderr
};

Process Spawn(const std::vector<std::string>& args) {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDERR_FILENO);
    std::vector<char*> argv;
    std::string path = ZrelaydPath();
    argv.push_back(path.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    _exit(127);
  }
  ::close(out[1]);
  return {pid, out[0]};
}

// Reads the child's stderr until `needle` shows up, EOF, or 10 s.
std::string ReadUntil(int fd, const std::string& needle) {
  std::string text;
  TimePoint deadline = Clock::now() + seconds(10);
  char buf[4096];
  while (text.find(needle) == std::string::npos && Clock::now() < deadline) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

int WaitExit(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    std::this_thread::sleep_for(milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

TEST(ZrelaydProcess, UsageErrorsExitTwoAndNameTheProblem) {
  Process p = Spawn({"--listen", "127.0.0.1:notaport", "--backend", "127.0.0.1:1"});
  std::string err = ReadUntil(p.err_fd, "usage:");
  EXPECT_EQ(WaitExit(p.pid), 2);
  EXPECT_NE(err.find("'127.0.0.1:notaport'"), std::string::npos) << err;
  ::close(p.err_fd);
}

TEST(ZrelaydProcess, PortInUseExitsOne) {
  auto taken = ListenOn(testing::Loopback(AF_INET), ListenSocketOptions{.backlog = 1, .reuse_port = false});
  ASSERT_TRUE(taken.ok());
  std::string addr = LocalAddress(taken->get())->ToString();
  Process p = Spawn({"--listen", addr, "--backend", "127.0.0.1:1"});
  std::string err = ReadUntil(p.err_fd, "\n");
  EXPECT_EQ(WaitExit(p.pid), 1);
  EXPECT_NE(err.find(addr), std::string::npos) << err;
  ::close(p.err_fd);
}

TEST(ZrelaydProcess, RelaysThenDrainsOnSigtermAndPrintsTotals) {
  auto backend = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(backend.ok());
  testing::SetBlocking(backend->get(), true);
  std::string backend_addr = LocalAddress(backend->get())->ToString();
  Process p = Spawn({"--listen", "127.0.0.1:0", "--backend", backend_addr, "--workers", "2",
                     "--drain-grace", "200ms"});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  size_t at = banner.find("listening on ");
  ASSERT_NE(at, std::string::npos) << banner;
  auto front = Address::Parse(banner.substr(at + 13, banner.find(',', at) - at - 13));
  ASSERT_TRUE(front.ok()) << banner;

  std::thread server([&] {
    int c = ::accept(backend->get(), nullptr, nullptr);
    testing::Received r = testing::ReceivePattern(c, 5);
    testing::SendPattern(c, 6, r.bytes);
    ::close(c);
  });
  auto client = testing::BlockingConnect(front.value());
  ASSERT_TRUE(client.ok());
  std::thread sender([&] { testing::SendPattern(client->get(), 5, 1 << 20); });
  testing::Received back = testing::ReceivePattern(client->get(), 6);
  sender.join();
  server.join();
  EXPECT_EQ(back.bytes, 1u << 20);
  EXPECT_EQ(back.first_mismatch, -1);

  ::kill(p.pid, SIGTERM);
  std::string tail = ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(tail.find("draining"), std::string::npos) << tail;
  EXPECT_NE(tail.find("accepted 1"), std::string::npos) << tail;
  EXPECT_NE(tail.find("client->backend 1048576"), std::string::npos) << tail;
  ::close(p.err_fd);
}

}  // namespace
}  // namespace zrelay
