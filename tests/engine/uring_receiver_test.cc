// UringReceiver on a real io_uring loop and real sockets, driven as
// PlainTransport drives it: receive when the watch says readable, take the
// bytes when the completion says so. Streams arrive whole and in order,
// a receive bigger than kMaxBytes needs several, a receive that finds
// nothing ends at once (no wait in the kernel, no buffer held), and EOF and
// a reset are reported after the bytes before them.
#include "engine/uring_receiver.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "engine/event_loop.h"
#include "tests/engine/uring_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::RunUntil;

std::unique_ptr<EventLoop> UringLoop() {
  auto loop = EventLoop::Create({IoBackend::kUring});
  EXPECT_TRUE(loop.ok()) << loop.error().message();
  return std::move(loop).value();
}

// Reads its watch's socket through a receiver, the way PlainTransport does.
class Reader : public FdHandler {
 public:
  Reader(EventLoop& loop, int fd) {
    EXPECT_TRUE(watch_.Register(loop, fd, this).ok());
    receiver_ = std::make_unique<UringReceiver>(watch_);
  }
  ~Reader() override {
    receiver_.reset();
    watch_.Unregister();
  }

  void OnFdEvent(FdWatch&, uint32_t) override { Step(); }
  void Step() {
    UringReceiver& r = *receiver_;
    while (r.buffered() > 0) {
      char buf[5000];  // not a multiple of anything the sender writes
      struct iovec iov {
        buf, sizeof(buf)
      };
      const size_t n = r.Take(&iov, 1, sizeof(buf));
      got.append(buf, n);
    }
    if (r.eof()) eof = true;
    if (r.error() != 0) error = r.error();
    if (!r.busy() && !r.has_result() && watch_.readable()) {
      r.Receive(UringReceiver::kMaxBytes);
      watch_.clear_readable();
      ++receives;
    }
  }

  UringReceiver& receiver() { return *receiver_; }
  FdWatch& watch() { return watch_; }

  std::string got;
  bool eof = false;
  int error = 0;
  int receives = 0;

 private:
  FdWatch watch_;
  std::unique_ptr<UringReceiver> receiver_;
};

TEST(UringReceiver, AStreamArrivesWholeInOrderThenEof) {
  auto loop = UringLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  Reader reader(*loop, pair->server.get());
  ASSERT_TRUE(reader.receiver().available());
  const std::string sent = testing::Pattern(300000);
  size_t at = 0;
  ASSERT_TRUE(RunUntil(*loop, [&] {
    while (at < sent.size()) {
      const size_t len = std::min<size_t>(sent.size() - at, 1000 + at % 7000);
      ssize_t n = ::send(pair->client.get(), sent.data() + at, len, MSG_DONTWAIT);
      if (n <= 0) break;
      at += static_cast<size_t>(n);
    }
    if (at == sent.size()) ::shutdown(pair->client.get(), SHUT_WR);
    return reader.eof;
  }));
  EXPECT_EQ(reader.got.size(), sent.size());
  EXPECT_TRUE(reader.got == sent) << "bytes differ";
  EXPECT_GE(reader.receives, static_cast<int>(sent.size() / UringReceiver::kMaxBytes));
  EXPECT_EQ(reader.error, 0);
  EXPECT_FALSE(reader.receiver().has_result() && reader.receiver().buffered() > 0);
}

TEST(UringReceiver, AReceiveThatFillsUpLeavesTheSocketReadable) {
  auto loop = UringLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  Reader reader(*loop, pair->server.get());
  // Queued before anything reads: after the first readiness, each full
  // receive must leave the socket readable, or the rest would wait for
  // bytes that never come.
  const std::string sent = testing::Pattern(5 * UringReceiver::kMaxBytes + 123);
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), sent));
  ASSERT_TRUE(RunUntil(*loop, [&] { return reader.got.size() == sent.size(); }));
  EXPECT_TRUE(reader.got == sent);
  EXPECT_GE(reader.receives, 6) << "at most kMaxBytes a receive";
  EXPECT_FALSE(reader.watch().readable()) << "the short last receive emptied the socket";
}

TEST(UringReceiver, AReceiveThatFindsNothingEndsAtOnce) {
  auto loop = UringLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  Reader reader(*loop, pair->server.get());
  // Nothing was sent: a receive started anyway must not stay in the kernel
  // (it would hold its buffer for as long as the peer is quiet).
  reader.receiver().Receive(100);
  ASSERT_TRUE(RunUntil(
      *loop, [&] { return !reader.receiver().busy(); }, seconds(2)))
      << "the receive waited for data";
  EXPECT_FALSE(reader.receiver().has_result());
  // The socket still works: a later message arrives.
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), "later"));
  ASSERT_TRUE(RunUntil(*loop, [&] { return reader.got == "later"; }));
}

TEST(UringReceiver, AResetIsReportedAfterTheBytesBeforeIt) {
  auto loop = UringLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  Reader reader(*loop, pair->server.get());
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), "last words"));
  ASSERT_TRUE(RunUntil(*loop, [&] { return reader.got == "last words"; }));
  struct linger abort_on_close {
    1, 0
  };
  ASSERT_EQ(::setsockopt(pair->client.get(), SOL_SOCKET, SO_LINGER, &abort_on_close,
                         sizeof(abort_on_close)),
            0);
  pair->client.Reset();  // RST
  ASSERT_TRUE(RunUntil(*loop, [&] { return reader.error != 0; }));
  EXPECT_EQ(reader.error, ECONNRESET);
  EXPECT_EQ(reader.receiver().error(), ECONNRESET) << "sticky";
}

TEST(UringReceiver, AReceiverDestroyedWithAReceiveQueuedLeavesItToFinishAlone) {
  auto loop = UringLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok());
  ASSERT_TRUE(testing::WriteAll(pair->client.get(), "unread"));
  const size_t baseline = loop->uring()->in_flight();  // the loop's own polls
  {
    Reader reader(*loop, pair->server.get());
    reader.receiver().Receive(64);  // queued, not yet submitted
  }
  // The detached op runs and frees itself (ASan checks the memory).
  ASSERT_TRUE(RunUntil(*loop, [&] { return loop->uring()->in_flight() == baseline; }));
}

TEST(UringReceiver, AnEpollLoopHasNoRingToReceiveThrough) {
  auto loop = EventLoop::Create({IoBackend::kEpoll});
  ASSERT_TRUE(loop.ok());
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  FdWatch watch;
  struct : FdHandler {
    void OnFdEvent(FdWatch&, uint32_t) override {}
  } ignore;
  ASSERT_TRUE(watch.Register(**loop, pair->server.get(), &ignore).ok());
  EXPECT_FALSE(UringReceiver(watch).available());
  watch.Unregister();
}

}  // namespace
}  // namespace zrelay
