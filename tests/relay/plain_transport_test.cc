// PlainTransport's readiness rules on real sockets and a real loop, for the
// ring (readv/writev) and the pipe (splice).
#include "relay/plain_transport.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "relay/pipe_pool.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

class PlainTransportTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop.value());
    auto pair = GetParam() == AF_UNIX ? testing::UnixPair() : testing::TcpPair(GetParam());
    ASSERT_TRUE(pair.ok());
    peer_ = std::move(pair->client);
    mine_ = std::move(pair->server);
    ASSERT_TRUE(watch_.Register(*loop_, mine_.get(), &handler_).ok());
  }
  void TearDown() override { watch_.Unregister(); }

  struct NoopHandler : FdHandler {
    void OnFdEvent(FdWatch&, uint32_t) override {}
  };
  std::unique_ptr<EventLoop> loop_;
  UniqueFd peer_, mine_;
  NoopHandler handler_;
  FdWatch watch_;
};

// Regression guard for the short-read rule: a read that returns less than
// it asked for leaves the socket marked drained (no EAGAIN read needed),
// and new bytes raise a new edge.
TEST_P(PlainTransportTest, ShortReadClearsReadableAndNewBytesRaiseIt) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(64 << 10);
  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(100, 'x')));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  IoResult r = io.Read(ring, ring.free_space());
  EXPECT_EQ(r.status, IoStatus::kOk);
  EXPECT_EQ(r.bytes, 100u);
  EXPECT_FALSE(io.ReadReady()) << "a short read means the queue was empty";

  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(7, 'y')));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }))
      << "bytes that arrive later must raise a new edge";
  EXPECT_EQ(io.Read(ring, ring.free_space()).bytes, 7u);
}

// A full read does not prove the socket drained: readable stays set.
TEST_P(PlainTransportTest, FullReadKeepsReadable) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(1000);
  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(1500, 'x')));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  EXPECT_EQ(io.Read(ring, ring.free_space()).bytes, 1000u);
  EXPECT_TRUE(io.ReadReady());
}

// A read limited to fewer bytes than the ring holds (a rate limit, a
// watermark) takes exactly that many, across the ring's wrap, and, having
// got all it asked for, leaves the socket readable.
TEST_P(PlainTransportTest, MaxLimitsTheReadAcrossTheWrap) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(1000);
  ring.Commit(900);  // 100 bytes held at 800..899, so the free space
  ring.Consume(800);  // wraps: 100 bytes at the end, 800 at the start
  std::string sent;
  for (int i = 0; i < 1500; ++i) sent.push_back(static_cast<char>('a' + i % 26));
  ASSERT_TRUE(testing::WriteAll(peer_.get(), sent));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  EXPECT_EQ(io.Read(ring, 300).bytes, 300u);
  EXPECT_TRUE(io.ReadReady());
  EXPECT_EQ(io.Read(ring, 50).bytes, 50u);
  std::string got;
  struct iovec iov[2];
  const int n = ring.DataIovecs(iov);
  for (int i = 0; i < n; ++i) got.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  EXPECT_EQ(got.substr(100), sent.substr(0, 350));
}

// With FIN seen, a short read must not hide the EOF that follows it.
TEST_P(PlainTransportTest, ShortReadAfterFinStillReadsTheEof) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(64 << 10);
  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(100, 'x')));
  ::shutdown(peer_.get(), SHUT_WR);
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.read_hup(); }));
  EXPECT_EQ(io.Read(ring, ring.free_space()).bytes, 100u);
  EXPECT_TRUE(io.ReadReady());
  EXPECT_EQ(io.Read(ring, ring.free_space()).status, IoStatus::kEof);
}

// ---- The pipe half (splice) ---------------------------------------------------

// The peer's bytes as this leg's peer receives them back: `n` bytes, read
// within a bounded number of tries.
std::string RecvExactly(int fd, size_t n) {
  std::string got;
  char buf[4096];
  for (int i = 0; i < 1000 && got.size() < n; ++i) {
    ssize_t r = ::recv(fd, buf, std::min(sizeof(buf), n - got.size()), MSG_DONTWAIT);
    if (r > 0) {
      got.append(buf, static_cast<size_t>(r));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return got;
}

// Bytes spliced in are counted in the pipe, spliced out byte-exact and
// uncounted; EAGAIN with an empty pipe proves the socket drained.
TEST_P(PlainTransportTest, PipeRoundTripThenEagainOnAnEmptyPipeClearsReadable) {
  PlainTransport io(watch_, loop_->sys());
  PipePool pipes(65536, 1);
  std::unique_ptr<KernelPipe> pipe = pipes.Take();
  ASSERT_NE(pipe, nullptr);
  std::string sent;
  for (int i = 0; i < 1000; ++i) sent.push_back(static_cast<char>('a' + i % 26));
  ASSERT_TRUE(testing::WriteAll(peer_.get(), sent));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  IoResult r = io.ReadToPipe(*pipe, 1000);
  ASSERT_EQ(r.status, IoStatus::kOk);
  EXPECT_EQ(r.bytes, 1000u);
  EXPECT_EQ(pipe->bytes, 1000u);

  IoResult w = io.WriteFromPipe(*pipe);
  ASSERT_EQ(w.status, IoStatus::kOk);
  EXPECT_EQ(w.bytes, 1000u);
  EXPECT_EQ(pipe->bytes, 0u);
  EXPECT_EQ(RecvExactly(peer_.get(), 1000), sent);

  EXPECT_EQ(io.ReadToPipe(*pipe, pipe->capacity).status, IoStatus::kWouldBlock);
  EXPECT_FALSE(io.ReadReady()) << "EAGAIN into an empty pipe means the socket is empty";
  pipes.Return(std::move(pipe));
}

// EAGAIN with bytes in the pipe may mean a pipe out of slots (each small
// splice takes one) with the socket still full: the leg stays readable.
TEST_P(PlainTransportTest, EagainWithBytesInThePipeKeepsReadable) {
  PlainTransport io(watch_, loop_->sys());
  PipePool pipes(65536, 1);
  std::unique_ptr<KernelPipe> pipe = pipes.Take();
  ASSERT_NE(pipe, nullptr);
  std::string sent;
  for (int i = 0; i < 4000; ++i) sent.push_back(static_cast<char>('A' + i % 26));
  ASSERT_TRUE(testing::WriteAll(peer_.get(), sent));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  IoResult r;
  size_t in = 0;
  for (int i = 0; i < 1000; ++i) {
    r = io.ReadToPipe(*pipe, 10);
    if (r.status != IoStatus::kOk) break;
    in += r.bytes;
  }
  ASSERT_EQ(r.status, IoStatus::kWouldBlock);
  EXPECT_GT(pipe->bytes, 0u);
  EXPECT_EQ(pipe->bytes, in);
  EXPECT_TRUE(io.ReadReady()) << "a full pipe says nothing about the socket";

  // Delivered byte-exact, in order.
  size_t out = 0;
  for (int i = 0; i < 1000 && pipe->bytes > 0; ++i) {
    IoResult w = io.WriteFromPipe(*pipe);
    if (w.status == IoStatus::kOk) out += w.bytes;
  }
  EXPECT_EQ(out, in);
  EXPECT_EQ(RecvExactly(peer_.get(), in), sent.substr(0, in));
  pipes.Return(std::move(pipe));
}

// The peer's FIN reads as kEof through the pipe too.
TEST_P(PlainTransportTest, ReadToPipeReportsTheEof) {
  PlainTransport io(watch_, loop_->sys());
  PipePool pipes(65536, 1);
  std::unique_ptr<KernelPipe> pipe = pipes.Take();
  ASSERT_NE(pipe, nullptr);
  ::shutdown(peer_.get(), SHUT_WR);
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.read_hup(); }));
  EXPECT_EQ(io.ReadToPipe(*pipe, pipe->capacity).status, IoStatus::kEof);
  EXPECT_EQ(pipe->bytes, 0u);
  pipes.Return(std::move(pipe));
}

INSTANTIATE_TEST_SUITE_P(Families, PlainTransportTest,
                         ::testing::Values(AF_INET, AF_INET6, AF_UNIX));

}  // namespace
}  // namespace zrelay
