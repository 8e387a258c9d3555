#include "tests/relay/udp_test_util.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <utility>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {
namespace {

UniqueFd BoundUdp(const Address& at) {
  UniqueFd fd(::socket(at.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd) << "socket: " << errno;
  EXPECT_EQ(::bind(fd.get(), at.sockaddr(), at.length()), 0) << "bind " << at.ToString();
  return fd;
}

}  // namespace

UdpEchoBackend::UdpEchoBackend(int family, std::string tag) : tag_(std::move(tag)) {
  fd_ = BoundUdp(Loopback(family));
  address_ = LocalAddress(fd_.get()).value();
  thread_ = std::thread([this] {
    std::string buffer(65536, '\0');
    while (!stop_.load()) {
      struct pollfd p {
        fd_.get(), POLLIN, 0
      };
      if (::poll(&p, 1, 20) <= 0) continue;
      struct sockaddr_storage from {};
      socklen_t from_length = sizeof(from);
      const ssize_t n = ::recvfrom(fd_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT,
                                   reinterpret_cast<struct sockaddr*>(&from), &from_length);
      if (n < 0) continue;
      ++datagrams_;
      std::string reply = tag_ + buffer.substr(0, static_cast<size_t>(n));
      ::sendto(fd_.get(), reply.data(), reply.size(), 0, reinterpret_cast<struct sockaddr*>(&from),
               from_length);
    }
  });
}

UdpEchoBackend::~UdpEchoBackend() {
  stop_ = true;
  thread_.join();
}

Address DeadUdpPort(int family) {
  UniqueFd fd = BoundUdp(Loopback(family));
  return LocalAddress(fd.get()).value();  // closed on return: the port is free
}

UniqueFd UdpClient(const Address& to, const std::optional<Address>& from) {
  UniqueFd fd =
      from ? BoundUdp(*from) : UniqueFd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), to.sockaddr(), to.length()), 0) << "connect " << to.ToString();
  return fd;
}

std::optional<std::string> ReceiveDatagram(int fd, int timeout_ms) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
  std::string buffer(65536, '\0');
  const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (n < 0) return std::nullopt;
  buffer.resize(static_cast<size_t>(n));
  return buffer;
}

std::string Pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

}  // namespace zrelay::testing
