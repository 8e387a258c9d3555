#include "engine/udp_socket.h"

#include <fcntl.h>
#include <linux/sock_diag.h>  // SK_MEMINFO_DROPS
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace zrelay {
namespace {

#ifndef UDP_GRO
#define UDP_GRO 104  // linux/udp.h; older libc headers lack it
#endif

Status SetInt(int fd, int level, int name, int value, const std::string& where,
              const char* option) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return Error::FromErrno(errno, where + ": setsockopt " + option);
  }
  return Status::Ok();
}

Status SetBuffers(int fd, const UdpSocketOptions& options, const std::string& where) {
  if (options.receive_buffer > 0) {
    Status s = SetInt(fd, SOL_SOCKET, SO_RCVBUF, options.receive_buffer, where, "SO_RCVBUF");
    if (!s) return s;
  }
  if (options.send_buffer > 0) {
    Status s = SetInt(fd, SOL_SOCKET, SO_SNDBUF, options.send_buffer, where, "SO_SNDBUF");
    if (!s) return s;
  }
  return Status::Ok();
}

Result<UniqueFd> NewSocket(const Address& address, const std::string& where) {
  if (address.family() != AF_INET && address.family() != AF_INET6) {
    return Error::Invalid(where + ": UDP needs an IPv4 or IPv6 address");
  }
  UniqueFd fd(::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::FromErrno(errno, where + ": socket");
  return fd;
}

}  // namespace

Result<UniqueFd> BindUdp(const Address& address, const UdpSocketOptions& options) {
  const std::string where = "udp listen on " + address.ToString();
  Result<UniqueFd> fd = NewSocket(address, where);
  if (!fd) return fd;
  Status s = SetInt(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1, where, "SO_REUSEADDR");
  if (s) s = SetInt(fd->get(), SOL_SOCKET, SO_REUSEPORT, 1, where, "SO_REUSEPORT");
  if (s) s = PrepareUdpListening(fd->get(), address.family(), options);
  if (!s) return s.error();
  if (::bind(fd->get(), address.sockaddr(), address.length()) != 0) {
    return Error::FromErrno(errno, "bind udp " + address.ToString());
  }
  return fd;
}

Status PrepareUdpListening(int fd, int family, const UdpSocketOptions& options) {
  const std::string where = "udp socket " + std::to_string(fd);
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Error::FromErrno(errno, where + ": O_NONBLOCK");
  }
  Status s = family == AF_INET6
                 ? SetInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, where, "IPV6_RECVPKTINFO")
                 : SetInt(fd, IPPROTO_IP, IP_PKTINFO, 1, where, "IP_PKTINFO");
  // An IPv6 socket also receives IPv4 clients (v4-mapped) unless V6ONLY:
  // their destination then comes as IP_PKTINFO too.
  if (s && family == AF_INET6) s = SetInt(fd, IPPROTO_IP, IP_PKTINFO, 1, where, "IP_PKTINFO");
  if (s) s = SetInt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1, where, "SO_RXQ_OVFL");
  if (!s) return s;
  // GRO is an optimisation: a kernel without it relays the same datagrams
  // one by one.
  (void)SetInt(fd, IPPROTO_UDP, UDP_GRO, 1, where, "UDP_GRO");
  return SetBuffers(fd, options, where);
}

Result<UniqueFd> ConnectUdp(const Address& peer, const UdpSocketOptions& options) {
  const std::string where = "udp connect to " + peer.ToString();
  Result<UniqueFd> fd = NewSocket(peer, where);
  if (!fd) return fd;
  (void)SetInt(fd->get(), IPPROTO_UDP, UDP_GRO, 1, where, "UDP_GRO");
  Status s = SetBuffers(fd->get(), options, where);
  if (!s) return s.error();
  // A UDP connect only sets the peer (and picks a local port): it never
  // blocks, and fails only for an unreachable route or no ports left.
  if (::connect(fd->get(), peer.sockaddr(), peer.length()) != 0) {
    return Error::FromErrno(errno, where);
  }
  return fd;
}

uint32_t UdpDropCount(int fd) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof(meminfo);
  if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) != 0 ||
      len <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    return 0;
  }
  return meminfo[SK_MEMINFO_DROPS];
}

bool IsWildcard(const Address& address) {
  if (address.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.sockaddr());
    return in->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  if (address.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr());
    return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
  }
  return false;
}

}  // namespace zrelay
