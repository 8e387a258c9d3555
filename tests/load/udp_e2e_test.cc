// zrelay-load udp end to end on loopback, client and backend in this
// process: every size from 1 B to 65,507 B comes back byte-exact with exact
// counts on both ends, a timed run's counts add up, and what a bad echo does
// is counted for what it is: a damaged datagram as a mismatch, a held reply as
// a loss and then a late reply, a closed port as losses with ICMP
// unreachables. Parametrized over IPv4 and IPv6. No timing is asserted.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/address.h"
#include "engine/socket.h"
#include "engine/unique_fd.h"
#include "engine/worker_pool.h"
#include "tests/load/load_test_util.h"
#include "tools/load/udp_backend.h"
#include "tools/load/udp_payload.h"

namespace zrelay::load {
namespace {

using testing::ParseConfig;
using testing::RunClientAt;

std::string Loopback(int family) { return family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0"; }

// backend --udp on a pool of its own.
class UdpBackendFixture {
 public:
  static std::unique_ptr<UdpBackendFixture> Start(int family, int workers = 2) {
    auto config = ParseConfig({"backend", "--udp", "--listen", Loopback(family), "--workers",
                               std::to_string(workers), "--quiet"});
    EXPECT_TRUE(config.ok()) << config.error().message();
    if (!config.ok()) return nullptr;
    std::unique_ptr<UdpBackendFixture> f(new UdpBackendFixture());
    f->config_ = *config;
    auto pool = WorkerPool::Start({.workers = workers});
    EXPECT_TRUE(pool.ok()) << pool.error().message();
    if (!pool.ok()) return nullptr;
    f->pool_ = std::move(pool).value();
    auto backend = UdpEchoBackend::Start(*f->pool_, f->config_);
    EXPECT_TRUE(backend.ok()) << backend.error().message();
    if (!backend.ok()) return nullptr;
    f->backend_ = std::move(backend).value();
    return f;
  }
  ~UdpBackendFixture() {
    backend_.reset();
    if (pool_) pool_->Stop();
  }
  const Address& address() const { return backend_->local_address(); }
  BackendTotals Totals() const { return backend_->Totals(); }

 private:
  UdpBackendFixture() = default;
  Config config_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<UdpEchoBackend> backend_;
};

// A UDP server on a thread of its own that answers datagram i (counted from
// 0 over all senders) as `answer` says: it gets the datagram and the socket
// and sends what it likes. Every wait is bounded; it stops when destroyed.
class ScriptedEcho {
 public:
  using Answer = std::function<void(int fd, uint64_t index, std::vector<uint8_t>& datagram,
                                    const struct sockaddr_storage& from, socklen_t from_len)>;

  ScriptedEcho(int family, Answer answer) : answer_(std::move(answer)) {
    auto at = Address::Parse(Loopback(family));
    fd_ = UniqueFd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(fd_.valid());
    EXPECT_EQ(::bind(fd_.get(), at->sockaddr(), at->length()), 0);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedEcho() {
    stop_ = true;
    thread_.join();
  }
  const Address& address() const { return address_; }

  // Sends `data` to `to`.
  static void SendTo(int fd, const std::vector<uint8_t>& data, const struct sockaddr_storage& to,
                     socklen_t to_len) {
    (void)::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const struct sockaddr*>(&to),
                   to_len);
  }

 private:
  void Serve() {
    const TimePoint end = Clock::now() + seconds(60);
    std::vector<uint8_t> buf(65536);
    uint64_t index = 0;
    while (!stop_ && Clock::now() < end) {
      struct pollfd p {
        fd_.get(), POLLIN, 0
      };
      if (::poll(&p, 1, 50) != 1) continue;
      struct sockaddr_storage from {};
      socklen_t from_len = sizeof(from);
      ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0,
                             reinterpret_cast<struct sockaddr*>(&from), &from_len);
      if (n < 0) continue;
      std::vector<uint8_t> datagram(buf.begin(), buf.begin() + n);
      answer_(fd_.get(), index++, datagram, from, from_len);
    }
  }

  Answer answer_;
  UniqueFd fd_;
  Address address_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class UdpE2eTest : public ::testing::TestWithParam<int> {
 protected:
  int family() const { return GetParam(); }

  static Report Run(const Address& target, const std::vector<std::string>& args) {
    std::vector<std::string> full = {"udp"};
    full.insert(full.end(), args.begin(), args.end());
    auto r = RunClientAt(target, full);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(r).value() : Report();
  }
};

TEST_P(UdpE2eTest, EverySizeComesBackByteExactWithExactCounts) {
  // 1 and 15 B carry no header, 16 B only the header, 65,507 B is the
  // largest IPv4 payload.
  const uint64_t sizes[] = {1, 2, 15, 16, 17, 64, 1400, 9000, 65507};
  for (uint64_t size : sizes) {
    SCOPED_TRACE("size " + std::to_string(size));
    auto backend = UdpBackendFixture::Start(family());
    ASSERT_NE(backend, nullptr);
    const uint64_t requests = size > 10000 ? 300 : 2000;
    // A generous reply timeout: on a busy machine a slow reply must not
    // count as a loss.
    Report r = Run(backend->address(),
                   {"--size", std::to_string(size), "--flows", "5", "--requests",
                    std::to_string(requests), "--workers", "2", "--reply-timeout", "20s"});
    EXPECT_TRUE(r.complete) << r.incomplete_why;
    EXPECT_EQ(r.mode, Mode::kUdp);
    EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
    EXPECT_EQ(r.requests, requests);
    EXPECT_EQ(r.sent, requests);
    EXPECT_EQ(r.received, requests);
    EXPECT_EQ(r.lost, 0u);
    EXPECT_EQ(r.late, 0u);
    EXPECT_EQ(r.mismatches, 0u);
    EXPECT_EQ(r.unreachable, 0u);
    EXPECT_EQ(r.bytes_up, requests * size);
    EXPECT_EQ(r.bytes_down, requests * size);
    EXPECT_EQ(r.latency.count(), requests);
    EXPECT_GT(r.latency.min(), 0u);
    EXPECT_LE(r.latency.ValueAtPercentile(50), r.latency.ValueAtPercentile(99));
    ASSERT_TRUE(r.client_cpu_s.has_value());
    EXPECT_GE(*r.client_cpu_s, 0.0);
    EXPECT_EQ(r.ExitCode(), 0);
    BackendTotals t = backend->Totals();
    EXPECT_TRUE(t.udp);
    EXPECT_EQ(t.datagrams_in, requests);
    EXPECT_EQ(t.datagrams_out, requests);
    EXPECT_EQ(t.bytes_in, requests * size);
    EXPECT_EQ(t.bytes_out, requests * size);
    EXPECT_EQ(t.send_errors, 0u);
  }
}

TEST_P(UdpE2eTest, ManyFlowsOnOneWorkerShareTheRequestsExactly) {
  auto backend = UdpBackendFixture::Start(family(), 1);
  ASSERT_NE(backend, nullptr);
  // More flows than requests: some flows never send.
  Report r = Run(backend->address(), {"--flows", "60", "--requests", "45", "--workers", "1",
                                      "--size", "100", "--reply-timeout", "20s"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 45u);
  EXPECT_EQ(r.sent, 45u);
  EXPECT_EQ(backend->Totals().datagrams_in, 45u);
}

TEST_P(UdpE2eTest, TimedRunCountsAddUp) {
  auto backend = UdpBackendFixture::Start(family());
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(), {"--duration", "300ms", "--flows", "8", "--size", "1400",
                                      "--reply-timeout", "20s"});
  EXPECT_TRUE(r.complete) << r.incomplete_why;
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_GT(r.requests, 0u);
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.lost, 0u);
  // Requests in flight when the time was up are sent but never ended.
  EXPECT_GE(r.sent, r.requests);
  EXPECT_LE(r.sent - r.requests, 8u);
  EXPECT_EQ(r.received, r.requests);
  EXPECT_EQ(r.bytes_up, r.sent * 1400);
  EXPECT_EQ(r.latency.count(), r.requests);
  EXPECT_GT(r.seconds, 0.0);
  EXPECT_EQ(r.ExitCode(), 0);
}

// Sends a damaged copy of a datagram (what damage(i, copy) makes of it, if
// anything), then the datagram itself.
ScriptedEcho::Answer DamageThenEcho(
    std::function<void(uint64_t i, std::vector<uint8_t>& copy)> damage) {
  return [damage](int fd, uint64_t i, std::vector<uint8_t>& d, const struct sockaddr_storage& from,
                  socklen_t len) {
    std::vector<uint8_t> copy = d;
    damage(i, copy);
    if (copy != d) ScriptedEcho::SendTo(fd, copy, from, len);
    ScriptedEcho::SendTo(fd, d, from, len);
  };
}

TEST_P(UdpE2eTest, FlippedBytesAreMismatches) {
  // One bit flipped in a copy of every 10th datagram: in the pattern, in
  // the header's key (another flow), in its sequence number (naming another
  // request, whose bytes differ).
  ScriptedEcho echo(family(), DamageThenEcho([](uint64_t i, std::vector<uint8_t>& d) {
                      if (i % 10 == 3) d[d.size() - 1] ^= 0x01;
                      if (i % 10 == 5) d[0] ^= 0x80;
                      if (i % 10 == 7) d[8] ^= 0x01;
                    }));
  Report r = Run(echo.address(), {"--size", "64", "--flows", "2", "--requests", "100", "--workers",
                                  "1", "--reply-timeout", "20s"});
  EXPECT_EQ(r.mismatches, 30u);
  EXPECT_EQ(r.requests, 100u);  // each request still got its own reply
  EXPECT_EQ(r.received, 130u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.late, 0u);
  EXPECT_EQ(r.sent, 100u);
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(UdpE2eTest, TruncatedEmptyAndLongerDatagramsAreMismatches) {
  ScriptedEcho echo(family(), DamageThenEcho([](uint64_t i, std::vector<uint8_t>& d) {
                      if (i == 1 && !d.empty()) d.pop_back();
                      if (i == 2) d.clear();
                      if (i == 3) d.push_back(0);
                    }));
  Report r = Run(echo.address(), {"--size", "1400", "--flows", "1", "--requests", "10", "--workers",
                                  "1", "--reply-timeout", "20s"});
  EXPECT_EQ(r.mismatches, 3u);
  EXPECT_EQ(r.requests, 10u);
  EXPECT_EQ(r.lost, 0u);
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(UdpE2eTest, ACorruptedReplyIsAMismatchAndALoss) {
  // Datagram 3 comes back corrupted only: its request never gets an answer.
  ScriptedEcho echo(family(), [](int fd, uint64_t i, std::vector<uint8_t>& d,
                                 const struct sockaddr_storage& from, socklen_t len) {
    if (i == 3) d[20] ^= 0x10;
    ScriptedEcho::SendTo(fd, d, from, len);
  });
  Report r = Run(echo.address(), {"--size", "64", "--flows", "1", "--requests", "10", "--workers",
                                  "1", "--reply-timeout", "200ms"});
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_GE(r.lost, 1u);
  // Every request ended answered or lost (on a busy machine a reply slower
  // than the timeout is lost, then late: the sums hold either way).
  EXPECT_EQ(r.requests + r.lost, 10u);
  EXPECT_EQ(r.received, r.requests + r.late + r.mismatches);
  EXPECT_EQ(r.ExitCode(), 1);
}

// The first request's reply is held until the second request arrives (which
// it does only once the first timed out), then sent before the second's.
void HoldFirstReply(int fd, uint64_t i, std::vector<uint8_t>& d,
                    const struct sockaddr_storage& from, socklen_t len,
                    std::vector<uint8_t>* held) {
  if (i == 0) {
    *held = d;
    return;
  }
  if (i == 1) ScriptedEcho::SendTo(fd, *held, from, len);
  ScriptedEcho::SendTo(fd, d, from, len);
}

TEST_P(UdpE2eTest, AHeldReplyIsALossThenLate) {
  // 8 B: no header, the flow finds the request by its bytes; 64 B: by the
  // header's sequence number.
  for (const char* size : {"8", "64"}) {
    SCOPED_TRACE(std::string("size ") + size);
    std::vector<uint8_t> held;
    ScriptedEcho echo(family(), [&held](int fd, uint64_t i, std::vector<uint8_t>& d,
                                        const struct sockaddr_storage& from, socklen_t len) {
      HoldFirstReply(fd, i, d, from, len, &held);
    });
    Report r = Run(echo.address(), {"--size", size, "--flows", "1", "--requests", "20", "--workers",
                                    "1", "--reply-timeout", "200ms"});
    // Request 1 is lost and its reply late; on a busy machine another reply
    // may come after its timeout too, so the sums are what must hold.
    EXPECT_GE(r.lost, 1u);
    EXPECT_GE(r.late, 1u);
    EXPECT_LE(r.late, r.lost);
    EXPECT_EQ(r.requests + r.lost, 20u);
    EXPECT_EQ(r.mismatches, 0u);
    EXPECT_EQ(r.received, r.requests + r.late);
    EXPECT_EQ(r.sent, 20u);
    EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
    EXPECT_EQ(r.ExitCode(), 0);  // a loss is measured, not a failure
  }
}

TEST_P(UdpE2eTest, AClosedPortIsLossWithIcmpUnreachable) {
  Address closed;
  {
    ScriptedEcho probe(family(), [](int, uint64_t, std::vector<uint8_t>&,
                                    const struct sockaddr_storage&, socklen_t) {});
    closed = probe.address();
  }  // closed: datagrams to it get ICMP port unreachable
  Report r = Run(closed,
                 {"--flows", "2", "--requests", "6", "--workers", "1", "--reply-timeout", "100ms"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.requests, 0u);
  EXPECT_EQ(r.lost, 6u);
  EXPECT_GT(r.unreachable, 0u);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_NE(r.first_error.find("no request was answered"), std::string::npos) << r.first_error;
  EXPECT_EQ(r.ExitCode(), 1);
}

INSTANTIATE_TEST_SUITE_P(Loopback, UdpE2eTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

// ---- the payload itself ------------------------------------------------------

TEST(UdpPayloadTest, EveryRequestDiffersAndTheHeaderNamesIt) {
  std::vector<uint8_t> a(64), b(64), c(64);
  FillDatagram(42, 1, 64, a.data());
  FillDatagram(42, 2, 64, b.data());
  FillDatagram(43, 1, 64, c.data());
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(HeaderSeq(42, a.data(), a.size()), 1u);
  EXPECT_EQ(HeaderSeq(42, b.data(), b.size()), 2u);
  EXPECT_FALSE(HeaderSeq(42, c.data(), c.size()).has_value());  // another flow's
  EXPECT_FALSE(HeaderSeq(42, a.data(), kUdpHeaderSize - 1).has_value());
  // Deterministic: the same request twice is the same bytes.
  std::vector<uint8_t> again(64);
  FillDatagram(42, 1, 64, again.data());
  EXPECT_EQ(a, again);
  // Below the header size, requests still differ (with 8 bytes, always).
  std::vector<uint8_t> s1(8), s2(8);
  FillDatagram(42, 1, 8, s1.data());
  FillDatagram(42, 2, 8, s2.data());
  EXPECT_NE(s1, s2);
}

}  // namespace
}  // namespace zrelay::load
