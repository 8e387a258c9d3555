// Connector on a real loop (epoll and io_uring): success, refused, timeout, immediate failure,
// cancel. Error messages must name the address.
#include "engine/connector.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::RunUntil;

struct Recorder : ConnectHandler {
  void OnConnect(Result<UniqueFd> fd) override {
    ++calls;
    if (fd.ok()) {
      this->fd = std::move(fd).value();
    } else {
      error = fd.error();
    }
    if (on_connect) on_connect();
  }
  int calls = 0;
  UniqueFd fd;
  std::optional<Error> error;
  std::function<void()> on_connect;
};

struct Sink : FdHandler {
  void OnFdEvent(FdWatch&, uint32_t) override { ++events; }
  int events = 0;
};

// Every case on both loops: on io_uring the connect is a ring request.
class ConnectorTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create(EventLoopOptions{GetParam()});
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(loop).value();
    loop_->RunOnce(Duration::zero());
  }
  std::unique_ptr<EventLoop> loop_;
};

TEST_P(ConnectorTest, ConnectsToALoopbackListener) {
  for (int family : {AF_INET, AF_INET6}) {
    auto listener = ListenOn(testing::Loopback(family));
    ASSERT_TRUE(listener.ok());
    const Address address = LocalAddress(listener->get()).value();
    Connector connector(*loop_);
    FdWatch watch;
    Recorder rec;
    connector.Start(address, seconds(5), watch, &rec);
    EXPECT_TRUE(connector.in_progress());
    EXPECT_EQ(rec.calls, 0);  // never from inside Start()
    ASSERT_TRUE(RunUntil(*loop_, [&] { return rec.calls > 0; }));
    ASSERT_FALSE(rec.error.has_value()) << rec.error->message();
    EXPECT_EQ(rec.calls, 1);
    EXPECT_FALSE(connector.in_progress());
    ASSERT_TRUE(rec.fd.valid());
    // The caller's watch stays registered on the connected socket.
    EXPECT_TRUE(watch.registered());
    EXPECT_EQ(watch.fd(), rec.fd.get());
    EXPECT_TRUE(watch.writable());
    EXPECT_EQ(PeerAddress(rec.fd.get())->ToString(), address.ToString());
    // Handing the watch over: later events go to the new handler.
    Sink sink;
    watch.set_handler(&sink);
    UniqueFd server(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(server.valid());
    ASSERT_EQ(::write(server.get(), "x", 1), 1);
    ASSERT_TRUE(RunUntil(*loop_, [&] { return sink.events > 0; }));
    EXPECT_TRUE(watch.readable());
    watch.Unregister();
    // The timer was cancelled: nothing more arrives.
    loop_->RunOnce(milliseconds(10));
    EXPECT_EQ(rec.calls, 1);
  }
}

TEST_P(ConnectorTest, RefusedNamesTheAddress) {
  // A port that was bound and closed: nobody listens there.
  Address address;
  {
    auto listener = ListenOn(testing::Loopback());
    ASSERT_TRUE(listener.ok());
    address = LocalAddress(listener->get()).value();
  }
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  connector.Start(address, seconds(5), watch, &rec);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return rec.calls > 0; }));
  ASSERT_TRUE(rec.error.has_value());
  EXPECT_EQ(rec.error->code().value(), ECONNREFUSED);
  EXPECT_EQ(rec.error->message(), "connect to " + address.ToString() + ": Connection refused");
  EXPECT_FALSE(watch.registered());
  EXPECT_FALSE(rec.fd.valid());
}

// Fills the accept queue of a listener that never accepts, so further SYNs
// are dropped and a connect hangs. Linux queues backlog + 1 connections.
struct FullListener {
  UniqueFd listener;
  Address address;
  std::vector<UniqueFd> fillers;
};

FullListener MakeFullListener() {
  FullListener full;
  ListenSocketOptions options;
  options.backlog = 1;
  options.reuse_port = false;
  auto listener = ListenOn(testing::Loopback(), options);
  EXPECT_TRUE(listener.ok());
  full.listener = std::move(listener).value();
  full.address = LocalAddress(full.listener.get()).value();
  for (int i = 0; i < 8; ++i) {
    auto fd = StartConnect(full.address);
    EXPECT_TRUE(fd.ok());
    struct pollfd p {
      fd->get(), POLLOUT, 0
    };
    const bool connected = ::poll(&p, 1, 200) == 1 && SocketError(fd->get()) == 0;
    full.fillers.push_back(std::move(fd).value());
    if (!connected) return full;  // this one hangs in SYN_SENT: the queue is full
  }
  ADD_FAILURE() << "could not fill the accept queue";
  return full;
}

TEST_P(ConnectorTest, TimesOutWhenSynsAreDropped) {
  FullListener full = MakeFullListener();
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  loop_->UpdateNow();
  const TimePoint start = Clock::now();
  connector.Start(full.address, milliseconds(200), watch, &rec);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return rec.calls > 0; }));
  const Duration took = Clock::now() - start;
  ASSERT_TRUE(rec.error.has_value());
  EXPECT_EQ(rec.error->code(), std::make_error_code(std::errc::timed_out));
  EXPECT_EQ(rec.error->message(),
            "connect to " + full.address.ToString() + " timed out after 200 ms");
  EXPECT_GE(took, milliseconds(200));
  EXPECT_LT(took, milliseconds(200 + 100));  // a loaded 2-core box; see TimersFireOnTime
  EXPECT_FALSE(watch.registered());
}

TEST_P(ConnectorTest, ImmediateFailureIsReportedFromTheLoop) {
  const Address address = Address::Parse("unix:/nonexistent/zrelay.sock").value();
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  connector.Start(address, seconds(5), watch, &rec);
  EXPECT_EQ(rec.calls, 0);  // never from inside Start(), even when connect() failed at once
  EXPECT_TRUE(connector.in_progress());
  ASSERT_TRUE(RunUntil(
      *loop_, [&] { return rec.calls > 0; }, seconds(1)));
  ASSERT_TRUE(rec.error.has_value());
  EXPECT_EQ(rec.error->code().value(), ENOENT);
  EXPECT_EQ(rec.error->message(),
            "connect to unix:/nonexistent/zrelay.sock: No such file or directory");
  EXPECT_FALSE(watch.registered());
}

TEST_P(ConnectorTest, UnixSocketConnects) {
  const std::string name = "unix:@zrelay-connector-test-" + std::to_string(::getpid());
  const Address address = Address::Parse(name).value();
  auto listener = ListenOn(address);
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  connector.Start(address, seconds(5), watch, &rec);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return rec.calls > 0; }));
  ASSERT_FALSE(rec.error.has_value()) << rec.error->message();
  EXPECT_TRUE(watch.registered());
  watch.Unregister();
}

TEST_P(ConnectorTest, CancelStopsWithoutACallback) {
  FullListener full = MakeFullListener();
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  connector.Start(full.address, milliseconds(50), watch, &rec);
  ASSERT_TRUE(watch.registered());
  connector.Cancel();
  EXPECT_FALSE(connector.in_progress());
  EXPECT_FALSE(watch.registered());
  RunUntil(
      *loop_, [] { return false; }, milliseconds(150));  // past the timeout
  EXPECT_EQ(rec.calls, 0);
}

TEST_P(ConnectorTest, CancelOfAnImmediateFailureStopsItsCallback) {
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  connector.Start(Address::Parse("unix:/nonexistent/x").value(), seconds(1), watch, &rec);
  connector.Cancel();
  RunUntil(
      *loop_, [] { return false; }, milliseconds(20));
  EXPECT_EQ(rec.calls, 0);
}

TEST_P(ConnectorTest, DestructionCancels) {
  FullListener full = MakeFullListener();
  FdWatch watch;
  Recorder rec;
  {
    Connector connector(*loop_);
    connector.Start(full.address, milliseconds(50), watch, &rec);
  }
  EXPECT_FALSE(watch.registered());
  RunUntil(
      *loop_, [] { return false; }, milliseconds(150));
  EXPECT_EQ(rec.calls, 0);
}

TEST_P(ConnectorTest, HandlerMayRestartTheConnectorFromItsCallback) {
  Address refused;
  {
    auto listener = ListenOn(testing::Loopback());
    refused = LocalAddress(listener->get()).value();
  }
  auto listener = ListenOn(testing::Loopback());
  const Address good = LocalAddress(listener->get()).value();
  Connector connector(*loop_);
  FdWatch watch;
  Recorder rec;
  // A retry: the first attempt fails, the callback starts the second one.
  rec.on_connect = [&] {
    if (rec.calls == 1) connector.Start(good, seconds(5), watch, &rec);
  };
  connector.Start(refused, seconds(5), watch, &rec);
  ASSERT_TRUE(RunUntil(*loop_, [&] { return rec.calls == 2; }));
  EXPECT_TRUE(rec.fd.valid());
  EXPECT_TRUE(watch.registered());
  watch.Unregister();
}

// On io_uring the connect request is only queued when Start() returns. A
// connector given up before the loop ran must not let that request reach
// a socket that took its fd number meanwhile.
TEST_P(ConnectorTest, GivingUpNeverConnectsASocketThatTookItsNumber) {
  auto listener = ListenOn(testing::Loopback());
  ASSERT_TRUE(listener.ok());
  const Address address = LocalAddress(listener->get()).value();
  FdWatch watch;
  Recorder rec;
  int given_up = -1;
  {
    Connector connector(*loop_);
    connector.Start(address, seconds(5), watch, &rec);
    given_up = watch.fd();
  }
  UniqueFd other(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(other.valid());
  RunUntil(
      *loop_, [] { return false; }, milliseconds(50));
  EXPECT_EQ(rec.calls, 0);
  struct sockaddr_storage peer {};
  socklen_t len = sizeof(peer);
  EXPECT_NE(::getpeername(other.get(), reinterpret_cast<struct sockaddr*>(&peer), &len), 0)
      << "fd " << other.get() << " is connected (the connector had fd " << given_up << ")";
}

INSTANTIATE_TEST_SUITE_P(Backends, ConnectorTest,
                         ::testing::Values(IoBackend::kEpoll, IoBackend::kUring),
                         [](const auto& info) { return std::string(IoBackendName(info.param)); });

}  // namespace
}  // namespace zrelay
