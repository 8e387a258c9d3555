// UDP batches on real loopback sockets: recvmmsg with the destination
// address and the drop count, sendmmsg to many peers, GRO runs in and GSO
// runs out.
#include "engine/udp_batch.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>

#include <string>

#include "engine/socket.h"
#include "engine/udp_socket.h"

namespace zrelay {
namespace {

Address At(const std::string& text) { return Address::Parse(text).value(); }

UniqueFd Client(const Address& to) {
  UniqueFd fd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(fd.get(), to.sockaddr(), to.length()), 0);
  return fd;
}

// Receives until nothing is left; the datagrams (GRO runs counted as
// what they hold) and the last drop count seen.
struct Drained {
  size_t datagrams = 0;
  size_t bytes = 0;
  std::optional<uint32_t> drops;
};
Drained DrainAll(UdpReceiveBatch& batch, int fd) {
  Drained d;
  for (;;) {
    Result<size_t> n = batch.Receive(fd);
    EXPECT_TRUE(n.ok());
    if (!n.ok() || *n == 0) return d;
    for (size_t i = 0; i < *n; ++i) {
      d.datagrams += batch.datagram(i).count();
      d.bytes += batch.datagram(i).size;
    }
    if (batch.drops()) d.drops = batch.drops();
  }
}

TEST(UdpBatchTest, CountsWhatTheKernelDroppedOnAFullSocket) {
  UdpSocketOptions options;
  options.receive_buffer = 4096;  // the kernel doubles it and keeps a floor
  UniqueFd server = BindUdp(At("127.0.0.1:0"), options).value();
  const Address bound = LocalAddress(server.get()).value();
  EXPECT_EQ(UdpDropCount(server.get()), 0u);
  UniqueFd client = Client(bound);
  constexpr size_t kSent = 300;
  const std::string payload(1000, 'x');
  for (size_t i = 0; i < kSent; ++i) {
    ASSERT_EQ(::send(client.get(), payload.data(), payload.size(), 0), 1000);
  }
  UdpReceiveBatch batch(16);
  const Drained d = DrainAll(batch, server.get());
  ASSERT_GT(d.datagrams, 0u);
  ASSERT_LT(d.datagrams, kSent) << "the buffer held them all: nothing to count";
  EXPECT_EQ(UdpDropCount(server.get()), kSent - d.datagrams);
  // A datagram carries the count as it stood when it was queued: those
  // queued before the drops carry none, the next one tells them all.
  ASSERT_EQ(::send(client.get(), "next", 4, 0), 4);
  const Drained next = DrainAll(batch, server.get());
  EXPECT_EQ(next.datagrams, 1u);
  ASSERT_TRUE(next.drops.has_value());
  EXPECT_EQ(*next.drops, kSent - d.datagrams);
}

TEST(UdpBatchTest, TellsTheAddressEachDatagramWasSentTo) {
  UniqueFd server = BindUdp(At("0.0.0.0:0"), {}).value();
  const int port = LocalAddress(server.get())->port();
  UniqueFd a = Client(At("127.0.0.3:" + std::to_string(port)));
  UniqueFd b = Client(At("127.0.0.1:" + std::to_string(port)));
  ASSERT_EQ(::send(a.get(), "a", 1, 0), 1);
  ASSERT_EQ(::send(b.get(), "b", 1, 0), 1);
  struct pollfd p {
    server.get(), POLLIN, 0
  };
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  UdpReceiveBatch batch(4);
  size_t got = 0;
  for (int tries = 0; tries < 100 && got < 2; ++tries) {
    Result<size_t> n = batch.Receive(server.get());
    ASSERT_TRUE(n.ok());
    for (size_t i = 0; i < *n; ++i, ++got) {
      const UdpDatagram d = batch.datagram(i);
      ASSERT_EQ(d.local.family, AF_INET);
      const char* want = d.data[0] == 'a' ? "127.0.0.3" : "127.0.0.1";
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &d.local.v4.ipi_spec_dst, text, sizeof(text));
      EXPECT_STREQ(text, want);
    }
    if (got < 2) ::poll(&p, 1, 100);
  }
  EXPECT_EQ(got, 2u);
}

TEST(UdpBatchTest, OneSendmmsgReachesManyPeersEachWithItsOwnDatagram) {
  UniqueFd server = BindUdp(At("127.0.0.1:0"), {}).value();
  std::vector<UniqueFd> peers;
  UdpSendBatch batch(8);
  for (int i = 0; i < 8; ++i) {
    UniqueFd peer(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const Address any = At("127.0.0.1:0");
    ASSERT_EQ(::bind(peer.get(), any.sockaddr(), any.length()), 0);
    const Address to = LocalAddress(peer.get()).value();
    const std::string payload = "peer " + std::to_string(i);
    batch.Add(payload.data(), payload.size(), 0, to.sockaddr(), to.length(), nullptr);
    peers.push_back(std::move(peer));
  }
  EXPECT_TRUE(batch.full());
  const UdpSendBatch::Outcome out = batch.Flush(server.get());
  EXPECT_EQ(out.sent, 8u);
  EXPECT_EQ(out.dropped, 0u);
  EXPECT_TRUE(batch.empty());
  for (int i = 0; i < 8; ++i) {
    char buffer[32];
    struct pollfd p {
      peers[i].get(), POLLIN, 0
    };
    ASSERT_EQ(::poll(&p, 1, 3000), 1);
    const ssize_t n = ::recv(peers[i].get(), buffer, sizeof(buffer), 0);
    EXPECT_EQ(std::string(buffer, n), "peer " + std::to_string(i));
  }
}

TEST(UdpBatchTest, AGroRunGoesOnAsAGsoRunAndArrivesAsSeparateDatagrams) {
  UniqueFd relay = BindUdp(At("127.0.0.1:0"), {}).value();
  UniqueFd client = Client(LocalAddress(relay.get()).value());
  const int segment = 500;
  if (::setsockopt(client.get(), IPPROTO_UDP, 103 /* UDP_SEGMENT */, &segment, sizeof(segment)) !=
      0) {
    GTEST_SKIP() << "no UDP GSO on this kernel";
  }
  std::string run(5 * 500 - 100, '\0');
  for (size_t i = 0; i < run.size(); ++i) run[i] = static_cast<char>(i * 7);
  ASSERT_EQ(::send(client.get(), run.data(), run.size(), 0), static_cast<ssize_t>(run.size()));
  struct pollfd p {
    relay.get(), POLLIN, 0
  };
  ASSERT_EQ(::poll(&p, 1, 3000), 1);

  // The far end has no GRO: it sees each datagram on its own.
  UniqueFd far(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const Address any = At("127.0.0.1:0");
  ASSERT_EQ(::bind(far.get(), any.sockaddr(), any.length()), 0);
  const Address to = LocalAddress(far.get()).value();
  UdpReceiveBatch in(4);
  UdpSendBatch out(4);
  size_t datagrams = 0;
  for (int tries = 0; tries < 100 && datagrams < 5; ++tries) {
    Result<size_t> n = in.Receive(relay.get());
    ASSERT_TRUE(n.ok());
    for (size_t i = 0; i < *n; ++i) {
      const UdpDatagram d = in.datagram(i);
      datagrams += d.count();
      out.Add(d.data, d.size, d.segment_size, to.sockaddr(), to.length(), nullptr);
    }
    if (datagrams < 5) ::poll(&p, 1, 100);
  }
  ASSERT_EQ(datagrams, 5u);
  EXPECT_EQ(out.Flush(relay.get()).sent, 5u);
  for (size_t at = 0; at < run.size(); at += 500) {
    char buffer[1000];
    struct pollfd q {
      far.get(), POLLIN, 0
    };
    ASSERT_EQ(::poll(&q, 1, 3000), 1);
    const ssize_t n = ::recv(far.get(), buffer, sizeof(buffer), 0);
    EXPECT_EQ(std::string(buffer, n), run.substr(at, 500)) << "datagram at " << at;
  }
}

// More segments than the kernel takes in one GSO send (64 or 128): it
// refuses the run with EINVAL, the batch sends it one datagram at a time
// and splits later runs as they are added, past its capacity if it must.
TEST(UdpBatchTest, ARunTheKernelRefusesGoesOutOneDatagramAtATime) {
  UniqueFd sender = BindUdp(At("127.0.0.1:0"), {}).value();
  UniqueFd far(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int room = 8 << 20;
  if (::setsockopt(far.get(), SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room)) != 0) {
    ASSERT_EQ(::setsockopt(far.get(), SOL_SOCKET, SO_RCVBUF, &room, sizeof(room)), 0);
  }
  const Address any = At("127.0.0.1:0");
  ASSERT_EQ(::bind(far.get(), any.sockaddr(), any.length()), 0);
  const Address to = LocalAddress(far.get()).value();
  constexpr size_t kSegments = 150;
  constexpr uint16_t kSegment = 100;
  std::string run(kSegments * kSegment, '\0');
  for (size_t i = 0; i < run.size(); ++i) run[i] = static_cast<char>(i * 13 + i / 100);

  UdpSendBatch batch(4);
  for (int round = 0; round < 2; ++round) {
    batch.Add(run.data(), run.size(), kSegment, to.sockaddr(), to.length(), nullptr);
    const UdpSendBatch::Outcome out = batch.Flush(sender.get());
    EXPECT_EQ(out.sent, kSegments) << "round " << round;
    EXPECT_EQ(out.dropped, 0u) << "round " << round;
    for (size_t at = 0; at < run.size(); at += kSegment) {
      char buffer[2 * kSegment];
      struct pollfd q {
        far.get(), POLLIN, 0
      };
      ASSERT_EQ(::poll(&q, 1, 3000), 1);
      const ssize_t n = ::recv(far.get(), buffer, sizeof(buffer), 0);
      ASSERT_EQ(std::string(buffer, n), run.substr(at, kSegment))
          << "round " << round << ", datagram at " << at;
    }
  }
}

}  // namespace
}  // namespace zrelay
