// zrelayd as a user runs it: a real process, real sockets, real signals.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/test_certs.h"

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
  std::string err = ReadUntil(p.err_fd, "--help");
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

namespace zrelay {
namespace {

// Runs a shell command line with `input` on stdin; returns its stdout.
std::string RunWithInput(const std::string& command, const std::string& input) {
  std::string full = "printf '%s' '" + input + "' | timeout 10 " + command + " 2>/dev/null";
  FILE* p = ::popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

int FreePort() {
  auto fd = ListenOn(testing::Loopback(AF_INET), ListenSocketOptions{.backlog = 1, .reuse_port = false});
  return LocalAddress(fd->get())->port();
}

// Real `openssl s_client` against zrelayd terminating TLS in front of a plain
// backend that upper-cases what it gets.
TEST(ZrelaydTls, OpensslClientThroughTermination) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  auto backend = ListenOn(testing::Loopback(AF_INET));
  testing::SetBlocking(backend->get(), true);
  std::thread server([&] {
    int c = ::accept(backend->get(), nullptr, nullptr);
    char buf[256];
    ssize_t n = ::recv(c, buf, sizeof(buf), 0);
    for (ssize_t i = 0; i < n; ++i) buf[i] = static_cast<char>(std::toupper(buf[i]));
    if (n > 0) ::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
    ::close(c);
  });
  Process p = Spawn({"--listen", "127.0.0.1:0", "--backend", LocalAddress(backend->get())->ToString(),
                     "--tls-cert", certs->server.cert, "--tls-key", certs->server.key,
                     "--drain-grace", "100ms"});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  size_t at = banner.find("127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << banner;
  std::string front = banner.substr(at, banner.find(',', at) - at);
  std::string out = RunWithInput("openssl s_client -quiet -connect " + front + " -CAfile " +
                                     certs->ca.cert + " -servername localhost -verify_return_error",
                                 "hello through tls\\n");
  server.join();
  EXPECT_NE(out.find("HELLO THROUGH TLS"), std::string::npos) << out;
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(WaitExit(p.pid), 0);
  ::close(p.err_fd);
  testing::RemoveTestCerts(certs.value());
}

// zrelayd originating TLS to a real `openssl s_server -rev` (which answers
// each line reversed), with the backend's certificate verified.
TEST(ZrelaydTls, OriginationToOpensslServer) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  int port = FreePort();
  std::string cmd = "exec openssl s_server -quiet -rev -accept 127.0.0.1:" + std::to_string(port) +
                    " -cert " + certs->server.cert + " -key " + certs->server.key;
  pid_t s_server = ::fork();
  if (s_server == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // s_server is ready once it accepts TCP connections.
  Address backend = Address::Parse("127.0.0.1:" + std::to_string(port)).value();
  ASSERT_TRUE(testing::WaitFor([&] { return testing::BlockingConnect(backend).ok(); }, seconds(10),
                               milliseconds(20)));
  Process p = Spawn({"--listen", "127.0.0.1:0", "--backend", backend.ToString(), "--backend-tls",
                     "--backend-ca", certs->ca.cert, "--backend-sni", "localhost",
                     "--drain-grace", "100ms"});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  size_t at = banner.find("127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << banner;
  auto front = Address::Parse(banner.substr(at, banner.find(',', at) - at));
  auto client = testing::BlockingConnect(front.value());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(testing::WriteAll(client->get(), "zrelay\n"));
  std::string got;
  char buf[64];
  while (got.find('\n') == std::string::npos) {
    ssize_t n = ::recv(client->get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "yalerz\n");
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(WaitExit(p.pid), 0);
  ::kill(s_server, SIGTERM);
  ::waitpid(s_server, nullptr, 0);
  ::close(p.err_fd);
  testing::RemoveTestCerts(certs.value());
}

}  // namespace
}  // namespace zrelay
