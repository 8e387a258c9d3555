// A listener over a pool of backends, through real loopback connections:
// each policy's spread, retries past a dead backend, passive ejection and
// return, active health checks, no healthy backend, extra addresses, unix
// backends, per-listener timeouts.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/pool_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::CountingBackend;
using testing::DeadAddress;
using testing::Loopback;
using testing::RoundTrip;

// Event lines from on_event (any thread).
class EventLog {
 public:
  OnListenerEvent Callback() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
    };
  }
  std::vector<std::string> Matching(const std::string& part) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const std::string& l : lines_) {
      if (l.find(part) != std::string::npos) out.push_back(l);
    }
    return out;
  }
  bool WaitFor(const std::string& part, Duration deadline = seconds(10)) {
    return testing::WaitFor([&] { return !Matching(part).empty(); }, deadline);
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options(const std::vector<Address>& backends, std::vector<uint32_t> weights = {}) {
    ListenOptions o;
    o.name = "pool";
    o.address = Loopback();
    for (size_t i = 0; i < backends.size(); ++i) {
      BackendOptions b{backends[i], nullptr, {}};
      if (i < weights.size()) b.weight = weights[i];
      o.backends.push_back(b);
    }
    o.on_close = closes_.Callback();
    o.on_event = events_.Callback();
    return o;
  }

  Address Listen(const ListenOptions& o) { return testing::ListenOrFail(*engine_, o, &id_); }

  // Every pair closed so far ended kDone, relayed to one of `backends`.
  void ExpectAllDone(size_t n, const std::vector<Address>& backends) {
    auto closed = closes_.WaitFor(n);
    ASSERT_EQ(closed.size(), n);
    std::set<std::string> allowed;
    for (const Address& a : backends) allowed.insert(a.ToString());
    for (const PairStats& s : closed) {
      EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
      EXPECT_EQ(allowed.count(s.backend.ToString()), 1u) << s.backend.ToString();
    }
  }

  CloseRecorder closes_;
  EventLog events_;
  std::unique_ptr<Engine> engine_;
  ListenerId id_ = 0;
};

TEST_F(PoolTest, RoundRobinSpreadsByWeight) {
  CountingBackend a(Loopback()), b(Loopback()), c(Loopback());
  Address front = Listen(Options({a.address(), b.address(), c.address()}, {1, 2, 3}));
  constexpr int kClients = 60;
  for (int i = 0; i < kClients; ++i) ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  // Each worker's sequence is exactly weighted over every period of 6; the
  // kernel splits clients between two workers, so each may end mid-period.
  EXPECT_NEAR(a.accepted(), 10, 3);
  EXPECT_NEAR(b.accepted(), 20, 3);
  EXPECT_NEAR(c.accepted(), 30, 3);
  EXPECT_EQ(a.accepted() + b.accepted() + c.accepted(), kClients);
  EXPECT_TRUE(a.ok() && b.ok() && c.ok());
  ExpectAllDone(kClients, {a.address(), b.address(), c.address()});
}

TEST_F(PoolTest, LeastConnCountsHeldPairsByWeight) {
  CountingBackend a(Loopback(), /*hold=*/true), b(Loopback(), true), c(Loopback(), true);
  ListenOptions o = Options({a.address(), b.address(), c.address()}, {1, 1, 2});
  o.balance = BalancePolicy::kLeastConn;
  Address front = Listen(o);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 8; ++i) {
    auto fd = testing::BlockingConnect(front);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    clients.push_back(std::move(fd.value()));
    // The pick of the next client must see this one's pair.
    ASSERT_TRUE(testing::WaitFor(
        [&] { return a.accepted() + b.accepted() + c.accepted() == i + 1; }, seconds(10)));
  }
  EXPECT_EQ(a.open(), 2);
  EXPECT_EQ(b.open(), 2);
  EXPECT_EQ(c.open(), 4);
  a.Serve();
  b.Serve();
  c.Serve();
  for (UniqueFd& fd : clients) EXPECT_TRUE(testing::Exchange(fd.get(), 10000));
  ExpectAllDone(clients.size(), {a.address(), b.address(), c.address()});
}

TEST_F(PoolTest, MaglevKeepsEachClientAddressOnOneBackend) {
  CountingBackend a(Loopback()), b(Loopback()), c(Loopback());
  std::vector<CountingBackend*> backends{&a, &b, &c};
  ListenOptions o = Options({a.address(), b.address(), c.address()});
  o.balance = BalancePolicy::kMaglev;
  Address front = Listen(o);
  std::set<size_t> used;
  for (int ip = 10; ip < 18; ++ip) {
    const Address source = Address::Parse("127.0.0." + std::to_string(ip) + ":0").value();
    std::vector<int> before;
    for (CountingBackend* be : backends) before.push_back(be->accepted());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(RoundTrip(front, 1000, source)) << source.ToString();
    int moved = 0;
    for (size_t k = 0; k < backends.size(); ++k) {
      const int got = backends[k]->accepted() - before[k];
      if (got == 0) continue;
      ++moved;
      EXPECT_EQ(got, 4) << source.ToString() << " went to more than one backend";
      used.insert(k);
    }
    EXPECT_EQ(moved, 1) << source.ToString();
  }
  // Eight addresses over three backends: the hash spreads them.
  EXPECT_GE(used.size(), 2u);
  ExpectAllDone(32, {a.address(), b.address(), c.address()});
}

TEST_F(PoolTest, RetriesPastADeadBackendSoNoClientFails) {
  CountingBackend a(Loopback()), c(Loopback());
  const Address dead = DeadAddress();
  ListenOptions o = Options({a.address(), dead, c.address()});
  o.retries = 2;
  o.eject_after = 0;  // keep trying the dead one: every retry path runs
  Address front = Listen(o);
  constexpr int kClients = 40;
  for (int i = 0; i < kClients; ++i) ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  EXPECT_EQ(a.accepted() + c.accepted(), kClients);
  ExpectAllDone(kClients, {a.address(), c.address()});
  const WorkerStats total = engine_->Stats().total;
  // Round-robin sends every third client to the dead backend first.
  EXPECT_GE(total.backend_retries, 10u);
  EXPECT_EQ(total.connect_failures, total.backend_retries);
}

TEST_F(PoolTest, ATimedOutTryLeavesTimeForTheNextWithinConnectTimeout) {
  testing::StuckBackend stuck;
  ASSERT_TRUE(stuck.full());
  CountingBackend live(Loopback());
  ListenOptions o = Options({stuck.address(), live.address()});
  o.retries = 1;
  o.eject_after = 0;
  o.connect_timeout = seconds(1);  // two tries: 500 ms each at most
  Address front = Listen(o);
  constexpr int kClients = 4;
  for (int i = 0; i < kClients; ++i) ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  EXPECT_EQ(live.accepted(), kClients);
  ExpectAllDone(kClients, {live.address()});
  const WorkerStats total = engine_->Stats().total;
  EXPECT_GE(total.connect_failures, 1u);
  EXPECT_EQ(total.connect_failures, total.backend_retries);
  // A retry takes no round-robin turn: each worker's next client starts on
  // the live backend (a retry that took the turn would send every client to
  // the stuck one first).
  EXPECT_LE(total.connect_failures, static_cast<uint64_t>(kClients / 2 + 1));
  // Each timed-out try waited its share of connect_timeout, no less.
  size_t waited = 0;
  for (const PairStats& s : closes_.WaitFor(kClients)) waited += s.age >= milliseconds(490);
  EXPECT_GE(waited, total.connect_failures);
}

TEST_F(PoolTest, EjectsAFailingBackendThenTakesItBack) {
  CountingBackend live(Loopback());
  const Address dead = DeadAddress();
  ListenOptions o = Options({live.address(), dead});
  o.retries = 1;
  o.eject_after = 2;
  o.eject_for = seconds(2);
  Address front = Listen(o);
  int clients = 0;
  for (int i = 0; i < 20 && events_.Matching("ejected").empty(); ++i, ++clients) {
    ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  }
  ASSERT_TRUE(events_.WaitFor("ejected"));
  const TimePoint ejected_at = Clock::now();
  const auto ejected = events_.Matching("ejected");
  ASSERT_EQ(ejected.size(), 1u);
  EXPECT_EQ(ejected[0].rfind("listener pool: backend " + dead.ToString() +
                                 " ejected after 2 connect failures (last: ECONNREFUSED",
                             0),
            0u)
      << ejected[0];
  // Out of the pool: no client tries it, none fails.
  const uint64_t failures = engine_->Stats().total.connect_failures;
  EXPECT_EQ(failures, 2u);
  for (int i = 0; i < 10; ++i, ++clients) ASSERT_TRUE(RoundTrip(front));
  if (Clock::now() - ejected_at < o.eject_for) {
    EXPECT_EQ(engine_->Stats().total.connect_failures, failures);
  }

  // It comes back up; after eject_for it gets clients again.
  CountingBackend revived(dead);
  ASSERT_TRUE(revived.listening()) << revived.error();
  ASSERT_TRUE(events_.WaitFor("back in"));
  for (int i = 0; i < 20 && revived.accepted() == 0; ++i, ++clients) {
    ASSERT_TRUE(RoundTrip(front));
  }
  EXPECT_GT(revived.accepted(), 0);
  ExpectAllDone(clients, {live.address(), dead});
}

TEST_F(PoolTest, ActiveChecksTakeADeadBackendOutAndBringItBack) {
  CountingBackend live(Loopback());
  auto other = std::make_unique<CountingBackend>(Loopback());
  const Address other_address = other->address();
  ListenOptions o = Options({live.address(), other_address});
  o.eject_after = 0;  // only the checks decide
  o.health = HealthCheckOptions{milliseconds(50), milliseconds(40), 1, 1};
  Address front = Listen(o);
  other.reset();  // closed: its checks are refused
  const std::string down = "listener pool: backend " + other_address.ToString() + " down: ";
  ASSERT_TRUE(events_.WaitFor(down));
  EXPECT_EQ(events_.Matching(down)[0].rfind(down + "connect", 0), 0u) << events_.Matching(down)[0];
  const uint64_t failures = engine_->Stats().total.connect_failures;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  EXPECT_EQ(engine_->Stats().total.connect_failures, failures);

  CountingBackend revived(other_address);
  ASSERT_TRUE(revived.listening()) << revived.error();
  ASSERT_TRUE(events_.WaitFor("backend " + other_address.ToString() + " up: "));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(RoundTrip(front)) << "client " << i;
  EXPECT_GE(revived.accepted(), 3);
}

TEST_F(PoolTest, NoHealthyBackendClosesClientsAtOnce) {
  const Address dead1 = DeadAddress(), dead2 = DeadAddress();
  ListenOptions o = Options({dead1, dead2});
  o.retries = 1;
  o.eject_after = 1;
  o.eject_for = seconds(60);
  o.connect_timeout = seconds(30);
  Address front = Listen(o);
  // The first client tries both, and both go out.
  EXPECT_FALSE(RoundTrip(front));
  auto first = closes_.WaitFor(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].cause, CloseCause::kConnectFailed);
  EXPECT_NE(first[0].detail.find("listener pool: connect to "), std::string::npos)
      << first[0].detail;
  EXPECT_NE(first[0].detail.find("(2 endpoints tried)"), std::string::npos) << first[0].detail;
  const TimePoint start = Clock::now();
  constexpr int kClients = 5;
  for (int i = 0; i < kClients; ++i) EXPECT_FALSE(RoundTrip(front));
  auto closed = closes_.WaitFor(1 + kClients);
  ASSERT_EQ(closed.size(), 1u + kClients);
  for (size_t i = 1; i < closed.size(); ++i) {
    EXPECT_EQ(closed[i].cause, CloseCause::kConnectFailed);
    EXPECT_EQ(closed[i].detail, "listener pool: no healthy backend");
    // Closed without waiting out the 30 s connect timeout.
    EXPECT_LT(closed[i].age, seconds(10));
  }
  EXPECT_EQ(engine_->Stats().total.no_healthy_backend, static_cast<uint64_t>(kClients));
  // Rate-limited: one line a second at most.
  const auto lines = events_.Matching("no healthy backend");
  const auto elapsed = std::chrono::duration_cast<seconds>(Clock::now() - start).count();
  EXPECT_GE(lines.size(), 1u);
  EXPECT_LE(lines.size(), static_cast<size_t>(elapsed) + 1);
  EXPECT_EQ(events_.Matching("ejected").size(), 2u);
}

TEST_F(PoolTest, ExtraAddressesOnIpv4AndIpv6ShareOnePool) {
  CountingBackend a(Loopback(), /*hold=*/true), b(Loopback(), true);
  ListenOptions o = Options({a.address(), b.address()});
  o.balance = BalancePolicy::kLeastConn;
  o.extra_addresses = {Loopback(AF_INET6)};
  auto id = engine_->Listen(o);
  ASSERT_TRUE(id.ok()) << id.error().message();
  auto fronts = engine_->ListenAddresses(*id);
  ASSERT_TRUE(fronts.ok());
  ASSERT_EQ(fronts->size(), 2u);
  EXPECT_EQ((*fronts)[0].family(), AF_INET);
  EXPECT_EQ((*fronts)[1].family(), AF_INET6);
  // Three over IPv4, then one over IPv6: one pool's least-conn sees all four.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 4; ++i) {
    auto fd = testing::BlockingConnect((*fronts)[i < 3 ? 0 : 1]);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    clients.push_back(std::move(fd.value()));
    ASSERT_TRUE(testing::WaitFor([&] { return a.accepted() + b.accepted() == i + 1; }));
  }
  EXPECT_EQ(a.open(), 2);
  EXPECT_EQ(b.open(), 2);
  a.Serve();
  b.Serve();
  for (UniqueFd& fd : clients) EXPECT_TRUE(testing::Exchange(fd.get(), 50000));
  // And more clients over both families are served.
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(RoundTrip((*fronts)[i % 2]));
  ExpectAllDone(10, {a.address(), b.address()});
}

TEST_F(PoolTest, UnixBackends) {
  // Abstract names: no file to clean up, no sun_path length to mind.
  const std::string prefix = "unix:@zrelay-pool-test-" + std::to_string(::getpid());
  CountingBackend a(Address::Parse(prefix + "-a").value());
  CountingBackend b(Address::Parse(prefix + "-b").value());
  ASSERT_TRUE(a.listening()) << a.error();
  ASSERT_TRUE(b.listening()) << b.error();
  ListenOptions o = Options({a.address(), b.address()});
  o.retries = 1;
  Address front = Listen(o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(RoundTrip(front, 100000));
  EXPECT_GE(a.accepted(), 3);
  EXPECT_GE(b.accepted(), 3);
  ExpectAllDone(10, {a.address(), b.address()});
  // A unix backend that goes away is retried past like any other.
  a.Close();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(b.accepted() + a.accepted(), 16);
}

TEST_F(PoolTest, ListenerIdleTimeoutOverridesTheEngines) {
  CountingBackend a(Loopback());
  ListenOptions o = Options({a.address()});
  o.idle_timeout = milliseconds(200);  // the engine has none
  Address front = Listen(o);
  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kTimeout) << closed[0].detail;
  EXPECT_EQ(closed[0].backend.ToString(), a.address().ToString());
}

TEST_F(PoolTest, ListenRejectsBadPoolOptionsNamingThem) {
  ListenOptions o = Options({Loopback(AF_INET, 1)});
  o.retries = -1;
  auto id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(), "listener pool: retries must be >= 0");
  o = Options({Loopback(AF_INET, 1), Loopback(AF_INET, 1)});
  id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message().find("listed twice"), std::string::npos) << id.error().message();
  o = Options({Loopback(AF_INET, 1), Address()});
  id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(), "listener pool: backend 2 has neither an address nor a host");
  o = Options({Loopback(AF_INET, 1)});
  o.health = HealthCheckOptions{seconds(1), seconds(2), 3, 2};
  id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(),
            "listener pool: health check timeout must be > 0 and shorter than its interval");
  o = Options({Loopback(AF_INET, 1)}, {kMaxBackendWeight + 1});
  id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message().find("weight 257"), std::string::npos) << id.error().message();
}

}  // namespace
}  // namespace zrelay
