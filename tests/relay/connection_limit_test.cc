// ListenOptions::max_connections: a listener never has more pairs open than
// its limit, across workers. The clients beyond it wait in the kernel's
// backlog (nothing is refused or reset) and are served byte-exact as soon
// as earlier pairs close. Regression: past the fd limit, accepted clients
// were reset one by one instead of waiting.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <vector>

#include "engine/fd_limit.h"
#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/holding_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::HoldingBackend;
using testing::WaitFor;

class ConnectionLimitTest : public ::testing::TestWithParam<RelayMode> {
 protected:
  void SetUp() override {
    auto engine = testing::StartEngine({.workers = 2, .mode = GetParam()});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
  }

  ListenerId Listen(const Address& backend, size_t max_connections) {
    ListenOptions options;
    options.address = testing::Loopback();
    options.backends.push_back(BackendOptions{backend, nullptr, {}});
    options.max_connections = max_connections;
    options.on_close = closes_.Callback();
    auto id = engine_->Listen(options);
    EXPECT_TRUE(id.ok()) << id.error().message();
    return id.ok() ? *id : 0;
  }

  CloseRecorder closes_;  // outlives the engine's callbacks
  std::unique_ptr<Engine> engine_;
};

TEST_P(ConnectionLimitTest, ExactlyMaxPairsAtOnceAndTheRestServedInTurn) {
  constexpr int kMax = 3;
  constexpr int kWaiting = 5;
  constexpr int kClients = kMax + kWaiting;
  HoldingBackend backend;
  const ListenerId id = Listen(backend.address(), kMax);
  ASSERT_EQ(engine_->MaxConnections(id).value(), static_cast<size_t>(kMax));
  const Address front = engine_->ListenAddress(id).value();

  // Every client connects and sends its request (it fits the socket
  // buffers), accepted or not.
  std::vector<UniqueFd> clients;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < kClients; ++i) {
    auto fd = testing::BlockingConnect(front);
    ASSERT_TRUE(fd.ok()) << "client " << i << " refused: " << fd.error().message();
    sizes.push_back(1000 + 777 * i);
    ASSERT_EQ(testing::SendPattern(fd->get(), HoldingBackend::kUpSeed, sizes.back()), sizes.back());
    clients.push_back(std::move(fd).value());
  }

  ASSERT_TRUE(WaitFor([&] { return backend.accepted() == kMax; }, seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return engine_->Stats().total.accept_paused_max_connections > 0; }));
  // No more backend connections while the first ones are held (a bounded
  // wait for something that must not happen).
  EXPECT_FALSE(WaitFor([&] { return backend.accepted() > kMax; }, milliseconds(200)));
  EngineStats held = engine_->Stats();
  EXPECT_EQ(held.total.accepted, static_cast<uint64_t>(kMax));
  EXPECT_EQ(held.total.pairs_open, static_cast<uint64_t>(kMax));

  // Answer everything: the waiting clients get their turn as pairs close.
  backend.Serve();
  for (int i = 0; i < kClients; ++i) {
    testing::Received r = testing::ReceivePattern(clients[i].get(), HoldingBackend::kDownSeed);
    EXPECT_EQ(r.error, 0) << "client " << i;
    EXPECT_EQ(r.bytes, sizes[i]) << "client " << i;
    EXPECT_EQ(r.first_mismatch, -1) << "client " << i;
  }
  auto closed = closes_.WaitFor(kClients);
  ASSERT_EQ(closed.size(), static_cast<size_t>(kClients));
  for (const PairStats& s : closed) EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
  EXPECT_TRUE(backend.ok());
  EXPECT_EQ(backend.accepted(), kClients);
  EXPECT_EQ(backend.max_open(), kMax) << "more backend connections at once than the limit";

  ASSERT_TRUE(WaitFor([&] { return engine_->Stats().total.pairs_open == 0; }));
  EngineStats done = engine_->Stats();
  EXPECT_EQ(done.total.accepted, static_cast<uint64_t>(kClients));
  EXPECT_EQ(done.total.pairs_closed, static_cast<uint64_t>(kClients));
  EXPECT_GE(done.total.accept_paused_max_connections, 1u);
  EXPECT_EQ(done.total.backend_fd_exhausted, 0u);
  EXPECT_EQ(done.total.accept_fd_exhausted, 0u);
  uint64_t paused = 0;
  for (const WorkerStats& w : done.workers) paused += w.accept_paused_max_connections;
  EXPECT_EQ(paused, done.total.accept_paused_max_connections);
}

TEST_P(ConnectionLimitTest, ZeroDerivesTheLimitFromRlimitNofile) {
  // relay.h's formula: (soft limit - fds open at Listen() - 64 spare - pipe
  // reserve) / 2, the pipe reserve (2 fds per pipe, pipe_pool_cap per
  // worker) taking at most half of what is left, and none in copy mode.
  testing::RaiseFdLimit();
  HoldingBackend backend;
  const FdUsage usage = CurrentFdUsage().value();
  const ListenerId id = Listen(backend.address(), 0);
  const EngineOptions defaults;
  size_t left = usage.soft_limit - usage.open - 64;
  if (GetParam() != RelayMode::kCopy) {
    left -= std::min(2 * defaults.pipe_pool_cap * engine_->workers(), left / 2);
  }
  const size_t derived = engine_->MaxConnections(id).value();
  EXPECT_EQ(derived, left / 2);
  EXPECT_LT(2 * derived, usage.soft_limit - usage.open) << "the pairs' sockets must fit";
  EXPECT_FALSE(engine_->MaxConnections(id + 1).ok());
}

TEST_P(ConnectionLimitTest, DerivedLimitUnderALowRlimitHoldsAndServesEveryone) {
  // A soft RLIMIT_NOFILE with room for 64 spare fds and 2 * kRoom more at
  // Listen() time: the derived limit is kRoom pairs in copy mode, half as
  // many where pipes take their share. The limit is restored right after
  // Listen() (it is read only then), so the test runner is not starved.
  constexpr size_t kRoom = 8;
  HoldingBackend backend;
  const FdUsage usage = CurrentFdUsage().value();
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit low = saved;
  low.rlim_cur = usage.open + 64 + 2 * kRoom;
  ASSERT_LE(low.rlim_cur, saved.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  const ListenerId id = Listen(backend.address(), 0);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  const size_t expected = GetParam() == RelayMode::kCopy ? kRoom : kRoom / 2;
  ASSERT_EQ(engine_->MaxConnections(id).value(), expected);

  const int clients_count = static_cast<int>(expected) + 3;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < clients_count; ++i) {
    auto fd = testing::BlockingConnect(engine_->ListenAddress(id).value());
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    ASSERT_EQ(testing::SendPattern(fd->get(), HoldingBackend::kUpSeed, 4096), 4096u);
    clients.push_back(std::move(fd).value());
  }
  ASSERT_TRUE(WaitFor([&] { return backend.accepted() == static_cast<int>(expected); }));
  EXPECT_FALSE(
      WaitFor([&] { return backend.accepted() > static_cast<int>(expected); }, milliseconds(200)));
  backend.Serve();
  for (auto& client : clients) {
    testing::Received r = testing::ReceivePattern(client.get(), HoldingBackend::kDownSeed);
    EXPECT_EQ(r.bytes, 4096u);
    EXPECT_EQ(r.first_mismatch, -1);
  }
  auto closed = closes_.WaitFor(clients_count);
  ASSERT_EQ(closed.size(), static_cast<size_t>(clients_count));
  for (const PairStats& s : closed) EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
  EXPECT_EQ(backend.max_open(), static_cast<int>(expected));
}

TEST_P(ConnectionLimitTest, DerivedLimitWithNoRoomForAPairFailsListenNamingTheLimit) {
  const FdUsage usage = CurrentFdUsage().value();
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit low = saved;
  low.rlim_cur = usage.open + 10;  // less than the 64 spare fds
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ListenOptions options;
  options.address = testing::Loopback();
  options.backends.push_back(BackendOptions{testing::Loopback(AF_INET, 9), nullptr, {}});
  auto id = engine_->Listen(options);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message().find("RLIMIT_NOFILE"), std::string::npos) << id.error().message();
  EXPECT_NE(id.error().message().find("max_connections"), std::string::npos)
      << id.error().message();
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionLimitTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto));

}  // namespace
}  // namespace zrelay
