#include "tests/tools/external_peers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/clock.h"
#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

std::string FindProgram(const std::string& name) {
  for (const char* dir :
       {"/usr/sbin/", "/usr/bin/", "/usr/local/sbin/", "/usr/local/bin/", "/sbin/", "/bin/"}) {
    const std::string path = dir + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return name;
}

pid_t SpawnShell(const std::string& command, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    ::execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

namespace {

// "0100007F:1F90 ... 0A": 127.0.0.1:port in state LISTEN.
bool ListensNow(int port) {
  std::ifstream tcp("/proc/net/tcp");
  char wanted[32];
  std::snprintf(wanted, sizeof(wanted), "0100007F:%04X", port);
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local == wanted && state == "0A") return true;
  }
  return false;
}

std::string Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

}  // namespace

bool WaitListening(int port) {
  return WaitFor([port] { return ListensNow(port); }, seconds(10), milliseconds(20));
}

void StopPeer(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    ::usleep(10'000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

std::string RunShell(const std::string& command) {
  FILE* pipe = ::popen(("timeout 10 " + command).c_str(), "r");
  if (pipe == nullptr) return "(popen failed)";
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

pid_t StartHaproxy(const std::string& dir, int port, const Address& server,
                   const std::string& server_options) {
  std::string config = Write(dir + "/haproxy.cfg",
                             "global\n  maxconn 64\n"
                             "defaults\n  mode tcp\n  timeout connect 5s\n"
                             "  timeout client 30s\n  timeout server 30s\n"
                             "frontend front\n  bind 127.0.0.1:" +
                                 std::to_string(port) +
                                 "\n  default_backend zrelayd\n"
                                 "backend zrelayd\n  server z " +
                                 server.ToString() + " " + server_options + "\n");
  pid_t pid = SpawnShell(FindProgram("haproxy") + " -db -f " + config, dir + "/haproxy.log");
  if (WaitListening(port)) return pid;
  StopPeer(pid);
  return -1;
}

pid_t StartNginxStream(const std::string& dir, const std::string& stream, int port) {
  std::string config = Write(dir + "/nginx.conf",
                             "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
                             "daemon off;\nmaster_process off;\npid " +
                                 dir +
                                 "/nginx.pid;\nerror_log stderr warn;\n"
                                 "events {\n  worker_connections 64;\n}\nstream {\n" +
                                 stream + "}\n");
  pid_t pid = SpawnShell(FindProgram("nginx") + " -p " + dir + " -e stderr -c " + config,
                         dir + "/nginx.log");
  if (WaitListening(port)) return pid;
  StopPeer(pid);
  return -1;
}

PatternBackend::PatternBackend(uint64_t seed) {
  auto listening = ListenOn(Loopback(AF_INET));
  EXPECT_TRUE(listening.ok());
  if (!listening.ok()) return;
  fd_ = std::move(listening.value());
  SetBlocking(fd_.get(), true);
  address_ = LocalAddress(fd_.get()).value();
  thread_ = std::thread([this, seed] {
    UniqueFd client(::accept(fd_.get(), nullptr, nullptr));
    if (!client) return;
    Received r = ReceivePattern(client.get(), seed);
    EXPECT_EQ(r.first_mismatch, -1);
    received_ = r.bytes;
    SendPattern(client.get(), seed + 1, r.bytes);
  });
}

PatternBackend::~PatternBackend() {
  if (fd_) ::shutdown(fd_.get(), SHUT_RDWR);  // ends an accept no client came to
  if (thread_.joinable()) thread_.join();
}

Address PatternClient(const Address& to, uint64_t seed, uint64_t size) {
  auto client = BlockingConnect(to);
  EXPECT_TRUE(client.ok()) << to.ToString();
  if (!client.ok()) return Address{};
  EXPECT_EQ(SendPattern(client->get(), seed, size, 64 << 10, /*shut_write=*/true), size);
  Received back = ReceivePattern(client->get(), seed + 1);
  EXPECT_EQ(back.bytes, size);
  EXPECT_EQ(back.first_mismatch, -1);
  Result<Address> own = LocalAddress(client->get());
  return own.ok() ? own.value() : Address{};
}

std::string ReadToEof(int fd) {
  timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  std::string text;
  char buf[4096];
  TimePoint deadline = Clock::now() + seconds(10);
  while (Clock::now() < deadline) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

StartedZrelayd StartZrelaydConfig(const std::string& config, const std::string& name) {
  StartedZrelayd started;
  started.process = SpawnZrelayd({"--config", config});
  started.banner = ReadUntil(started.process.err_fd, " workers\n");
  started.address = ListenerAddress(started.banner, name);
  return started;
}

int StopZrelayd(const Process& process) {
  ::kill(process.pid, SIGTERM);
  int status = WaitExit(process.pid);
  ::close(process.err_fd);
  return status;
}

}  // namespace zrelay::testing
