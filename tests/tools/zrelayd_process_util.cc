#include "tests/tools/zrelayd_process_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "engine/clock.h"
#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

Process SpawnZrelayd(const std::vector<std::string>& args) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string path = std::string(srcdir ? srcdir : ".") + "/zrelay/tools/zrelayd";
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(path.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    _exit(127);
  }
  ::close(out[1]);
  return {pid, out[0]};
}

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
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

Result<Address> ListeningAddress(const std::string& banner) {
  size_t at = banner.find("listening on ");
  if (at == std::string::npos) return Error::Invalid("no 'listening on' in: " + banner);
  at += 13;
  return Address::Parse(banner.substr(at, banner.find(',', at) - at));
}

pid_t StartOpensslServer(int port, const std::string& args) {
  std::string cmd =
      "exec openssl s_server -quiet -rev -accept 127.0.0.1:" + std::to_string(port) + " " + args;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  Address address = Loopback(AF_INET, port);
  if (!WaitFor([&] { return BlockingConnect(address).ok(); }, seconds(10), milliseconds(20))) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

int FreePort() {
  auto fd = ListenOn(Loopback(AF_INET), ListenSocketOptions{.backlog = 1, .reuse_port = false});
  return fd.ok() ? LocalAddress(fd->get())->port() : 0;
}

}  // namespace zrelay::testing
