// UringRing moving bytes on loopback: a 4 MiB echo through recv/send, a
// splice socket -> pipe -> socket, and a burst of more sends than the SQ has
// slots. Every transfer is compared byte for byte.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/uring_ring.h"
#include "tests/engine/uring_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::DriveUntil;
using testing::Pattern;

std::unique_ptr<UringRing> MakeRing(unsigned entries) {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(entries);
  ZR_CHECK(ring.ok(), "%s", ring.error().message().c_str());
  return std::move(ring).value();
}

// Sends all of `data` on `fd` in chunks (re-arming after short sends), then
// ends the sending side with shutdown(SHUT_WR).
class Sender : public UringHandler {
 public:
  Sender(UringRing& ring, int fd, std::string data) : ring_(ring), fd_(fd), data_(std::move(data)) {}
  void Start() { SendMore(); }
  bool done() const { return done_; }

 private:
  void SendMore() {
    size_t chunk = std::min<size_t>(data_.size() - sent_, 256 * 1024);
    ring_.Send(op_, fd_, data_.data() + sent_, chunk);
  }
  void OnCompletion(UringOp&, int res, uint32_t) override {
    ZR_CHECK(res > 0, "send: %s", std::strerror(-res));
    sent_ += static_cast<size_t>(res);
    if (sent_ < data_.size()) return SendMore();
    ::shutdown(fd_, SHUT_WR);
    done_ = true;
  }
  UringRing& ring_;
  int fd_;
  std::string data_;
  size_t sent_ = 0;
  bool done_ = false;
  UringOp op_{this};
};

// Receives on `fd` until EOF, keeping every byte.
class Collector : public UringHandler {
 public:
  Collector(UringRing& ring, int fd) : ring_(ring), fd_(fd), buf_(64 * 1024) {}
  void Start() { ring_.Recv(op_, fd_, buf_.data(), buf_.size()); }
  bool eof() const { return eof_; }
  const std::string& received() const { return received_; }

 private:
  void OnCompletion(UringOp&, int res, uint32_t) override {
    ZR_CHECK(res >= 0, "recv: %s", std::strerror(-res));
    if (res == 0) {
      eof_ = true;
      return;
    }
    received_.append(buf_.data(), static_cast<size_t>(res));
    Start();
  }
  UringRing& ring_;
  int fd_;
  std::vector<char> buf_;
  std::string received_;
  bool eof_ = false;
  UringOp op_{this};
};

// Sends back whatever `fd` receives (recv, then send until all of it is
// gone, then recv again); passes EOF on with shutdown(SHUT_WR).
class Echo : public UringHandler {
 public:
  Echo(UringRing& ring, int fd) : ring_(ring), fd_(fd), buf_(64 * 1024) {}
  void Start() { ring_.Recv(recv_, fd_, buf_.data(), buf_.size()); }
  bool done() const { return done_; }

 private:
  void OnCompletion(UringOp& op, int res, uint32_t) override {
    ZR_CHECK(res >= 0, "echo: %s", std::strerror(-res));
    if (&op == &recv_) {
      if (res == 0) {
        ::shutdown(fd_, SHUT_WR);
        done_ = true;
        return;
      }
      pending_ = static_cast<size_t>(res);
      sent_ = 0;
    } else {
      sent_ += static_cast<size_t>(res);
    }
    if (sent_ < pending_) return ring_.Send(send_, fd_, buf_.data() + sent_, pending_ - sent_);
    Start();
  }
  UringRing& ring_;
  int fd_;
  std::vector<char> buf_;
  size_t pending_ = 0;
  size_t sent_ = 0;
  bool done_ = false;
  UringOp recv_{this};
  UringOp send_{this};
};

TEST(UringTransfer, EchoesFourMebibytesByteExact) {
  auto ring = MakeRing(64);
  testing::SocketPair pair = testing::TcpPair().value();
  const std::string data = Pattern(4 << 20);
  Sender sender(*ring, pair.client.get(), data);
  Collector collector(*ring, pair.client.get());
  Echo echo(*ring, pair.server.get());
  echo.Start();
  collector.Start();
  sender.Start();
  ASSERT_TRUE(DriveUntil(*ring, [&] { return collector.eof(); }, seconds(30)));
  EXPECT_TRUE(sender.done());
  EXPECT_TRUE(echo.done());
  ASSERT_EQ(collector.received().size(), data.size());
  EXPECT_TRUE(collector.received() == data);  // not EXPECT_EQ: 4 MiB in a failure message
  EXPECT_EQ(ring->in_flight(), 0u);
  EXPECT_GT(ring->stats().cqes, 0u);
}

// Moves `from` -> pipe -> `to` with splice: a poll for readiness (no buffer,
// no worker thread held while idle), then splices until the pipe is empty;
// a splice that finds nothing to move (-EAGAIN) waits on a poll again. At
// EOF it ends `to`'s sending side.
class SpliceMover : public UringHandler {
 public:
  SpliceMover(UringRing& ring, int from, int to) : ring_(ring), from_(from), to_(to) {
    int fds[2];
    ZR_CHECK(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2: %s", std::strerror(errno));
    pipe_read_ = UniqueFd(fds[0]);
    pipe_write_ = UniqueFd(fds[1]);
  }
  void Start() { ring_.PollAdd(poll_, from_, POLLIN); }
  bool done() const { return done_; }
  int eagains() const { return eagains_; }

 private:
  void OnCompletion(UringOp& op, int res, uint32_t) override {
    if (&op == &poll_) {
      ZR_CHECK(res > 0, "poll: %s", std::strerror(-res));
      if (in_pipe_ > 0) return Drain();
      return ring_.Splice(fill_, from_, pipe_write_.get(), 64 * 1024);
    }
    if (res == -EAGAIN) {
      ++eagains_;
      return ring_.PollAdd(poll_, &op == &fill_ ? from_ : to_, &op == &fill_ ? POLLIN : POLLOUT);
    }
    ZR_CHECK(res >= 0, "splice: %s", std::strerror(-res));
    if (&op == &fill_) {
      if (res == 0) {
        ::shutdown(to_, SHUT_WR);
        done_ = true;
        return;
      }
      in_pipe_ += static_cast<size_t>(res);
    } else {
      in_pipe_ -= static_cast<size_t>(res);
    }
    if (in_pipe_ > 0) return Drain();
    ring_.Splice(fill_, from_, pipe_write_.get(), 64 * 1024);
  }
  void Drain() { ring_.Splice(drain_, pipe_read_.get(), to_, in_pipe_); }

  UringRing& ring_;
  int from_;
  int to_;
  UniqueFd pipe_read_;
  UniqueFd pipe_write_;
  size_t in_pipe_ = 0;
  int eagains_ = 0;
  bool done_ = false;
  UringOp poll_{this};
  UringOp fill_{this};
  UringOp drain_{this};
};

TEST(UringTransfer, SplicesSocketToPipeToSocketByteExact) {
  auto ring = MakeRing(64);
  testing::SocketPair in = testing::TcpPair().value();   // test writes client, ring reads server
  testing::SocketPair out = testing::TcpPair().value();  // ring writes server, test reads client
  const std::string data = Pattern(2 << 20);
  SpliceMover mover(*ring, in.server.get(), out.server.get());
  mover.Start();

  size_t written = 0;
  std::string received;
  bool eof = false;
  char buf[64 * 1024];
  // The test thread is both peers, non-blocking, between turns.
  auto peers = [&] {
    if (written < data.size()) {
      ssize_t n = ::send(in.client.get(), data.data() + written, data.size() - written,
                         MSG_NOSIGNAL);
      if (n > 0) written += static_cast<size_t>(n);
      if (written == data.size()) ::shutdown(in.client.get(), SHUT_WR);
    }
    ssize_t n;
    while ((n = ::recv(out.client.get(), buf, sizeof(buf), 0)) > 0) {
      received.append(buf, static_cast<size_t>(n));
    }
    if (n == 0) eof = true;
  };
  ASSERT_TRUE(DriveUntil(*ring, [&] { return eof; }, seconds(30), peers));
  EXPECT_TRUE(mover.done());
  ASSERT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data);
  EXPECT_EQ(ring->in_flight(), 0u);
  std::printf("splice: %d EAGAIN completions\n", mover.eagains());
}

// An empty O_NONBLOCK source: the splice ends at once with -EAGAIN (no
// kernel worker waits on it), and a poll then says when to try again.
TEST(UringTransfer, SpliceOfAnEmptySocketIsEAgainUntilReady) {
  auto ring = MakeRing(8);
  testing::SocketPair pair = testing::TcpPair().value();
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd pipe_read(fds[0]);
  UniqueFd pipe_write(fds[1]);

  testing::RecordingOp splice;
  ring->Splice(splice.op, pair.server.get(), pipe_write.get(), 4096);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !splice.op.in_flight(); }));
  ASSERT_EQ(splice.got.size(), 1u);
  EXPECT_EQ(splice.got[0].res, -EAGAIN);

  testing::RecordingOp poll;
  ring->PollAdd(poll.op, pair.server.get(), POLLIN);
  ASSERT_TRUE(testing::WriteAll(pair.client.get(), "spliced"));
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !poll.op.in_flight(); }));
  ring->Splice(splice.op, pair.server.get(), pipe_write.get(), 4096);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return !splice.op.in_flight(); }));
  ASSERT_EQ(splice.got.back().res, 7);
  char buf[16];
  ASSERT_EQ(::read(pipe_read.get(), buf, sizeof(buf)), 7);
  EXPECT_EQ(std::string(buf, 7), "spliced");
}

// 32 sends, each on a connection of its own, into a ring of 4 slots (and a
// CQ of 8): the prep calls must flush the full SQ, and every completion must
// still arrive.
TEST(UringTransfer, ABurstLargerThanTheSqIsFlushedNotDropped) {
  constexpr int kConnections = 32;
  auto ring = MakeRing(4);
  std::vector<testing::SocketPair> pairs;
  std::vector<std::string> messages;
  std::vector<testing::RecordingOp> sends(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    pairs.push_back(testing::TcpPair().value());
    messages.push_back(std::to_string(i) + ":" + Pattern(1000 + i));
  }
  for (int i = 0; i < kConnections; ++i) {
    ring->Send(sends[i].op, pairs[i].client.get(), messages[i].data(), messages[i].size());
  }
  EXPECT_GT(ring->stats().sq_full_flushes, 0u);
  ASSERT_TRUE(DriveUntil(*ring, [&] { return ring->in_flight() == 0; }));
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_EQ(sends[i].got.size(), 1u);
    EXPECT_EQ(sends[i].got[0].res, static_cast<int>(messages[i].size()));
    std::string received(messages[i].size() + 1, '\0');
    struct pollfd p {pairs[i].server.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    ssize_t n = ::recv(pairs[i].server.get(), received.data(), received.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(messages[i].size()));
    received.resize(static_cast<size_t>(n));
    EXPECT_TRUE(received == messages[i]) << "connection " << i;
  }
  EXPECT_EQ(ring->stats().sqes, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(ring->stats().cqes, static_cast<uint64_t>(kConnections));
}

}  // namespace
}  // namespace zrelay
