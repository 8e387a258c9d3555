#include "engine/socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace zrelay {
namespace {

Result<UniqueFd> NewSocket(const Address& address, const char* what) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd)
    return Error::FromErrno(errno, std::string(what) + " " + address.ToString() + ": socket");
  return fd;
}

Status SetInt(int fd, int level, int name, int value, const char* option) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return Error::FromErrno(errno,
                            "setsockopt " + std::string(option) + " on fd " + std::to_string(fd));
  }
  return Status::Ok();
}

// True when `fd` is a unix socket (TCP options are then no-ops).
bool IsUnix(int fd) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

}  // namespace

Result<UniqueFd> ListenOn(const Address& address, const ListenSocketOptions& options) {
  Result<UniqueFd> fd = NewSocket(address, "listen on");
  if (!fd) return fd;
  const std::string name = address.ToString();
  if (!address.is_unix()) {
    Status s = SetInt(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (!s) return Error(s.error().code(), "listen on " + name + ": " + s.error().message());
    if (options.reuse_port) {
      s = SetInt(fd->get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
      if (!s) return Error(s.error().code(), "listen on " + name + ": " + s.error().message());
    }
  }
  if (::bind(fd->get(), address.sockaddr(), address.length()) != 0) {
    return Error::FromErrno(errno, "bind " + name);
  }
  if (::listen(fd->get(), options.backlog) != 0) {
    return Error::FromErrno(errno, "listen on " + name);
  }
  return fd;
}

Result<UniqueFd> ConnectSocket(const Address& address) { return NewSocket(address, "connect to"); }

Result<UniqueFd> StartConnect(const Address& address) {
  Result<UniqueFd> fd = ConnectSocket(address);
  if (!fd) return fd;
  if (::connect(fd->get(), address.sockaddr(), address.length()) != 0) {
    // EINTR on a non-blocking connect: it goes on asynchronously, like EINPROGRESS.
    if (errno != EINPROGRESS && errno != EINTR) {
      return Error::FromErrno(errno, "connect to " + address.ToString());
    }
  }
  return fd;
}

int SocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

int SocketType(int fd) {
  int type = -1;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return -1;
  return type;
}

Result<Address> LocalAddress(int fd) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) {
    return Error::FromErrno(errno, "getsockname on fd " + std::to_string(fd));
  }
  return Address(reinterpret_cast<struct sockaddr*>(&ss), len);
}

Result<Address> PeerAddress(int fd) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) {
    return Error::FromErrno(errno, "getpeername on fd " + std::to_string(fd));
  }
  return Address(reinterpret_cast<struct sockaddr*>(&ss), len);
}

Status SetNoDelay(int fd, bool on) {
  // Set first, ask later: this runs for every backend connection, and only
  // a failure needs the SO_DOMAIN lookup that tells a unix socket apart.
  int value = on ? 1 : 0;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value)) == 0) return Status::Ok();
  int err = errno;
  if (IsUnix(fd)) return Status::Ok();
  return Error::FromErrno(err, "setsockopt TCP_NODELAY on fd " + std::to_string(fd));
}

Status SetKeepAlive(int fd, bool on, seconds idle, seconds interval, int probes) {
  if (IsUnix(fd)) return Status::Ok();
  Status s = SetInt(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0, "SO_KEEPALIVE");
  if (!s || !on) return s;
  s = SetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(idle.count()), "TCP_KEEPIDLE");
  if (!s) return s;
  s = SetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(interval.count()), "TCP_KEEPINTVL");
  if (!s) return s;
  return SetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, probes, "TCP_KEEPCNT");
}

Status SetSendBuffer(int fd, int bytes) {
  return SetInt(fd, SOL_SOCKET, SO_SNDBUF, bytes, "SO_SNDBUF");
}

Status SetReceiveBuffer(int fd, int bytes) {
  return SetInt(fd, SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
}

Status SetLingerZero(int fd) {
  struct linger lg {};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0) {
    return Error::FromErrno(errno, "setsockopt SO_LINGER on fd " + std::to_string(fd));
  }
  return Status::Ok();
}

}  // namespace zrelay
