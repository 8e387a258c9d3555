// UringSender on a real io_uring loop and real sockets: writes queued in a
// turn go out in order with the next wait, the watch hears EPOLLOUT when a
// send is done, a failure is sticky, and a socket closed through the loop
// right after a queued send still gets that send, while a new socket given
// the same fd number gets nothing of it.
#include "engine/uring_sender.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "engine/event_loop.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::RunUntil;

struct Recorder : FdHandler {
  void OnFdEvent(FdWatch&, uint32_t ev) override {
    ++events;
    if (ev & EPOLLOUT) ++writable_events;
  }
  int events = 0;
  int writable_events = 0;
};

std::unique_ptr<EventLoop> UringLoop() {
  auto loop = EventLoop::Create({IoBackend::kUring});
  EXPECT_TRUE(loop.ok()) << loop.error().message();
  return std::move(loop).value();
}

void Send(UringSender& sender, const std::string& text) {
  struct iovec iov {const_cast<char*>(text.data()), text.size()};
  sender.Send(&iov, 1, text.size());
}

// Everything `fd` (blocking or not) has until EOF or `want` bytes, 5 s at most.
std::string ReadUpTo(EventLoop& loop, int fd, size_t want) {
  std::string got;
  char buf[4096];
  RunUntil(loop, [&] {
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) got.append(buf, n);
    return got.size() >= want || n == 0;
  });
  return got;
}

TEST(UringSender, SendsInOrderAndTellsTheWatchWhenDone) {
  auto loop = UringLoop();
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  UringSender sender(watch);
  ASSERT_TRUE(sender.available());
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    const std::string chunk = "message " + std::to_string(i) + ";";
    ASSERT_TRUE(RunUntil(*loop, [&] { return !sender.busy(); }));
    const int writable_before = rec.writable_events;
    Send(sender, chunk);
    EXPECT_TRUE(sender.busy());
    expected += chunk;
    ASSERT_TRUE(RunUntil(*loop, [&] { return !sender.busy(); }));
    EXPECT_GT(rec.writable_events, writable_before) << "the completion makes the socket writable";
    EXPECT_TRUE(watch.writable());
  }
  EXPECT_EQ(sender.error(), 0);
  EXPECT_EQ(ReadUpTo(*loop, pair->client.get(), expected.size()), expected);
  watch.Unregister();
}

TEST(UringSender, AFailedSendIsSticky) {
  auto loop = UringLoop();
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  UringSender sender(watch);
  pair->client.Reset();  // the peer is gone: the send fails with EPIPE
  Send(sender, "into the void");
  ASSERT_TRUE(RunUntil(*loop, [&] { return !sender.busy(); }));
  EXPECT_EQ(sender.error(), EPIPE);
  EXPECT_TRUE(watch.writable()) << "the owner is woken to learn the error";
  watch.Unregister();
}

// The hazard CloseFd exists for: close(2) right after queueing a send would
// free the fd number before the send is submitted, and a socket opened
// meanwhile would take both the number and the bytes.
TEST(UringSender, ACloseThroughTheLoopRunsAfterTheQueuedSend) {
  auto loop = UringLoop();
  auto first = testing::UnixPair();
  ASSERT_TRUE(first.ok());
  Recorder rec;
  auto watch = std::make_unique<FdWatch>();
  ASSERT_TRUE(watch->Register(*loop, first->server.get(), &rec).ok());
  auto sender = std::make_unique<UringSender>(*watch);
  const int number = first->server.get();
  Send(*sender, "for the first peer only");
  watch->UnregisterForClose();
  loop->CloseFd(std::move(first->server));
  sender.reset();  // detached: the send finishes on its own
  watch.reset();

  loop->RunOnce(Duration::zero());  // submits the send, then the close
  auto second = testing::UnixPair();
  ASSERT_TRUE(second.ok());
  const bool reused = second->server.get() == number || second->client.get() == number;
  EXPECT_TRUE(reused) << "the test wants the freed number taken again";
  loop->RunOnce(milliseconds(10));

  EXPECT_EQ(ReadUpTo(*loop, first->client.get(), 100), "for the first peer only")
      << "the bytes, then EOF";
  char buf[64];
  EXPECT_EQ(::recv(second->client.get(), buf, sizeof(buf), MSG_DONTWAIT), -1);
  EXPECT_EQ(::recv(second->server.get(), buf, sizeof(buf), MSG_DONTWAIT), -1);
}

TEST(UringSender, AnEpollLoopHasNoRingToSendThrough) {
  auto loop = EventLoop::Create({IoBackend::kEpoll});
  ASSERT_TRUE(loop.ok());
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(**loop, pair->server.get(), &rec).ok());
  EXPECT_FALSE(UringSender(watch).available());
  watch.Unregister();
}

}  // namespace
}  // namespace zrelay
