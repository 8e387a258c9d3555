#include "tests/tools/notify_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace zrelay::testing {

NotifySocket::NotifySocket() {
  static std::atomic<int> count{0};
  name_ = "@zrelayd-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(count++);
  fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::copy(name_.begin() + 1, name_.end(), addr.sun_path + 1);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) fd_.Reset();
}

std::string NotifySocket::Next(Duration wait) {
  if (!fd_) return "";
  pollfd pfd{fd_.get(), POLLIN, 0};
  const int ms = static_cast<int>(std::chrono::duration_cast<milliseconds>(wait).count());
  if (::poll(&pfd, 1, ms) != 1) return "";
  char buf[512];
  ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

}  // namespace zrelay::testing
