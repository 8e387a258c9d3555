#include "tests/support/loop_test_util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "engine/socket.h"

namespace zrelay::testing {
namespace {

Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Error::FromErrno(errno, "fcntl O_NONBLOCK");
  }
  return Status::Ok();
}

}  // namespace

bool RunUntil(EventLoop& loop, const std::function<bool()>& done, Duration deadline) {
  const TimePoint end = Clock::now() + deadline;
  while (!done()) {
    const TimePoint now = Clock::now();
    if (now >= end) return done();
    // Short turns: `done` may depend on other threads, not only on events.
    loop.RunOnce(std::min<Duration>(end - now, milliseconds(10)));
  }
  return true;
}

bool WaitFor(const std::function<bool()>& done, Duration deadline, Duration poll) {
  const TimePoint end = Clock::now() + deadline;
  while (!done()) {
    if (Clock::now() >= end) return done();
    std::this_thread::sleep_for(poll);
  }
  return true;
}

Address Loopback(int family, int port) {
  const std::string text = family == AF_INET6 ? "[::1]:" : "127.0.0.1:";
  return Address::Parse(text + std::to_string(port)).value();
}

Result<UniqueFd> BlockingConnect(const Address& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno(errno, "socket");
  int rc;
  do {
    rc = ::connect(fd.get(), address.sockaddr(), address.length());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return Error::FromErrno(errno, "connect to " + address.ToString());
  return fd;
}

Result<SocketPair> TcpPair(int family) {
  ListenSocketOptions options;
  options.backlog = 4;
  options.reuse_port = false;
  Result<UniqueFd> listener = ListenOn(Loopback(family), options);
  if (!listener) return listener.error();
  Result<Address> bound = LocalAddress(listener->get());
  if (!bound) return bound.error();
  Result<UniqueFd> client = BlockingConnect(*bound);
  if (!client) return client.error();
  // The listener is non-blocking; the connect has completed, so the
  // connection is queued already (poll only guards against surprises).
  struct pollfd p {listener->get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return Error::FromErrno(ETIMEDOUT, "accept on loopback");
  UniqueFd server(::accept4(listener->get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!server) return Error::FromErrno(errno, "accept4");
  Status s = SetNonBlocking(client->get());
  if (!s) return s.error();
  (void)SetNoDelay(client->get());
  (void)SetNoDelay(server.get());
  return SocketPair{std::move(client).value(), std::move(server)};
}

Result<SocketPair> UnixPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return Error::FromErrno(errno, "socketpair");
  }
  return SocketPair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool WriteAll(int fd, const std::string& data, Duration deadline) {
  const TimePoint end = Clock::now() + deadline;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && Clock::now() < end) {
      struct pollfd p {fd, POLLOUT, 0};
      (void)::poll(&p, 1, 10);
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace zrelay::testing
