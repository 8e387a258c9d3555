// Listener on real loopback sockets across a real worker pool.
#include "engine/listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::BlockingConnect;
using testing::WaitFor;

constexpr int kWorkers = 4;

// Counts accepts per worker and checks each lands on its own worker thread.
struct CountingHandler : AcceptHandler {
  void OnAccept(size_t worker, UniqueFd fd, const Address& peer) override {
    if (WorkerPool::CurrentWorker() != static_cast<int>(worker)) wrong_thread++;
    int nodelay = 0;
    socklen_t len = sizeof(nodelay);
    if (peer.family() != AF_UNIX &&
        ::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0 && nodelay) {
      with_nodelay++;
    }
    if (!fd.valid()) bad_fd++;
    if (peer.family() != family.load()) wrong_family++;
    per_worker[worker]++;
    total++;
    // fd closes here: the test counts connections, it does not serve them.
  }
  std::atomic<int> family{AF_INET};
  std::atomic<int> per_worker[kWorkers] = {};
  std::atomic<int> total{0};
  std::atomic<int> wrong_thread{0};
  std::atomic<int> bad_fd{0};
  std::atomic<int> wrong_family{0};
  std::atomic<int> with_nodelay{0};
};

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WorkerPoolOptions options;
    options.workers = kWorkers;  // > cores on a 2-core box: spreading still observable
    auto pool = WorkerPool::Start(options);
    ASSERT_TRUE(pool.ok()) << pool.error().message();
    pool_ = std::move(pool).value();
  }
  void TearDown() override {
    listener_.reset();  // before the pool: Stop() runs on the workers
    pool_.reset();
  }

  void StartListener(const std::string& address, bool tcp_nodelay = false) {
    ListenerOptions options;
    options.address = Address::Parse(address).value();
    options.tcp_nodelay = tcp_nodelay;
    auto listener = Listener::Start(*pool_, options, &handler_);
    ASSERT_TRUE(listener.ok()) << listener.error().message();
    listener_ = std::move(listener).value();
  }

  std::unique_ptr<WorkerPool> pool_;
  CountingHandler handler_;
  std::unique_ptr<Listener> listener_;
};

TEST_F(ListenerTest, ThousandTcpConnectionsLandOnEveryWorker) {
  StartListener("127.0.0.1:0");
  const Address& bound = listener_->local_address();
  EXPECT_NE(bound.port(), 0) << "port 0 should be replaced by the kernel's port";
  constexpr int kConnections = 1000;
  for (int i = 0; i < kConnections; ++i) {
    auto fd = BlockingConnect(bound);
    ASSERT_TRUE(fd.ok()) << "connection " << i << ": " << fd.error().message();
    // Closing right away is fine: a connection queued for accept stays there.
  }
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == kConnections; }, seconds(10)))
      << "accepted " << handler_.total.load() << " of " << kConnections;
  int sum = 0;
  for (int w = 0; w < kWorkers; ++w) {
    // SO_REUSEPORT hashes connections over the 4 sockets: each gets about
    // 250; the chance one of them gets none is 4 * 0.75^1000.
    EXPECT_GT(handler_.per_worker[w].load(), 0) << "worker " << w << " got no connection";
    sum += handler_.per_worker[w].load();
  }
  EXPECT_EQ(sum, kConnections);
  EXPECT_EQ(handler_.wrong_thread.load(), 0);
  EXPECT_EQ(handler_.bad_fd.load(), 0);
  EXPECT_EQ(handler_.wrong_family.load(), 0);
  ListenerStats stats = listener_->Stats();
  EXPECT_EQ(stats.accepted, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(stats.fd_exhausted, 0u);
  EXPECT_EQ(stats.accept_errors, 0u);
}

// Accepted sockets inherit TCP_NODELAY from the listening socket, so a relay
// sets it once per listener, not once per connection.
TEST_F(ListenerTest, AcceptedSocketsInheritTcpNodelay) {
  StartListener("127.0.0.1:0", /*tcp_nodelay=*/true);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(BlockingConnect(listener_->local_address()).ok());
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == 20; }));
  EXPECT_EQ(handler_.with_nodelay.load(), 20);
}

TEST_F(ListenerTest, Ipv6Loopback) {
  handler_.family = AF_INET6;
  StartListener("[::1]:0");
  EXPECT_EQ(listener_->local_address().family(), AF_INET6);
  EXPECT_NE(listener_->local_address().port(), 0);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(BlockingConnect(listener_->local_address()).ok());
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == 20; }));
  EXPECT_EQ(handler_.wrong_family.load(), 0);
}

TEST_F(ListenerTest, UnixSocketPath) {
  // Not under $TEST_TMPDIR: Bazel's paths are longer than sun_path allows.
  char dir[] = "/tmp/zrelay-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/listener.sock";
  handler_.family = AF_UNIX;
  StartListener("unix:" + path);
  EXPECT_EQ(listener_->local_address().ToString(), "unix:" + path);
  constexpr int kConnections = 200;
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_TRUE(BlockingConnect(listener_->local_address()).ok()) << i;
  }
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == kConnections; }));
  EXPECT_EQ(listener_->Stats().accepted, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(handler_.wrong_thread.load(), 0);
  listener_.reset();
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST_F(ListenerTest, UnixAbstractSocket) {
  handler_.family = AF_UNIX;
  StartListener("unix:@zrelay-listener-test-" + std::to_string(::getpid()));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(BlockingConnect(listener_->local_address()).ok());
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == 10; }));
}

TEST_F(ListenerTest, StopClosesTheSocketsAndNoMoreCallsHappen) {
  StartListener("127.0.0.1:0");
  const Address bound = listener_->local_address();
  ASSERT_TRUE(BlockingConnect(bound).ok());
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == 1; }));
  listener_->Stop();
  listener_->Stop();  // idempotent
  auto refused = BlockingConnect(bound);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code().value(), ECONNREFUSED);
  EXPECT_EQ(handler_.total.load(), 1);
  EXPECT_EQ(listener_->Stats().accepted, 1u);  // stats survive Stop()
}

TEST_F(ListenerTest, BindErrorNamesTheAddress) {
  // A plain socket without SO_REUSEPORT holds the port.
  ListenSocketOptions exclusive;
  exclusive.reuse_port = false;
  auto taken = ListenOn(testing::Loopback(), exclusive);
  ASSERT_TRUE(taken.ok());
  const Address address = LocalAddress(taken->get()).value();
  ListenerOptions options;
  options.address = address;
  auto listener = Listener::Start(*pool_, options, &handler_);
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.error().code().value(), EADDRINUSE);
  EXPECT_NE(listener.error().message().find(address.ToString()), std::string::npos)
      << listener.error().message();
}

TEST_F(ListenerTest, BudgetYieldsButAcceptsEverything) {
  // One accept per event: a burst must still be drained via the ready list.
  ListenerOptions options;
  options.address = testing::Loopback();
  options.accepts_per_event = 1;
  auto listener = Listener::Start(*pool_, options, &handler_);
  ASSERT_TRUE(listener.ok());
  listener_ = std::move(listener).value();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(BlockingConnect(listener_->local_address()).ok());
  ASSERT_TRUE(WaitFor([&] { return handler_.total.load() == 100; }));
}

TEST_F(ListenerTest, UnexpectedAcceptErrorBacksOffOnTheRetryTimer) {
  // Shutting a listening socket down under the acceptor makes accept4 fail
  // with EINVAL on every call: it must be counted and retried on the timer,
  // not in a tight loop.
  ListenerOptions options;
  options.address = testing::Loopback();
  options.fd_exhausted_retry = milliseconds(50);
  auto listener = Listener::Start(*pool_, options, &handler_);
  ASSERT_TRUE(listener.ok());
  listener_ = std::move(listener).value();
  const int port = listener_->local_address().port();
  int shut = 0;
  for (int fd = 3; fd < 1024; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    auto local = LocalAddress(fd);
    if (local.ok() && local->port() == port && ::shutdown(fd, SHUT_RD) == 0) ++shut;
  }
  ASSERT_EQ(shut, kWorkers);
  ASSERT_TRUE(WaitFor([&] { return listener_->Stats().accept_errors >= kWorkers; }));
  const uint64_t before = listener_->Stats().accept_errors;
  std::this_thread::sleep_for(milliseconds(500));
  const uint64_t during = listener_->Stats().accept_errors - before;
  // About 10 retries per worker in 500 ms at 50 ms; allow for a slow box,
  // a spin would be many thousands.
  EXPECT_GE(during, 1u);
  EXPECT_LE(during, static_cast<uint64_t>(kWorkers) * 12u);
  EXPECT_EQ(listener_->Stats().fd_exhausted, 0u);
  EXPECT_EQ(handler_.total.load(), 0);
}

// Holds every accepted fd until the test lets it go (with Listener::Release
// for its max_connections slot), and records how many were held at once.
struct HoldingHandler : AcceptHandler {
  void OnAccept(size_t worker, UniqueFd fd, const Address&) override {
    held[worker].push_back(std::move(fd));
    const int now = ++open;
    int seen = max_open.load();
    while (now > seen && !max_open.compare_exchange_weak(seen, now)) {
    }
    ++total;
    if (back_off_on_accept) listener->BackOff(worker);
  }
  // Closes up to `n` held connections (on their workers) and releases their
  // slots. Returns how many it closed.
  int CloseSome(WorkerPool& pool, int n) {
    std::atomic<int> closed{0};
    pool.RunOnEach([&](size_t worker) {
      while (!held[worker].empty() && closed.fetch_add(1) < n) {
        held[worker].pop_back();
        --open;
        listener->Release();
      }
    });
    return std::min(closed.load(), n);
  }
  Listener* listener = nullptr;
  bool back_off_on_accept = false;
  std::vector<UniqueFd> held[kWorkers];  // each touched only by its worker
  std::atomic<int> open{0};
  std::atomic<int> max_open{0};
  std::atomic<int> total{0};
};

TEST_F(ListenerTest, MaxConnectionsHoldsExactlyAcrossWorkersAndResumesOnRelease) {
  // More clients than the limit, spread over every worker's queue: at most
  // `kMax` are accepted at once, the rest wait in the backlog (none is
  // refused), and each Release lets exactly one more in.
  constexpr int kMax = 5;
  constexpr int kClients = 40;
  HoldingHandler handler;
  ListenerOptions options;
  options.address = testing::Loopback();
  options.max_connections = kMax;
  auto listener = Listener::Start(*pool_, options, &handler);
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  handler.listener = listener->get();
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    auto fd = BlockingConnect((*listener)->local_address());
    ASSERT_TRUE(fd.ok()) << "client " << i << ": " << fd.error().message();
    clients.push_back(std::move(fd).value());
  }
  ASSERT_TRUE(WaitFor([&] { return handler.total.load() == kMax; }));
  ASSERT_TRUE(WaitFor([&] { return (*listener)->Stats().paused_max_connections > 0; }));
  // Nothing beyond the limit, however long the workers get (a bounded wait
  // for something that must not happen).
  EXPECT_FALSE(WaitFor([&] { return handler.total.load() > kMax; }, milliseconds(200)));

  // Each release lets exactly one waiting client in, on whichever worker.
  for (int accepted = kMax; accepted < kClients; ++accepted) {
    ASSERT_EQ(handler.CloseSome(*pool_, 1), 1);
    ASSERT_TRUE(WaitFor([&] { return handler.total.load() == accepted + 1; }))
        << "accepting did not resume after a release (" << handler.total.load() << " accepted)";
  }
  handler.CloseSome(*pool_, kClients);
  EXPECT_EQ(handler.total.load(), kClients);
  EXPECT_EQ(handler.max_open.load(), kMax);
  const ListenerStats stats = (*listener)->Stats();
  EXPECT_EQ(stats.accepted, static_cast<uint64_t>(kClients));
  EXPECT_GE(stats.paused_max_connections, 1u);
  EXPECT_EQ(stats.fd_exhausted + stats.accept_errors, 0u);
  uint64_t per_worker = 0;
  for (size_t w = 0; w < kWorkers; ++w) per_worker += (*listener)->Stats(w).paused_max_connections;
  EXPECT_EQ(per_worker, stats.paused_max_connections);
  (*listener)->Stop();
}

TEST(ListenerBackOffTest, BackOffPausesTheWorkerForTheRetryInterval) {
  // An owner that ran out of fds after the accept (its backend socket()
  // failed) backs off through the listener: the next client waits in the
  // backlog instead of being accepted and reset, and is taken once the
  // retry timer fires.
  auto pool = WorkerPool::Start({.workers = 1});
  ASSERT_TRUE(pool.ok());
  HoldingHandler handler;
  handler.back_off_on_accept = true;
  ListenerOptions options;
  options.address = testing::Loopback();
  options.fd_exhausted_retry = seconds(2);
  auto listener = Listener::Start(**pool, options, &handler);
  ASSERT_TRUE(listener.ok());
  handler.listener = listener->get();
  auto first = BlockingConnect((*listener)->local_address());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(WaitFor([&] { return handler.total.load() == 1; }));
  auto second = BlockingConnect((*listener)->local_address());
  ASSERT_TRUE(second.ok()) << "a backing-off listener still queues clients";
  EXPECT_FALSE(WaitFor([&] { return handler.total.load() > 1; }, milliseconds(300)))
      << "accepted during the back-off";
  EXPECT_TRUE(WaitFor([&] { return handler.total.load() == 2; }, seconds(10)))
      << "never resumed after the back-off";
  EXPECT_EQ((*listener)->Stats().fd_exhausted, 0u) << "BackOff is not an accept4 failure";
  (*listener)->Stop();
}

}  // namespace
}  // namespace zrelay
