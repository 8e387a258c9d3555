// Engine::Metrics() per listener and worker, read while the workers run: a
// transfer in progress shows its bytes before it ends (per relay mode, with
// the worker gauges agreeing with Engine::Stats()), closes are counted by
// cause, and scraping in a tight loop from another thread during transfers
// is safe (run it under --config=tsan too).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <thread>
#include <vector>

#include "engine/socket.h"
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
using testing::ScriptedBackend;

// Reads exactly `n` bytes from a blocking fd, checking pattern `seed`.
// Returns how many matched before a mismatch, EOF or error.
uint64_t ReceiveExactly(int fd, uint64_t seed, uint64_t n) {
  std::vector<char> buf(64 << 10);
  uint64_t got = 0;
  while (got < n) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - got));
    const ssize_t r = ::read(fd, buf.data(), want);
    if (r <= 0) return got;
    for (ssize_t i = 0; i < r; ++i) {
      if (static_cast<uint8_t>(buf[i]) != testing::PatternByte(seed, got)) return got;
      ++got;
    }
  }
  return got;
}

class MetricsModeTest : public MetricsTest, public ::testing::WithParamInterface<RelayMode> {
 protected:
  void SetUp() override { StartEngine(GetParam()); }
};

// A backend that reads kUp bytes, answers kDown and then holds the pair
// open until the client finishes: in between, the transfer is in progress
// and Metrics() must already show every byte of it.
TEST_P(MetricsModeTest, TransferInProgressShowsItsBytes) {
  constexpr uint64_t kUp = 3 << 20, kDown = 2 << 20;
  std::atomic<uint64_t> at_backend{0};
  std::atomic<bool> backend_saw_eof{false};
  ScriptedBackend backend([&](int fd) {
    at_backend = ReceiveExactly(fd, 1, kUp);
    testing::SendPattern(fd, 2, kDown, 64 << 10, /*shut_write=*/false);
    char byte;
    backend_saw_eof = ::read(fd, &byte, 1) == 0;  // holds the pair until the client's FIN
  });
  Address front = Listen(Options("live", {backend.address()}));
  EXPECT_FALSE(engine_->Metrics().draining);

  auto client = testing::BlockingConnect(front);
  ASSERT_TRUE(client.ok()) << client.error().message();
  std::thread sender([fd = client->get()] { testing::SendPattern(fd, 1, kUp, 64 << 10, false); });
  EXPECT_EQ(ReceiveExactly(client->get(), 2, kDown), kDown);
  sender.join();
  EXPECT_EQ(at_backend.load(), kUp);

  // Both directions are delivered; the pair is still open.
  ListenerMetrics live = WaitForListener("live", [&](const ListenerMetrics& l) {
    return l.bytes_client_to_backend_total == kUp && l.bytes_backend_to_client_total == kDown;
  });
  EXPECT_EQ(live.bytes_client_to_backend_total, kUp);
  EXPECT_EQ(live.bytes_backend_to_client_total, kDown);
  EXPECT_EQ(live.accepted_total, 1u);
  EXPECT_EQ(live.open, 1u);
  EXPECT_EQ(std::accumulate(live.closed_total.begin(), live.closed_total.end(), uint64_t{0}), 0u);
  if (GetParam() == RelayMode::kSplice) {
    EXPECT_EQ(live.bytes_spliced_total, kUp + kDown);
    EXPECT_EQ(live.bytes_copied_total, 0u);
  } else {
    EXPECT_EQ(live.bytes_copied_total, kUp + kDown);
    EXPECT_EQ(live.bytes_spliced_total, 0u);
  }
  ASSERT_EQ(live.backends.size(), 1u);
  EXPECT_EQ(live.backends[0].address, backend.address().ToString());
  EXPECT_EQ(live.backends[0].connections_open, 1u);
  EXPECT_EQ(PairsOpen(engine_->Metrics()), 1u);

  ::shutdown(client->get(), SHUT_WR);
  testing::Received rest = testing::ReceivePattern(client->get(), 2);
  EXPECT_EQ(rest.bytes, 0u);
  EXPECT_EQ(rest.error, 0);
  auto closed = closes_.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_TRUE(backend_saw_eof.load());
  // The client's address as the relay saw it; no TLS.
  EXPECT_EQ(closed[0].client.ToString(), LocalAddress(client->get()).value().ToString());
  EXPECT_TRUE(closed[0].tls_version.empty());
  EXPECT_TRUE(closed[0].sni.empty());

  // on_close ran after the pair was counted closed.
  MetricsSnapshot after = engine_->Metrics();
  ListenerMetrics done = Listener("live");
  EXPECT_EQ(done.open, 0u);
  EXPECT_EQ(done.closed_total[kDone], 1u);
  EXPECT_EQ(done.bytes_client_to_backend_total, kUp);
  EXPECT_EQ(done.bytes_backend_to_client_total, kDown);
  EXPECT_EQ(PairsOpen(after), 0u);

  // The worker gauges agree with Engine::Stats(), which reads the same
  // counters on the workers' own threads.
  EngineStats stats = engine_->Stats();
  ASSERT_EQ(after.workers.size(), stats.workers.size());
  uint64_t pooled = 0;
  for (size_t i = 0; i < after.workers.size(); ++i) {
    const WorkerMetrics& w = after.workers[i];
    const WorkerStats& s = stats.workers[i];
    EXPECT_EQ(w.pipes_in_use, 0u);
    EXPECT_EQ(w.buffers_in_use, 0u);
    EXPECT_EQ(w.pipes_pooled, s.pipes_pooled);
    EXPECT_EQ(w.buffers_pooled, s.buffers_pooled);
    EXPECT_EQ(w.pipe_pool_exhausted_total, s.pipe_pool_exhausted);
    EXPECT_EQ(w.splice_switches_total, s.splice_switches);
    pooled += GetParam() == RelayMode::kSplice ? w.pipes_pooled : w.buffers_pooled;
  }
  EXPECT_GE(pooled, 1u) << "the transfer's pipe or ring went back to its pool";
}

INSTANTIATE_TEST_SUITE_P(Modes, MetricsModeTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy),
                         [](const auto& info) {
                           return RelayModeName(info.param);
                         });

TEST_F(MetricsTest, ClosesAreCountedByCause) {
  StartEngine(RelayMode::kSplice);
  HoldingBackend backend;
  Address front = Listen(Options("causes", {backend.address()}));
  Address refused = Listen(Options("refused", {DeadAddress()}));

  // Done: two clients served in full.
  backend.Serve();
  for (uint64_t size : {uint64_t{1}, uint64_t{200000}}) {
    auto client = testing::BlockingConnect(front);
    ASSERT_TRUE(client.ok());
    testing::SendPattern(client->get(), HoldingBackend::kUpSeed, size);
    testing::Received r = testing::ReceivePattern(client->get(), HoldingBackend::kDownSeed);
    EXPECT_EQ(r.bytes, size);
    EXPECT_EQ(r.first_mismatch, -1);
  }
  EXPECT_TRUE(backend.ok());
  ASSERT_EQ(closes_.WaitFor(2).size(), 2u);
  // Connect failed: nothing listens behind "refused".
  {
    auto client = testing::BlockingConnect(refused);
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(testing::ReceivePattern(client->get(), 0).bytes, 0u);
  }
  ASSERT_EQ(closes_.WaitFor(3).size(), 3u);
  // Reset: a client that sends (no FIN, so the backend keeps reading), then
  // aborts once its bytes are through.
  constexpr uint64_t kSent = 1000;
  {
    auto client = testing::BlockingConnect(front);
    ASSERT_TRUE(client.ok());
    ASSERT_EQ(testing::SendPattern(client->get(), HoldingBackend::kUpSeed, kSent, 64 << 10, false),
              kSent);
    WaitForListener("causes", [&](const ListenerMetrics& l) {
      return l.bytes_client_to_backend_total == kSent + 1 + 200000;
    });
    ASSERT_TRUE(SetLingerZero(client->get()).ok());
  }
  auto closed = closes_.WaitFor(4);
  ASSERT_EQ(closed.size(), 4u);
  EXPECT_EQ(closed[2].cause, CloseCause::kConnectFailed) << closed[2].detail;
  EXPECT_EQ(closed[3].cause, CloseCause::kReset) << closed[3].detail;

  ListenerMetrics causes = Listener("causes");
  EXPECT_EQ(causes.accepted_total, 3u);
  EXPECT_EQ(causes.open, 0u);
  EXPECT_EQ(causes.closed_total[kDone], 2u);
  EXPECT_EQ(causes.closed_total[kReset], 1u);
  EXPECT_EQ(causes.closed_total[kConnectFailed], 0u);
  EXPECT_EQ(causes.bytes_client_to_backend_total, kSent + 1 + 200000);
  EXPECT_EQ(causes.bytes_backend_to_client_total, 1u + 200000);
  EXPECT_EQ(causes.connect_failures_total, 0u);
  ASSERT_EQ(causes.addresses.size(), 1u);
  EXPECT_EQ(causes.addresses[0], front.ToString());
  ASSERT_EQ(causes.backends.size(), 1u);
  EXPECT_EQ(causes.backends[0].connects_total, 3u);
  EXPECT_EQ(causes.backends[0].connections_open, 0u);

  ListenerMetrics r = Listener("refused");
  EXPECT_EQ(r.accepted_total, 1u);
  EXPECT_EQ(r.open, 0u);
  EXPECT_EQ(r.closed_total[kConnectFailed], 1u);
  EXPECT_EQ(r.closed_total[kDone] + r.closed_total[kReset], 0u);
  EXPECT_EQ(r.connect_failures_total, 1u);
  EXPECT_EQ(r.bytes_client_to_backend_total + r.bytes_backend_to_client_total, 0u);
  ASSERT_EQ(r.backends.size(), 1u);
  EXPECT_EQ(r.backends[0].connect_failures_total, 1u);
  EXPECT_EQ(r.backends[0].connects_total, 0u);
  EXPECT_EQ(r.backends[0].connect_seconds.count, 0u);
  // A pool of one endpoint never ejects it.
  EXPECT_TRUE(r.backends[0].up);
  EXPECT_FALSE(r.backends[0].ejected);
}

// Metrics() in a tight loop on another thread while clients transfer, and
// while another listener is added: every counter only grows, and the
// final counts are exact.
TEST_F(MetricsTest, ScrapingInATightLoopDuringTransfersIsSafe) {
  StartEngine(RelayMode::kAuto);
  HoldingBackend backend;
  backend.Serve();
  Address front = Listen(Options("busy", {backend.address()}));

  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0};
  std::atomic<bool> monotonic{true};
  std::thread scraper([&] {
    ListenerMetrics last;
    for (int i = 0; i < 1000000 && !stop.load(); ++i) {
      MetricsSnapshot m = engine_->Metrics();
      ++scrapes;
      for (const ListenerMetrics& l : m.listeners) {
        if (l.name != "busy") continue;
        const bool grew = l.accepted_total >= last.accepted_total &&
                          l.bytes_client_to_backend_total >= last.bytes_client_to_backend_total &&
                          l.bytes_backend_to_client_total >= last.bytes_backend_to_client_total &&
                          l.closed_total[kDone] >= last.closed_total[kDone] &&
                          l.open <= l.accepted_total;
        if (!grew) monotonic = false;
        last = l;
      }
    }
  });

  constexpr int kClients = 6;
  constexpr uint64_t kSize = 1 << 20;
  std::vector<std::thread> clients;
  std::atomic<int> intact{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      auto c = testing::BlockingConnect(front);
      if (!c.ok()) return;
      testing::SendPattern(c->get(), HoldingBackend::kUpSeed, kSize);
      testing::Received r = testing::ReceivePattern(c->get(), HoldingBackend::kDownSeed);
      if (r.bytes == kSize && r.first_mismatch == -1) ++intact;
    });
  }
  // A listener added while the scraper runs.
  Listen(Options("added", {backend.address()}));
  for (std::thread& t : clients) t.join();
  auto closed = closes_.WaitFor(kClients);
  stop = true;
  scraper.join();

  EXPECT_EQ(intact.load(), kClients);
  ASSERT_EQ(closed.size(), static_cast<size_t>(kClients));
  EXPECT_GT(scrapes.load(), 0);
  EXPECT_TRUE(monotonic.load());
  ListenerMetrics busy = Listener("busy");
  EXPECT_EQ(busy.accepted_total, static_cast<uint64_t>(kClients));
  EXPECT_EQ(busy.closed_total[kDone], static_cast<uint64_t>(kClients));
  EXPECT_EQ(busy.open, 0u);
  EXPECT_EQ(busy.bytes_client_to_backend_total, kClients * kSize);
  EXPECT_EQ(busy.bytes_backend_to_client_total, kClients * kSize);
  EXPECT_EQ(busy.bytes_spliced_total + busy.bytes_copied_total, 2 * kClients * kSize);
  ASSERT_EQ(busy.backends.size(), 1u);
  EXPECT_EQ(busy.backends[0].connects_total, static_cast<uint64_t>(kClients));
  EXPECT_EQ(busy.backends[0].connect_seconds.count, static_cast<uint64_t>(kClients));
  EXPECT_EQ(Listener("added").accepted_total, 0u);

  engine_->Drain(seconds(1));
  EXPECT_TRUE(engine_->Metrics().draining);
}

}  // namespace
}  // namespace zrelay
