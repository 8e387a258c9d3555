// Engine::Metrics() per backend endpoint: connects, failures, open pairs,
// health (ejected, up) and the connect-latency histogram of a pool with a
// dead endpoint, and a host backend's endpoints keeping their counts when
// its name resolves anew.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tests/relay/holding_backend.h"
#include "tests/relay/metrics_fixture.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::DeadAddress;
using testing::HoldingBackend;
using testing::MetricsTest;

// Two endpoints, the first one dead: a client's first try fails (round-robin
// starts with it on every worker), the retry connects to the live one, and
// the dead one is ejected after that one failure.
TEST_F(MetricsTest, BackendsShowConnectsFailuresOpenPairsHealthAndLatency) {
  StartEngine(RelayMode::kSplice);
  HoldingBackend live;
  const Address dead = DeadAddress();
  ListenOptions options = Options("pool", {dead, live.address()});
  options.retries = 1;
  options.eject_after = 1;
  options.eject_for = seconds(60);
  Address front = Listen(options);

  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(testing::WaitFor([&] { return live.accepted() == 1; }, seconds(10)));
  ListenerMetrics held = WaitForListener("pool", [](const ListenerMetrics& l) {
    return l.backends.size() == 2 && l.backends[1].connects_total == 1;
  });
  ASSERT_EQ(held.backends.size(), 2u);
  const BackendMetrics& d = held.backends[0];
  const BackendMetrics& l = held.backends[1];
  EXPECT_EQ(d.address, dead.ToString());
  EXPECT_EQ(l.address, live.address().ToString());
  EXPECT_TRUE(d.host.empty());
  EXPECT_EQ(d.connect_failures_total, 1u);
  EXPECT_EQ(d.connects_total, 0u);
  EXPECT_EQ(d.connections_open, 0u);
  EXPECT_TRUE(d.ejected);
  EXPECT_FALSE(d.down);
  EXPECT_FALSE(d.up);
  EXPECT_EQ(l.connects_total, 1u);
  EXPECT_EQ(l.connect_failures_total, 0u);
  EXPECT_EQ(l.connections_open, 1u);
  EXPECT_TRUE(l.up);
  EXPECT_FALSE(l.ejected);
  // The histogram: one observation, in exactly one bucket.
  const HistogramSnapshot& h = l.connect_seconds;
  EXPECT_EQ(h.bounds_seconds.size(), kConnectSecondsBounds.size());
  ASSERT_EQ(h.counts.size(), kConnectSecondsBounds.size() + 1);
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(std::accumulate(h.counts.begin(), h.counts.end(), uint64_t{0}), 1u);
  EXPECT_GT(h.sum_seconds, 0.0);
  EXPECT_EQ(held.connect_failures_total, 1u);
  EXPECT_EQ(held.backend_retries_total, 1u);
  EXPECT_EQ(held.open, 1u);

  // Sent (with FIN) before Serve(), which echoes the held connection on
  // this thread.
  testing::SendPattern(client->get(), HoldingBackend::kUpSeed, 5000);
  live.Serve();
  testing::Received r = testing::ReceivePattern(client->get(), HoldingBackend::kDownSeed);
  EXPECT_EQ(r.bytes, 5000u);
  EXPECT_EQ(r.first_mismatch, -1);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].backend.ToString(), live.address().ToString());

  ListenerMetrics after = Listener("pool");
  ASSERT_EQ(after.backends.size(), 2u);
  EXPECT_EQ(after.backends[1].connections_open, 0u);
  EXPECT_EQ(after.open, 0u);
  EXPECT_EQ(after.closed_total[kDone], 1u);
}

// A host backend's endpoints carry its name, and an address it keeps when
// its name resolves anew keeps its counts, open pairs included (a pair that
// picked from the previous generation is still open to it).
TEST_F(MetricsTest, HostEndpointsKeepTheirCountsAcrossReResolution) {
  StartEngine(RelayMode::kSplice);
  HoldingBackend backend;
  const Address live = backend.address();
  // Same port, another loopback address: listed, never connected to.
  const Address other = Address::Parse("127.0.0.2:" + std::to_string(live.port())).value();
  std::atomic<bool> grown{false};
  ListenOptions options = Options("host", {});
  BackendOptions host;
  host.host = "app.test";
  host.port = live.port();
  options.backends.push_back(host);
  options.resolve = [&](const std::string&, int) -> Result<std::vector<Address>> {
    if (grown.load()) return std::vector<Address>{live, other};
    return std::vector<Address>{live};
  };
  options.resolve_interval = milliseconds(20);
  Address front = Listen(options);

  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(testing::WaitFor([&] { return backend.accepted() == 1; }, seconds(10)));
  ListenerMetrics before = WaitForListener(
      "host", [](const ListenerMetrics& l) {
        // The backend may accept before the worker sees its connect finish.
        return l.backends.size() == 1 && l.open == 1 && l.backends[0].connects_total == 1;
      });
  ASSERT_EQ(before.backends.size(), 1u);
  EXPECT_EQ(before.backends[0].address, live.ToString());
  EXPECT_EQ(before.backends[0].host, "app.test");
  EXPECT_EQ(before.backends[0].connects_total, 1u);
  EXPECT_EQ(before.backends[0].connections_open, 1u);

  grown = true;
  ListenerMetrics after =
      WaitForListener("host", [](const ListenerMetrics& l) { return l.backends.size() == 2; });
  ASSERT_EQ(after.backends.size(), 2u);
  EXPECT_EQ(after.backends[0].address, live.ToString());
  EXPECT_EQ(after.backends[0].host, "app.test");
  EXPECT_EQ(after.backends[0].connects_total, 1u) << "kept across the new generation";
  EXPECT_EQ(after.backends[0].connect_seconds.count, 1u);
  EXPECT_EQ(after.backends[0].connections_open, 1u) << "the held pair, of the old generation";
  EXPECT_EQ(after.backends[1].address, other.ToString());
  EXPECT_EQ(after.backends[1].host, "app.test");
  EXPECT_EQ(after.backends[1].connects_total, 0u);
  EXPECT_EQ(after.backends[1].connections_open, 0u);

  // Sent (with FIN) before Serve(), which echoes the held connection on
  // this thread.
  testing::SendPattern(client->get(), HoldingBackend::kUpSeed, 4000);
  backend.Serve();
  testing::Received r = testing::ReceivePattern(client->get(), HoldingBackend::kDownSeed);
  EXPECT_EQ(r.bytes, 4000u);
  EXPECT_EQ(r.first_mismatch, -1);
  ASSERT_EQ(closes_.WaitFor(1).size(), 1u);
  ListenerMetrics done = Listener("host");
  ASSERT_EQ(done.backends.size(), 2u);
  EXPECT_EQ(done.backends[0].connections_open, 0u);
  EXPECT_EQ(done.accepted_total, 1u);
  EXPECT_EQ(done.closed_total[kDone], 1u);
}

}  // namespace
}  // namespace zrelay
