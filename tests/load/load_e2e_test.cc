// zrelay-load end to end on loopback, client and backend in this process:
// bulk moves exact volumes byte-exact (and a corrupting proxy is caught),
// rr and connect complete their counts with sane latencies, idle holds and
// measures pairs, and failures (refused, silent, stalled) end promptly as
// counted errors. Parametrized over IPv4 and IPv6.
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "tests/load/load_test_util.h"
#include "tools/load/session.h"

namespace zrelay::load {
namespace {

using testing::ClosedPort;
using testing::CorruptingProxy;
using testing::RunClientAt;
using testing::SilentListener;
using testing::TestBackend;

constexpr int kRefused = static_cast<int>(ErrorKind::kRefused);
constexpr int kReset = static_cast<int>(ErrorKind::kReset);
constexpr int kTimeout = static_cast<int>(ErrorKind::kTimeout);
constexpr int kOther = static_cast<int>(ErrorKind::kOther);

double Elapsed(TimePoint start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class LoadE2eTest : public ::testing::TestWithParam<int> {
 protected:
  int family() const { return GetParam(); }

  std::unique_ptr<TestBackend> StartBackend(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--workers", "2"};
    full.insert(full.end(), args.begin(), args.end());
    auto b = TestBackend::Start(full, family());
    EXPECT_TRUE(b.ok()) << b.error().message();
    return b.ok() ? std::move(b).value() : nullptr;
  }

  static Report Run(const Address& target, const std::vector<std::string>& args) {
    auto r = RunClientAt(target, args);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(r).value() : Report();
  }
};

// ---- bulk ------------------------------------------------------------------

TEST_P(LoadE2eTest, BulkUpVerifyMovesExactVolumeByteExact) {
  auto backend = StartBackend({"--mode", "verify"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(), {"bulk", "--bytes", "48M", "--streams", "3", "--verify",
                                      "--chunk", "100k", "--workers", "2"});
  EXPECT_TRUE(r.complete) << r.incomplete_why;
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.bytes_up, 48u << 20);
  EXPECT_EQ(r.ExitCode(), 0);
  BackendTotals t = backend->Totals();
  EXPECT_EQ(t.bytes_in, 48u << 20);
  EXPECT_EQ(t.verified, 3u);  // every stream reported clean by the backend
  EXPECT_EQ(t.mismatches, 0u);
}

TEST_P(LoadE2eTest, BulkDownVerifyReadsExactVolume) {
  auto backend = StartBackend({"--mode", "source"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(), {"bulk", "--direction", "down", "--bytes", "40000017",
                                      "--streams", "2", "--verify"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.bytes_down, 40000017u);
  EXPECT_EQ(r.bytes_up, 0u);
  EXPECT_GT(r.seconds, 0.0);
}

TEST_P(LoadE2eTest, BulkBothVerifyGetsEveryByteBack) {
  auto backend = StartBackend({"--mode", "echo"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(),
                 {"bulk", "--direction", "both", "--bytes", "32M", "--streams", "2", "--verify"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.bytes_up, 32u << 20);
  EXPECT_EQ(r.bytes_down, 32u << 20);
}

TEST_P(LoadE2eTest, BulkTimedRunLastsItsDuration) {
  auto backend = StartBackend({"--mode", "sink"});
  ASSERT_NE(backend, nullptr);
  TimePoint start = Clock::now();
  Report r = Run(backend->address(), {"bulk", "--duration", "700ms", "--streams", "2"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_GT(r.bytes_up, 1u << 20);
  EXPECT_GE(r.seconds, 0.69);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_LT(Elapsed(start), 5.0);
  // Up ends with a half-close and the sink's EOF: all that was written arrived.
  EXPECT_EQ(backend->Totals().bytes_in, r.bytes_up);
}

TEST_P(LoadE2eTest, CorruptedUpstreamByteIsDetectedByTheVerifyBackend) {
  auto backend = StartBackend({"--mode", "verify"});
  ASSERT_NE(backend, nullptr);
  auto proxy =
      CorruptingProxy::Start(backend->address(), /*flip_up=*/1'000'003, CorruptingProxy::kNever);
  ASSERT_TRUE(proxy.ok()) << proxy.error().message();
  Report r = Run((*proxy)->address(), {"bulk", "--bytes", "8M", "--verify", "--workers", "1"});
  EXPECT_EQ((*proxy)->flipped(), 1u);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.ExitCode(), 1);
  EXPECT_EQ(backend->Totals().mismatches, 1u);
  EXPECT_EQ(backend->Totals().verified, 0u);
}

TEST_P(LoadE2eTest, CorruptedEchoByteIsDetectedByTheClient) {
  auto backend = StartBackend({"--mode", "echo"});
  ASSERT_NE(backend, nullptr);
  auto proxy = CorruptingProxy::Start(backend->address(), CorruptingProxy::kNever,
                                      /*flip_down=*/5'000'000);
  ASSERT_TRUE(proxy.ok()) << proxy.error().message();
  Report r = Run((*proxy)->address(),
                 {"bulk", "--direction", "both", "--bytes", "8M", "--verify", "--workers", "1"});
  EXPECT_EQ((*proxy)->flipped(), 1u);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.bytes_down, 8u << 20);  // nothing lost, one byte wrong
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(LoadE2eTest, CorruptedSourceHeaderIsDetected) {
  auto backend = StartBackend({"--mode", "source"});
  ASSERT_NE(backend, nullptr);
  // Byte 3 is in the magic: the stream cannot be trusted from its start.
  auto proxy = CorruptingProxy::Start(backend->address(), CorruptingProxy::kNever, 3);
  ASSERT_TRUE(proxy.ok()) << proxy.error().message();
  Report r = Run((*proxy)->address(),
                 {"bulk", "--direction", "down", "--bytes", "1M", "--verify", "--workers", "1"});
  EXPECT_GE(r.mismatches, 1u);
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(LoadE2eTest, UpVerifyAgainstANonVerifyBackendFails) {
  auto backend = StartBackend({"--mode", "sink"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(), {"bulk", "--bytes", "1M", "--verify"});
  EXPECT_EQ(r.errors[kOther], 1u);
  EXPECT_NE(r.first_error.find("no verify report"), std::string::npos) << r.first_error;
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(LoadE2eTest, BulkAgainstAStalledBackendTimesOut) {
  Address silent;
  auto listener = SilentListener(family(), &silent);
  ASSERT_TRUE(listener.ok());
  TimePoint start = Clock::now();
  Report r = Run(silent, {"bulk", "--duration", "300ms", "--io-timeout", "500ms"});
  EXPECT_EQ(r.errors[kTimeout], 1u) << r.first_error;
  EXPECT_LT(Elapsed(start), 5.0);
}

// ---- rr and connect --------------------------------------------------------

TEST_P(LoadE2eTest, RrCompletesItsRequestsWithSaneLatency) {
  auto backend = StartBackend({"--mode", "fixed", "--req", "100", "--resp", "200"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(),
                 {"rr", "--requests", "5000", "--conns", "8", "--req", "100", "--resp", "200"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 5000u);
  EXPECT_EQ(r.latency.count(), 5000u);
  EXPECT_EQ(r.bytes_up, 5000u * 100);
  EXPECT_EQ(r.bytes_down, 5000u * 200);
  const Histogram& h = r.latency;
  EXPECT_GT(h.min(), 0u);
  EXPECT_LE(h.min(), h.ValueAtPercentile(50));
  EXPECT_LE(h.ValueAtPercentile(50), h.ValueAtPercentile(90));
  EXPECT_LE(h.ValueAtPercentile(90), h.ValueAtPercentile(99));
  EXPECT_LE(h.ValueAtPercentile(99), h.ValueAtPercentile(99.9));
  EXPECT_LE(h.ValueAtPercentile(99.9), h.max());
  EXPECT_LT(h.ValueAtPercentile(50), 50'000'000u);  // 50 ms: loopback is far faster
  EXPECT_EQ(h.overflows() + h.underflows(), 0u);
}

TEST_P(LoadE2eTest, RrWithMismatchedSizesIsAnErrorNotAFastResponse) {
  auto backend = StartBackend({"--mode", "fixed", "--req", "100", "--resp", "300"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(),
                 {"rr", "--requests", "10", "--conns", "1", "--req", "100", "--resp", "200"});
  EXPECT_EQ(r.errors[kOther], 1u);
  EXPECT_NE(r.first_error.find("--resp of 200"), std::string::npos) << r.first_error;
}

TEST_P(LoadE2eTest, RrAgainstASilentServerTimesOut) {
  Address silent;
  auto listener = SilentListener(family(), &silent);
  ASSERT_TRUE(listener.ok());
  TimePoint start = Clock::now();
  Report r = Run(silent, {"rr", "--requests", "10", "--conns", "2", "--io-timeout", "300ms"});
  EXPECT_EQ(r.errors[kTimeout], 2u) << r.first_error;
  EXPECT_EQ(r.requests, 0u);
  EXPECT_LT(Elapsed(start), 5.0);
}

TEST_P(LoadE2eTest, ConnectCompletesItsCount) {
  auto backend = StartBackend({"--mode", "fixed", "--req", "64", "--resp", "64"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(),
                 {"connect", "--count", "400", "--conns", "4", "--req", "64", "--resp", "64"});
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 400u);
  EXPECT_EQ(r.latency.count(), 400u);
  EXPECT_GT(r.latency.ValueAtPercentile(50), 0u);
  EXPECT_EQ(backend->Totals().accepted, 400u);
}

TEST_P(LoadE2eTest, ConnectOnlyWithNoExchange) {
  auto backend = StartBackend({"--mode", "sink"});
  ASSERT_NE(backend, nullptr);
  Report r = Run(backend->address(), {"connect", "--count", "200", "--req", "0", "--resp", "0"});
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 200u);
}

TEST_P(LoadE2eTest, RefusedConnectsAreCountedAndDoNotHang) {
  TimePoint start = Clock::now();
  Report r = Run(ClosedPort(family()), {"connect", "--count", "20", "--conns", "2"});
  EXPECT_EQ(r.errors[kRefused], 20u) << r.first_error;
  EXPECT_EQ(r.requests, 0u);
  EXPECT_NE(r.first_error.find("refused"), std::string::npos) << r.first_error;
  EXPECT_EQ(r.ExitCode(), 1);
  EXPECT_LT(Elapsed(start), 5.0);

  Report bulk = Run(ClosedPort(family()), {"bulk", "--duration", "1"});
  EXPECT_EQ(bulk.errors[kRefused], 1u);
}

// ---- idle ------------------------------------------------------------------

TEST_P(LoadE2eTest, IdleHoldsPairsAndMeasuresTheProcess) {
  auto backend = StartBackend({"--mode", "echo"});
  ASSERT_NE(backend, nullptr);
  // This process is both ends, so each pair costs it two fds.
  Report r = Run(backend->address(), {"idle", "--pairs", "300", "--hold", "1500ms", "--relay-pid",
                                      std::to_string(::getpid())});
  EXPECT_TRUE(r.complete) << r.incomplete_why;
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.ready, 300u);
  EXPECT_EQ(r.dropped, 0u);
  ASSERT_TRUE(r.relay_before && r.relay_hold && r.relay_after);
  EXPECT_GE(r.relay_hold->fds, r.relay_before->fds + 600);
  EXPECT_LT(r.relay_after->fds, r.relay_before->fds + 20);  // all closed again
  EXPECT_GT(r.relay_hold->rss_kib, 0u);
  EXPECT_GE(r.seconds, 1.4);
}

TEST_P(LoadE2eTest, IdlePairsDroppedByTheServerAreCounted) {
  auto backend = StartBackend({"--mode", "echo"});
  ASSERT_NE(backend, nullptr);
  std::thread killer([&] {
    // Once every pair has had its 1-byte echo, the server goes away under
    // them (the pause lets the client read the last echoes and start holding).
    for (int i = 0; i < 1000 && backend->Totals().bytes_out < 50; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    std::this_thread::sleep_for(milliseconds(300));
    backend->Stop();
  });
  Report r = Run(backend->address(), {"idle", "--pairs", "50", "--hold", "2"});
  killer.join();
  EXPECT_EQ(r.ready, 50u);
  EXPECT_EQ(r.dropped, 50u);
  EXPECT_EQ(r.errors[kReset], 50u) << r.first_error;
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_P(LoadE2eTest, BadRelayPidIsASetupError) {
  auto r = RunClientAt(ClosedPort(family()), {"idle", "--pairs", "1", "--relay-pid", "4194303"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--relay-pid 4194303"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Loopback, LoadE2eTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

}  // namespace
}  // namespace zrelay::load
