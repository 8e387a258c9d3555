#include "tests/tools/zrelayd_process_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "engine/clock.h"
#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

namespace {

// Starts zrelayd with its stderr on `err` and, when `out` >= 0, its stdout on `out`.
pid_t Exec(const std::vector<std::string>& args, int err, int out) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string path = std::string(srcdir ? srcdir : ".") + "/zrelay/tools/zrelayd";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(err, STDERR_FILENO);
    if (out >= 0) ::dup2(out, STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(path.data());
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

Process SpawnZrelayd(const std::vector<std::string>& args) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = Exec(args, err[1], -1);
  ::close(err[1]);
  return {pid, err[0]};
}

Finished RunZrelayd(const std::vector<std::string>& args) {
  int err[2], out[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return {};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(err[0]);
    ::close(err[1]);
    return {};
  }
  pid_t pid = Exec(args, err[1], out[1]);
  ::close(err[1]);
  ::close(out[1]);
  Finished finished;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* texts[2] = {&finished.out, &finished.err};
  TimePoint deadline = Clock::now() + seconds(10);
  int open = 2;
  char buf[4096];
  while (open > 0 && Clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        texts[i]->append(buf, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;  // EOF: poll skips it from now on
        --open;
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  finished.exit = WaitExit(pid);
  return finished;
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

std::string ReadAvailable(int fd) {
  std::string text;
  const TimePoint deadline = Clock::now() + seconds(5);
  char buf[4096];
  pollfd p{fd, POLLIN, 0};
  while (Clock::now() < deadline && ::poll(&p, 1, 300) > 0) {
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

Result<Address> ListenerAddress(const std::string& banner, const std::string& name) {
  std::string prefix = "listener " + name + ": listening on ";
  size_t at = banner.find(prefix);
  if (at == std::string::npos) return Error::Invalid("no '" + prefix + "' in: " + banner);
  at += prefix.size();
  return Address::Parse(banner.substr(at, banner.find_first_of(",;", at) - at));
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

int FreePort(int family) {
  auto fd = ListenOn(Loopback(family), ListenSocketOptions{.backlog = 1, .reuse_port = false});
  return fd.ok() ? LocalAddress(fd->get())->port() : 0;
}

}  // namespace zrelay::testing
