#include "tests/imap/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace zrelay::testing {

namespace {

// Starts argv with stderr (and, when `both`, stdout) on a new pipe whose
// read end goes to *out_fd.
pid_t Spawn(const std::vector<std::string>& argv, bool both, int* out_fd) {
  int out[2];
  if (argv.empty() || ::pipe2(out, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDERR_FILENO);
    if (both) ::dup2(out[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return -1;
  }
  *out_fd = out[0];
  return pid;
}

// Waits for `pid` up to `timeout`, then kills it.
int Reap(pid_t pid, Duration timeout) {
  int status = 0;
  TimePoint deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

// Appends what `fd` has to `text`, waiting up to `wait`; false at EOF.
bool ReadSome(int fd, std::string& text, Duration wait) {
  pollfd p{fd, POLLIN, 0};
  int ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(wait).count());
  if (::poll(&p, 1, ms) <= 0) return true;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n <= 0) return false;
  text.append(buf, static_cast<size_t>(n));
  return true;
}

}  // namespace

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/zrelay/" + path;
}

Child::Child(const std::vector<std::string>& argv) { pid_ = Spawn(argv, false, &err_fd_); }

Child::~Child() { Stop(); }

std::string Child::ReadUntil(const std::string& needle) {
  if (err_fd_ < 0) return err_;
  TimePoint deadline = Clock::now() + seconds(10);
  while (err_.find(needle) == std::string::npos && Clock::now() < deadline) {
    if (!ReadSome(err_fd_, err_, milliseconds(100))) break;
  }
  return err_;
}

int Child::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int exit = Reap(pid_, seconds(10));
  pid_ = -1;
  ::close(err_fd_);
  err_fd_ = -1;
  return exit;
}

Finished RunToEnd(const std::vector<std::string>& argv, Duration timeout) {
  Finished finished;
  int fd = -1;
  pid_t pid = Spawn(argv, true, &fd);
  if (pid < 0) return finished;
  TimePoint deadline = Clock::now() + timeout;
  while (Clock::now() < deadline && ReadSome(fd, finished.output, milliseconds(100))) {
  }
  ::close(fd);
  // After EOF the child is about to exit; past the deadline it is killed.
  finished.exit = Reap(pid, Clock::now() < deadline ? seconds(5) : Duration::zero());
  return finished;
}

}  // namespace zrelay::testing
