// PlainTransport's readiness rules on real sockets and a real loop.
#include "relay/plain_transport.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

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
  IoResult r = io.Read(ring);
  EXPECT_EQ(r.status, IoStatus::kOk);
  EXPECT_EQ(r.bytes, 100u);
  EXPECT_FALSE(io.ReadReady()) << "a short read means the queue was empty";

  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(7, 'y')));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }))
      << "bytes that arrive later must raise a new edge";
  EXPECT_EQ(io.Read(ring).bytes, 7u);
}

// A full read does not prove the socket drained: readable stays set.
TEST_P(PlainTransportTest, FullReadKeepsReadable) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(1000);
  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(1500, 'x')));
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.readable(); }));
  EXPECT_EQ(io.Read(ring).bytes, 1000u);
  EXPECT_TRUE(io.ReadReady());
}

// With FIN seen, a short read must not hide the EOF that follows it.
TEST_P(PlainTransportTest, ShortReadAfterFinStillReadsTheEof) {
  PlainTransport io(watch_, loop_->sys());
  RingBuffer ring(64 << 10);
  ASSERT_TRUE(testing::WriteAll(peer_.get(), std::string(100, 'x')));
  ::shutdown(peer_.get(), SHUT_WR);
  ASSERT_TRUE(testing::RunUntil(*loop_, [&] { return watch_.read_hup(); }));
  EXPECT_EQ(io.Read(ring).bytes, 100u);
  EXPECT_TRUE(io.ReadReady());
  EXPECT_EQ(io.Read(ring).status, IoStatus::kEof);
}

INSTANTIATE_TEST_SUITE_P(Families, PlainTransportTest,
                         ::testing::Values(AF_INET, AF_INET6, AF_UNIX));

}  // namespace
}  // namespace zrelay
