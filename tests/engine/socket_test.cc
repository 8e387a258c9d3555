// Socket helpers: listen/connect flags, options, and errors naming things.
#include "engine/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

int GetInt(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
  return value;
}

void ExpectNonBlockingCloexec(int fd) {
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

TEST(SocketTest, ListenOnTcpSetsFlagsAndReuse) {
  auto fd = ListenOn(testing::Loopback());
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  ExpectNonBlockingCloexec(fd->get());
  EXPECT_EQ(GetInt(fd->get(), SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(GetInt(fd->get(), SOL_SOCKET, SO_REUSEPORT), 1);
  EXPECT_EQ(GetInt(fd->get(), SOL_SOCKET, SO_ACCEPTCONN), 1);
  auto bound = LocalAddress(fd->get());
  ASSERT_TRUE(bound.ok());
  EXPECT_NE(bound->port(), 0);
  // SO_REUSEPORT: a second socket may bind the same port.
  auto second = ListenOn(*bound);
  EXPECT_TRUE(second.ok()) << second.error().message();
}

TEST(SocketTest, ListenWithoutReusePortConflicts) {
  ListenSocketOptions exclusive;
  exclusive.reuse_port = false;
  auto fd = ListenOn(testing::Loopback(), exclusive);
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(GetInt(fd->get(), SOL_SOCKET, SO_REUSEPORT), 0);
  const Address bound = LocalAddress(fd->get()).value();
  auto clash = ListenOn(bound);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code().value(), EADDRINUSE);
  EXPECT_EQ(clash.error().message(), "bind " + bound.ToString() + ": Address already in use");
}

TEST(SocketTest, UnixListenDoesNotRemoveAStaleFile) {
  char dir[] = "/tmp/zrelay-socket-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s.sock";
  const Address address = Address::Parse("unix:" + path).value();
  {
    auto first = ListenOn(address);
    ASSERT_TRUE(first.ok()) << first.error().message();
    ExpectNonBlockingCloexec(first->get());
  }
  // The file outlives the socket; removing it is the caller's decision.
  auto again = ListenOn(address);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code().value(), EADDRINUSE);
  EXPECT_NE(again.error().message().find(path), std::string::npos);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(SocketTest, StartConnectInProgressThenSocketErrorSaysHow) {
  auto listener = ListenOn(testing::Loopback());
  ASSERT_TRUE(listener.ok());
  const Address address = LocalAddress(listener->get()).value();
  auto fd = StartConnect(address);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  ExpectNonBlockingCloexec(fd->get());
  struct pollfd p {fd->get(), POLLOUT, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(SocketError(fd->get()), 0);
  EXPECT_EQ(PeerAddress(fd->get())->ToString(), address.ToString());
  EXPECT_EQ(LocalAddress(fd->get())->family(), AF_INET);
}

TEST(SocketTest, StartConnectImmediateFailureNamesTheAddress) {
  const Address address = Address::Parse("unix:@zrelay-nobody-listens-here").value();
  auto fd = StartConnect(address);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code().value(), ECONNREFUSED);
  EXPECT_EQ(fd.error().message(),
            "connect to unix:@zrelay-nobody-listens-here: Connection refused");
}

TEST(SocketTest, PeerAddressOfAnUnconnectedSocketNamesTheFd) {
  auto listener = ListenOn(testing::Loopback());
  ASSERT_TRUE(listener.ok());
  auto peer = PeerAddress(listener->get());
  ASSERT_FALSE(peer.ok());
  EXPECT_EQ(peer.error().code().value(), ENOTCONN);
  EXPECT_NE(peer.error().message().find("fd " + std::to_string(listener->get())),
            std::string::npos);
}

TEST(SocketTest, TcpOptions) {
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  const int fd = pair->client.get();
  ASSERT_TRUE(SetNoDelay(fd, false).ok());
  EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_NODELAY), 0);
  ASSERT_TRUE(SetNoDelay(fd).ok());
  EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
  ASSERT_TRUE(SetKeepAlive(fd, true, seconds(30), seconds(5), 3).ok());
  EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
  EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
  EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
  ASSERT_TRUE(SetKeepAlive(fd, false).ok());
  EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  ASSERT_TRUE(SetSendBuffer(fd, 64 * 1024).ok());
  EXPECT_GE(GetInt(fd, SOL_SOCKET, SO_SNDBUF), 64 * 1024);  // the kernel doubles it
  ASSERT_TRUE(SetReceiveBuffer(fd, 64 * 1024).ok());
  EXPECT_GE(GetInt(fd, SOL_SOCKET, SO_RCVBUF), 64 * 1024);
  ASSERT_TRUE(SetLingerZero(fd).ok());
  struct linger lg {};
  socklen_t len = sizeof(lg);
  ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len), 0);
  EXPECT_EQ(lg.l_onoff, 1);
  EXPECT_EQ(lg.l_linger, 0);
}

TEST(SocketTest, TcpOnlyOptionsAreNoOpsOnUnixSockets) {
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  EXPECT_TRUE(SetNoDelay(pair->client.get()).ok());
  EXPECT_TRUE(SetKeepAlive(pair->client.get(), true).ok());
  EXPECT_TRUE(SetSendBuffer(pair->client.get(), 32 * 1024).ok());
  EXPECT_TRUE(SetLingerZero(pair->client.get()).ok());
}

TEST(SocketTest, OptionErrorsNameTheOption) {
  Status s = SetNoDelay(9999);  // not an open fd
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code().value(), EBADF);
  EXPECT_NE(s.error().message().find("TCP_NODELAY"), std::string::npos) << s.error().message();
  s = SetSendBuffer(9999, 1024);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("SO_SNDBUF"), std::string::npos) << s.error().message();
  EXPECT_EQ(SocketError(9999), EBADF);
}

}  // namespace
}  // namespace zrelay
