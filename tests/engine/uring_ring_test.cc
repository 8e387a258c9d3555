// UringRing on loopback: setup and its fallbacks, the clear error when
// io_uring is unavailable, and each operation on its own (accept, connect,
// poll, recv, cancel, close).
#include "engine/uring_ring.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/engine/uring_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::DriveUntil;
using testing::BlockingConnect;
using testing::Loopback;
using testing::RecordingOp;

std::unique_ptr<UringRing> MakeRing(unsigned entries = 64) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(entries);
  ZR_CHECK(ring.ok(), "%s", ring.error().message().c_str());
  return std::move(ring).value();
}

TEST(UringRingSetup, ReportsTheFlagsItGot) {
  auto ring = MakeRing(64);
  const unsigned flags = ring->setup_flags();
  const unsigned ladder[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  EXPECT_NE(std::find(std::begin(ladder), std::end(ladder), flags), std::end(ladder));
  EXPECT_EQ(ring->sq_entries(), 64u);
  EXPECT_EQ((flags & IORING_SETUP_DEFER_TASKRUN) != 0,
            ring->SetupFlagsName().find("DEFER_TASKRUN") != std::string::npos);
  std::printf("io_uring setup flags: %s\n", ring->SetupFlagsName().c_str());
}

// A kernel that knows neither SINGLE_ISSUER nor DEFER_TASKRUN (before 6.0).
int InitWithoutSingleIssuer(unsigned entries, struct io_uring* ring,
                            struct io_uring_params* params) {
  if (params->flags & (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)) return -EINVAL;
  return io_uring_queue_init_params(entries, ring, params);
}

TEST(UringRingSetup, FallsBackToFlagsTheKernelKnows) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(8, &InitWithoutSingleIssuer);
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  EXPECT_EQ((*ring)->setup_flags(), unsigned{IORING_SETUP_COOP_TASKRUN});
  EXPECT_EQ((*ring)->SetupFlagsName(), "COOP_TASKRUN");
}

// kernel.io_uring_disabled=2 and seccomp both make io_uring_setup fail
// with EPERM; a kernel without io_uring, with ENOSYS.
int InitDisabled(unsigned, struct io_uring*, struct io_uring_params*) { return -EPERM; }
int InitMissing(unsigned, struct io_uring*, struct io_uring_params*) { return -ENOSYS; }

TEST(UringRingSetup, SaysClearlyWhenIoUringIsDisabled) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(8, &InitDisabled);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().code().value(), EPERM);
  const std::string& message = ring.error().message();
  EXPECT_NE(message.find("io_uring unavailable"), std::string::npos) << message;
  EXPECT_NE(message.find("kernel.io_uring_disabled=2?"), std::string::npos) << message;
}

TEST(UringRingSetup, SaysClearlyWhenIoUringIsMissing) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(8, &InitMissing);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().code().value(), ENOSYS);
  EXPECT_NE(ring.error().message().find("io_uring unavailable"), std::string::npos)
      << ring.error().message();
}

TEST(UringRingSetup, RejectsABadSizeNamingIt) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(0);
  ASSERT_FALSE(ring.ok());
  EXPECT_NE(ring.error().message().find("0 entries"), std::string::npos)
      << ring.error().message();
}

// A worker pool creates its workers' loops on the main thread; each ring
// binds to the thread that first submits.
TEST(UringRingSetup, RunsOnAThreadOtherThanItsCreator) {
  auto ring = MakeRing(8);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]);
  RecordingOp close;
  std::thread worker([&] {
    ring->Close(close.op, fds[1]);
    DriveUntil(*ring, [&] { return !close.op.in_flight(); });
  });
  worker.join();
  ASSERT_EQ(close.got.size(), 1u);
  EXPECT_EQ(close.got[0].res, 0);
  char buf[1];
  EXPECT_EQ(::read(read_end.get(), buf, sizeof(buf)), 0);  // the write end is closed
}

// The lifetime rule is checked: an op that dies with its request in flight
// would leave the kernel a dangling user_data.
TEST(UringRingDeathTest, DestroyingAnOpInFlightIsCaught) {
  EXPECT_DEATH(
      {
        auto ring = MakeRing(8);
        testing::SocketPair pair = testing::TcpPair().value();
        char buf[16];
        RecordingOp recv;
        ring->Recv(recv.op, pair.server.get(), buf, sizeof(buf));
        ring->RunOnce(Duration::zero());
      },
      "in flight");
}

TEST(UringRingOps, MultishotAcceptTakesEveryConnection) {
  constexpr int kClients = 16;
  auto ring = MakeRing();
  ListenSocketOptions options;
  options.reuse_port = false;
  UniqueFd listener = ListenOn(Loopback(), options).value();
  Address bound = LocalAddress(listener.get()).value();

  RecordingOp accept;
  ring->Accept(accept.op, listener.get());
  ring->RunOnce(Duration::zero());  // armed before anyone connects
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(BlockingConnect(bound).value());
  ASSERT_TRUE(DriveUntil(*ring, [&] { return accept.got.size() == kClients; }));

  std::vector<UniqueFd> accepted;
  for (const auto& c : accept.got) {
    ASSERT_GE(c.res, 0) << std::strerror(-c.res);
    accepted.emplace_back(c.res);
    EXPECT_TRUE(c.flags & IORING_CQE_F_MORE);  // still armed
    EXPECT_TRUE(::fcntl(c.res, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(c.res, F_GETFD) & FD_CLOEXEC);
  }
  // Each accepted socket is the peer of exactly one client: a byte from
  // client i arrives on one accepted socket, and no byte is lost.
  for (int i = 0; i < kClients; ++i) {
    char tag = static_cast<char>('a' + i);
    ASSERT_EQ(::send(clients[i].get(), &tag, 1, 0), 1);
  }
  std::string tags;
  for (const UniqueFd& fd : accepted) {
    struct pollfd p {fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    char tag = 0;
    ASSERT_EQ(::recv(fd.get(), &tag, 1, 0), 1);
    tags += tag;
  }
  std::sort(tags.begin(), tags.end());
  EXPECT_EQ(tags, "abcdefghijklmnop");

  ring->Cancel(accept.op);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !accept.op.in_flight(); }));
  EXPECT_EQ(accept.got.back().res, -ECANCELED);
  EXPECT_FALSE(accept.got.back().flags & IORING_CQE_F_MORE);
  EXPECT_EQ(ring->in_flight(), 0u);
}

UniqueFd NonBlockingTcpSocket() {
  return UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

TEST(UringRingOps, ConnectSucceeds) {
  auto ring = MakeRing();
  ListenSocketOptions options;
  options.reuse_port = false;
  UniqueFd listener = ListenOn(Loopback(), options).value();
  Address bound = LocalAddress(listener.get()).value();
  UniqueFd fd = NonBlockingTcpSocket();
  ASSERT_TRUE(fd.valid());

  RecordingOp connect;
  ring->Connect(connect.op, fd.get(), bound.sockaddr(), bound.length());
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !connect.op.in_flight(); }));
  ASSERT_EQ(connect.got.size(), 1u);
  EXPECT_EQ(connect.got[0].res, 0) << std::strerror(-connect.got[0].res);
  EXPECT_EQ(PeerAddress(fd.get()).value().ToString(), bound.ToString());
}

TEST(UringRingOps, ConnectRefused) {
  auto ring = MakeRing();
  Address closed_port = [] {
    // A loopback port whose listener has just closed.
    ListenSocketOptions options;
    options.reuse_port = false;
    UniqueFd probe = ListenOn(Loopback(), options).value();
    return LocalAddress(probe.get()).value();
  }();
  UniqueFd fd = NonBlockingTcpSocket();
  RecordingOp connect;
  ring->Connect(connect.op, fd.get(), closed_port.sockaddr(), closed_port.length());
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !connect.op.in_flight(); }));
  ASSERT_EQ(connect.got.size(), 1u);
  EXPECT_EQ(connect.got[0].res, -ECONNREFUSED) << std::strerror(-connect.got[0].res);
}

// The idle pattern: wait for readiness with no buffer handed to the kernel,
// and recv only once data is there.
TEST(UringRingOps, PollThenRecvPinsNoBufferWhileIdle) {
  auto ring = MakeRing();
  testing::SocketPair pair = testing::TcpPair().value();
  RecordingOp poll;
  ring->PollAdd(poll.op, pair.server.get(), POLLIN);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ring->RunOnce(milliseconds(10)), 0);
  EXPECT_TRUE(poll.op.in_flight());  // idle: still waiting

  ASSERT_TRUE(testing::WriteAll(pair.client.get(), "hello, ring"));
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !poll.op.in_flight(); }));
  ASSERT_EQ(poll.got.size(), 1u);
  EXPECT_TRUE(poll.got[0].res & POLLIN);

  char buf[64];
  RecordingOp recv;
  ring->Recv(recv.op, pair.server.get(), buf, sizeof(buf));
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !recv.op.in_flight(); }));
  ASSERT_EQ(recv.got.size(), 1u);
  ASSERT_EQ(recv.got[0].res, 11);
  EXPECT_EQ(std::string(buf, 11), "hello, ring");
}

TEST(UringRingOps, MultishotPollFiresOnEachArrival) {
  auto ring = MakeRing();
  testing::SocketPair pair = testing::TcpPair().value();
  RecordingOp poll;
  ring->PollMultishot(poll.op, pair.server.get(), POLLIN);
  std::string received;
  for (char c : std::string("xyz")) {
    const size_t before = poll.got.size();
    ASSERT_EQ(::send(pair.client.get(), &c, 1, 0), 1);
    ASSERT_TRUE(DriveUntil(*ring, [&] { return poll.got.size() > before; }));
    EXPECT_TRUE(poll.got.back().flags & IORING_CQE_F_MORE);
    char got = 0;
    ASSERT_EQ(::recv(pair.server.get(), &got, 1, 0), 1);  // drain before the next edge
    received += got;
  }
  EXPECT_EQ(received, "xyz");
  ring->Cancel(poll.op);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !poll.op.in_flight(); }));
  EXPECT_EQ(poll.got.back().res, -ECANCELED);
}

TEST(UringRingOps, CancelOfAPendingRecvDeliversECanceled) {
  auto ring = MakeRing();
  testing::SocketPair pair = testing::TcpPair().value();
  char buf[64];
  RecordingOp recv;
  ring->Recv(recv.op, pair.server.get(), buf, sizeof(buf));
  EXPECT_EQ(ring->RunOnce(milliseconds(10)), 0);
  ASSERT_TRUE(recv.op.in_flight());

  ring->Cancel(recv.op);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !recv.op.in_flight(); }));
  ASSERT_EQ(recv.got.size(), 1u);
  EXPECT_EQ(recv.got[0].res, -ECANCELED);
  // The socket is untouched: a byte sent now is read by a plain recv.
  ASSERT_EQ(::send(pair.client.get(), "k", 1, 0), 1);
  struct pollfd p {pair.server.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_EQ(::recv(pair.server.get(), buf, sizeof(buf), 0), 1);
  EXPECT_EQ(buf[0], 'k');
}

TEST(UringRingOps, CancelOfAnOpNotInFlightQueuesNothing) {
  auto ring = MakeRing();
  RecordingOp idle;
  ring->Cancel(idle.op);
  EXPECT_EQ(ring->stats().sqes, 0u);
}

TEST(UringRingOps, CloseClosesTheFd) {
  auto ring = MakeRing();
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]);
  ASSERT_EQ(::write(fds[1], "z", 1), 1);
  RecordingOp close;
  ring->Close(close.op, fds[1]);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !close.op.in_flight(); }));
  ASSERT_EQ(close.got.size(), 1u);
  EXPECT_EQ(close.got[0].res, 0);
  // The write end is gone: the reader gets the byte, then EOF.
  char buf[4];
  EXPECT_EQ(::read(read_end.get(), buf, sizeof(buf)), 1);
  EXPECT_EQ(buf[0], 'z');
  EXPECT_EQ(::read(read_end.get(), buf, sizeof(buf)), 0);
}

}  // namespace
}  // namespace zrelay
