#include "tests/engine/fd_test_util.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "engine/listener.h"
#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

rlim_t LimitLeavingFreeFds(int free) {
  int fd = 0;
  for (int seen = 0;; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && ++seen == free) break;
  }
  return static_cast<rlim_t>(fd + 1);
}

int OpenFdsBelow(int below) {
  int open = 0;
  for (int fd = 0; fd < below; ++fd) open += ::fcntl(fd, F_GETFD) >= 0;
  return open;
}

namespace {

struct DropHandler : AcceptHandler {
  void OnAccept(size_t, UniqueFd, const Address&) override {}
};

}  // namespace

bool PrimeBackOffPath(WorkerPool& pool, std::string* why) {
  DropHandler drop;
  ListenerOptions options;
  options.address = Loopback();
  options.fd_exhausted_retry = milliseconds(10);
  auto warm = Listener::Start(pool, options, &drop);
  if (!warm) {
    *why = warm.error().message();
    return false;
  }
  const int port = (*warm)->local_address().port();
  for (int fd = 3; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    auto local = LocalAddress(fd);
    if (local.ok() && local->port() == port) ::shutdown(fd, SHUT_RD);
  }
  const bool backed_off =
      WaitFor([&] { return (*warm)->Stats().accept_errors >= 2 * pool.size(); }, seconds(5));
  if (!backed_off) *why = "throwaway listener never retried its accept error";
  (*warm)->Stop();
  return backed_off;
}

}  // namespace zrelay::testing
