// Engine::Listen: accept, connect a backend, relay; and what happens when
// the backend refuses or never answers. Runs for every relay mode.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::ReceivePattern;
using testing::Received;
using testing::SendPattern;

// A blocking backend that answers each connection by echoing the pattern
// it received, checked, under another seed.
class EchoBackend {
 public:
  explicit EchoBackend(int family) {
    auto fd = ListenOn(testing::Loopback(family));
    EXPECT_TRUE(fd.ok());
    fd_ = std::move(fd.value());
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        Received r = ReceivePattern(c, 11);
        ok_ = ok_ && r.first_mismatch == -1 && r.error == 0;
        SendPattern(c, 12, r.bytes);
        ::close(c);
      }
    });
  }
  ~EchoBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  const Address& address() const { return address_; }
  bool ok() const { return ok_; }

 private:
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::atomic<bool> ok_{true};
};

class ListenTest : public ::testing::TestWithParam<std::tuple<RelayMode, int>> {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    options.mode = std::get<0>(GetParam());
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }
  int family() const { return std::get<1>(GetParam()); }

  Address Listen(const Address& backend, Duration connect_timeout = seconds(5)) {
    ListenOptions options;
    options.address = testing::Loopback(family());
    options.backends.push_back(BackendOptions{backend, nullptr, {}});
    options.connect_timeout = connect_timeout;
    options.on_close = closes_.Callback();
    auto id = engine_->Listen(options);
    EXPECT_TRUE(id.ok()) << id.error().message();
    return engine_->ListenAddress(id.value()).value();
  }

  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(ListenTest, RelaysClientsToTheBackendByteExact) {
  EchoBackend backend(family());
  Address front = Listen(backend.address());
  for (uint64_t size : {uint64_t{1}, uint64_t{100000}, uint64_t{8} << 20}) {
    auto client = testing::BlockingConnect(front);
    ASSERT_TRUE(client.ok()) << client.error().message();
    std::thread sender([&, fd = client->get()] { SendPattern(fd, 11, size); });
    Received r = ReceivePattern(client->get(), 12);
    sender.join();
    EXPECT_EQ(r.bytes, size);
    EXPECT_EQ(r.first_mismatch, -1);
  }
  auto closed = closes_.WaitFor(3);
  ASSERT_EQ(closed.size(), 3u);
  for (auto& c : closed) EXPECT_EQ(c.cause, CloseCause::kDone) << c.detail;
  EXPECT_TRUE(backend.ok());
  EXPECT_EQ(engine_->Stats().total.accepted, 3u);
}

TEST_P(ListenTest, RefusedBackendClosesTheClientPromptly) {
  // A port that was bound and closed again: nothing listens there.
  Address dead;
  {
    auto fd = ListenOn(testing::Loopback(family()));
    ASSERT_TRUE(fd.ok());
    dead = LocalAddress(fd->get()).value();
  }
  Address front = Listen(dead);
  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  TimePoint start = Clock::now();
  Received r = ReceivePattern(client->get(), 0);
  EXPECT_LT(Clock::now() - start, seconds(2)) << "the client must not hang";
  EXPECT_EQ(r.bytes, 0u);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kConnectFailed);
  EXPECT_EQ(closed[0].error, ECONNREFUSED);
  EXPECT_NE(closed[0].detail.find(dead.ToString()), std::string::npos) << closed[0].detail;
  EXPECT_EQ(engine_->Stats().total.connect_failures, 1u);
}

TEST_P(ListenTest, BackendThatNeverAnswersTimesOut) {
  // A listener that never accepts, its backlog filled: further SYNs are
  // dropped, so a connect hangs until our timeout.
  auto fd = ListenOn(testing::Loopback(family()), ListenSocketOptions{.backlog = 0, .reuse_port = false});
  ASSERT_TRUE(fd.ok());
  Address stuck = LocalAddress(fd->get()).value();
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 4; ++i) {
    auto c = StartConnect(stuck);
    if (c.ok()) fillers.push_back(std::move(c.value()));
  }
  std::this_thread::sleep_for(milliseconds(50));
  Address front = Listen(stuck, milliseconds(300));
  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  Received r = ReceivePattern(client->get(), 0);
  EXPECT_EQ(r.bytes, 0u);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kConnectFailed);
  EXPECT_EQ(closed[0].error, ETIMEDOUT);
  EXPECT_NE(closed[0].detail.find("timed out"), std::string::npos) << closed[0].detail;
  EXPECT_GE(closed[0].age, milliseconds(290));
  EXPECT_LT(closed[0].age, seconds(3));
}

TEST_P(ListenTest, DrainStopsAccepting) {
  EchoBackend backend(family());
  Address front = Listen(backend.address());
  engine_->Drain(milliseconds(100));
  auto client = testing::BlockingConnect(front);
  EXPECT_FALSE(client.ok()) << "a drained listener must refuse new clients";
}

INSTANTIATE_TEST_SUITE_P(Modes, ListenTest,
                         ::testing::Combine(::testing::Values(RelayMode::kSplice, RelayMode::kCopy,
                                                              RelayMode::kAuto),
                                            ::testing::Values(AF_INET, AF_INET6)));

}  // namespace
}  // namespace zrelay
