// Engine::Metrics(): live counters per listener, backend endpoint and worker,
// read while the workers run. A transfer in progress shows its bytes before
// it ends; closes are counted by cause; each endpoint has its connects,
// failures, open pairs, health and connect-latency histogram; TLS
// listeners count handshakes and fill PairStats' TLS fields; and scraping
// in a tight loop from another thread during transfers is safe (run it
// under --config=tsan too).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/holding_backend.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

// The test's TLS peers write with write(2) to sockets the relay may have
// closed; a peer must see EPIPE, not kill the test binary.
const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

using testing::CloseRecorder;
using testing::HoldingBackend;

constexpr size_t kDone = static_cast<size_t>(CloseCause::kDone);
constexpr size_t kReset = static_cast<size_t>(CloseCause::kReset);
constexpr size_t kError = static_cast<size_t>(CloseCause::kError);
constexpr size_t kTimeout = static_cast<size_t>(CloseCause::kTimeout);
constexpr size_t kConnectFailed = static_cast<size_t>(CloseCause::kConnectFailed);

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

// A loopback backend that hands each connection it accepts to `serve`, one
// at a time, on its own thread, and closes it afterwards.
class ScriptedBackend {
 public:
  explicit ScriptedBackend(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    auto fd = ListenOn(testing::Loopback(AF_INET));
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    fd_ = std::move(fd.value());
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        serve_(c);
        ::close(c);
      }
    });
  }
  ~ScriptedBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);  // ends the blocking accept
    thread_.join();
  }
  const Address& address() const { return address_; }

 private:
  std::function<void(int)> serve_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
};

// A loopback address nothing listens on: bound, then closed again.
Address DeadAddress() {
  auto fd = ListenOn(testing::Loopback(AF_INET));
  EXPECT_TRUE(fd.ok());
  return LocalAddress(fd->get()).value();
}

class MetricsTest : public testing::CertsTest {
 protected:
  void StartEngine(RelayMode mode, Duration handshake_timeout = seconds(10)) {
    EngineOptions options;
    options.workers = 2;
    options.mode = mode;
    options.handshake_timeout = handshake_timeout;
    auto engine = Engine::Start(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options(const std::string& name, std::vector<Address> backends) {
    ListenOptions options;
    options.name = name;
    options.address = testing::Loopback(AF_INET);
    for (const Address& b : backends) options.backends.push_back(BackendOptions{b, nullptr, {}});
    options.on_close = closes_.Callback();
    return options;
  }

  Address Listen(const ListenOptions& options) { return testing::ListenOrFail(*engine_, options); }

  // The listener named `name` in a fresh snapshot (a default one, which
  // fails the test, when there is none).
  ListenerMetrics Listener(const std::string& name) const {
    MetricsSnapshot m = engine_->Metrics();
    for (ListenerMetrics& l : m.listeners) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no listener named " << name;
    return {};
  }

  // Waits until the listener's metrics satisfy `done`; returns the last.
  ListenerMetrics WaitForListener(const std::string& name,
                                  const std::function<bool(const ListenerMetrics&)>& done) {
    ListenerMetrics last;
    testing::WaitFor(
        [&] {
          last = Listener(name);
          return done(last);
        },
        seconds(10));
    return last;
  }

  static uint64_t PairsOpen(const MetricsSnapshot& m) {
    uint64_t n = 0;
    for (const WorkerMetrics& w : m.workers) n += w.pairs_open;
    return n;
  }

  CloseRecorder closes_;
  std::unique_ptr<Engine> engine_;
};

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
                           return info.param == RelayMode::kSplice ? "Splice" : "Copy";
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

// A blocking TLS peer's helpers, over ssl/TlsStream on a blocking socket.
bool TlsSend(TlsStream& tls, uint64_t seed, uint64_t size) {
  std::vector<char> buf(64 << 10);
  for (uint64_t sent = 0; sent < size;) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - sent));
    testing::FillPattern(seed, sent, buf.data(), len);
    TlsResult r = tls.Write(buf.data(), len);
    if (!r.ok()) return false;
    sent += r.bytes;
  }
  return true;
}

// Reads until close_notify; returns the bytes, or -1 on a wrong byte or a
// stream that ended any other way.
int64_t TlsReceive(TlsStream& tls, uint64_t seed) {
  std::vector<char> buf(64 << 10);
  uint64_t got = 0;
  for (;;) {
    TlsResult r = tls.Read(buf.data(), buf.size());
    if (r.status == TlsIo::kEof) return static_cast<int64_t>(got);
    if (!r.ok()) return -1;
    for (size_t i = 0; i < r.bytes; ++i) {
      if (static_cast<uint8_t>(buf[i]) != testing::PatternByte(seed, got + i)) return -1;
    }
    got += r.bytes;
  }
}

TEST_F(MetricsTest, TlsListenerCountsHandshakesAndFillsPairStats) {
  StartEngine(RelayMode::kAuto, milliseconds(300));
  TlsServerConfig server_config;
  server_config.certs = {{certs_->server.cert, certs_->server.key}};
  TlsContext server_ctx = std::move(BuildServerContext(server_config).value());
  TlsClientConfig client_config;
  client_config.ca_file = certs_->ca.cert;
  TlsContext client_ctx = std::move(BuildClientContext(client_config).value());

  constexpr uint64_t kUp = 300000, kDown = 100000;
  std::atomic<int64_t> at_backend{-2};
  ScriptedBackend tls_backend([&](int fd) {
    TlsStream tls(NewServerSsl(server_ctx, fd));
    if (!tls.Handshake().ok()) return;
    at_backend = TlsReceive(tls, 1);
    TlsSend(tls, 2, kDown);
    tls.Shutdown();
  });
  // Accepts and closes at once: a TLS handshake with it cannot finish.
  ScriptedBackend closing([](int) {});

  ListenOptions options = Options("tls", {});
  options.tls = server_ctx.get();
  options.backends.push_back(BackendOptions{tls_backend.address(), client_ctx.get(), "localhost"});
  Address front = Listen(options);
  ListenOptions broken = Options("tls-to-plain", {});
  broken.backends.push_back(BackendOptions{closing.address(), client_ctx.get(), "localhost"});
  Address broken_front = Listen(broken);

  // A real client: TLS both sides, byte-exact both ways.
  {
    auto c = testing::BlockingConnect(front);
    ASSERT_TRUE(c.ok());
    TlsStream tls(NewClientSsl(client_ctx, c->get(), "localhost"));
    TlsResult hs = tls.Handshake();
    ASSERT_TRUE(hs.ok()) << hs.detail;
    EXPECT_TRUE(TlsSend(tls, 1, kUp));
    EXPECT_TRUE(tls.Shutdown().ok());
    EXPECT_EQ(TlsReceive(tls, 2), static_cast<int64_t>(kDown));
    auto closed = closes_.WaitFor(1);
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
    EXPECT_EQ(closed[0].tls_version, "TLSv1.3");
    EXPECT_EQ(closed[0].sni, "localhost");
    EXPECT_EQ(closed[0].client.ToString(), LocalAddress(c->get()).value().ToString());
  }
  EXPECT_EQ(at_backend.load(), static_cast<int64_t>(kUp));

  // A client that speaks no TLS, and one that says nothing until the
  // handshake timeout.
  {
    auto garbage = testing::BlockingConnect(front);
    ASSERT_TRUE(garbage.ok());
    ASSERT_TRUE(testing::WriteAll(garbage->get(), std::string("GET / HTTP/1.0\r\n\r\n")));
    auto silent = testing::BlockingConnect(front);
    ASSERT_TRUE(silent.ok());
    auto closed = closes_.WaitFor(3);
    ASSERT_EQ(closed.size(), 3u);
  }
  // A backend that cannot speak TLS.
  {
    auto c = testing::BlockingConnect(broken_front);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(testing::ReceivePattern(c->get(), 0).bytes, 0u);
    auto closed = closes_.WaitFor(4);
    ASSERT_EQ(closed.size(), 4u);
    EXPECT_NE(closed[3].cause, CloseCause::kDone);
    EXPECT_TRUE(closed[3].tls_version.empty()) << "a plain client leg has no TLS version";
  }

  ListenerMetrics tls = Listener("tls");
  EXPECT_EQ(tls.accepted_total, 3u);
  EXPECT_EQ(tls.open, 0u);
  EXPECT_EQ(tls.client_tls_handshakes_total, 1u);
  EXPECT_EQ(tls.client_tls_handshake_failures_total, 2u);
  EXPECT_EQ(tls.backend_tls_handshakes_total, 1u);
  EXPECT_EQ(tls.backend_tls_handshake_failures_total, 0u);
  EXPECT_EQ(tls.closed_total[kDone], 1u);
  EXPECT_EQ(tls.closed_total[kTimeout], 1u);
  EXPECT_EQ(tls.closed_total[kError] + tls.closed_total[kReset], 1u);
  EXPECT_EQ(tls.bytes_client_to_backend_total, kUp);
  EXPECT_EQ(tls.bytes_backend_to_client_total, kDown);
  EXPECT_EQ(tls.bytes_copied_total, kUp + kDown) << "TLS legs always copy";
  EXPECT_EQ(tls.bytes_spliced_total, 0u);
  ASSERT_EQ(tls.backends.size(), 1u);
  EXPECT_EQ(tls.backends[0].connects_total, 1u) << "failed client handshakes cost no backend";

  ListenerMetrics b = Listener("tls-to-plain");
  EXPECT_EQ(b.client_tls_handshakes_total + b.client_tls_handshake_failures_total, 0u);
  EXPECT_EQ(b.backend_tls_handshakes_total, 0u);
  EXPECT_EQ(b.backend_tls_handshake_failures_total, 1u);
  ASSERT_EQ(b.backends.size(), 1u);
  EXPECT_EQ(b.backends[0].connects_total, 1u) << "the TCP connect itself succeeded";
}

}  // namespace
}  // namespace zrelay
