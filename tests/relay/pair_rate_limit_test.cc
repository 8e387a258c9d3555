// PairOptions' rate limits: what arrives by time t never exceeds what the
// token bucket can have lent by then (burst + rate * t, counted from before
// the pair existed: a bound that holds by construction), every byte
// arrives, and the limit is not grossly undershot (a generous lower bound:
// this asserts nothing about speed beyond "not stalled"). Per Pipe() and
// per listener (ListenOptions::pair), and across the idle timeout.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/pair_test_util.h"
#include "tests/relay/recording_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::MakeLegPair;
using testing::Pattern;

constexpr Duration kIoTimeout = seconds(20);

double SecondsSince(TimePoint start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes received so far, and when.
struct Sample {
  double t;  // seconds since the start
  uint64_t bytes;
};

struct Arrival {
  std::string data;
  std::vector<Sample> samples;
  int error = 0;
};

// Reads `fd` to EOF, noting after every read how much arrived by when.
Arrival ReadTimed(int fd, TimePoint start) {
  Arrival a;
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      a.error = n < 0 ? errno : 0;
      return a;
    }
    a.data.append(buf, static_cast<size_t>(n));
    a.samples.push_back({SecondsSince(start), a.data.size()});
  }
}

// Checks the upper bound at every sample and returns the rate measured
// after the first `settle` seconds (the burst is spent by then), in bytes
// per second; 0 when too few samples came after it.
double CheckAndMeasure(const Arrival& a, const RateLimit& limit, double settle) {
  const double burst = static_cast<double>(limit.burst);
  const double rate = static_cast<double>(limit.bytes_per_second);
  for (const Sample& s : a.samples) {
    // The relay never reads more than its bucket lent: burst + rate * t,
    // where t runs from before the pair (and its bucket) existed.
    EXPECT_LE(static_cast<double>(s.bytes), burst + rate * s.t)
        << s.bytes << " bytes at " << s.t << " s";
  }
  const Sample* from = nullptr;
  for (const Sample& s : a.samples) {
    if (s.t >= settle) {
      from = &s;
      break;
    }
  }
  const Sample& to = a.samples.back();
  if (from == nullptr || to.t - from->t < 0.5) return 0;
  return static_cast<double>(to.bytes - from->bytes) / (to.t - from->t);
}

// Sends `size` pattern bytes from A to B through Pipe() with `limit` on
// A -> B; returns what B measured after the burst, and checks the bounds.
double PipeLimited(RelayMode mode, const RateLimit& limit, uint64_t size) {
  auto engine = testing::StartEngine({.workers = 1, .mode = mode});
  EXPECT_TRUE(engine.ok()) << engine.error().message();
  if (!engine.ok()) return 0;
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  EXPECT_TRUE(a.ok() && b.ok());
  if (!a.ok() || !b.ok()) return 0;
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  PairOptions options;
  options.a_to_b = limit;
  CloseRecorder closes;
  const TimePoint start = Clock::now();
  (*engine)->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback(), options);
  std::thread sender([&] {
    EXPECT_TRUE(testing::SendPatternFrom(a->app.get(), 1, 0, size));
    ::shutdown(a->app.get(), SHUT_WR);
  });
  const Arrival arrival = ReadTimed(b->app.get(), start);
  sender.join();
  const double elapsed = SecondsSince(start);
  EXPECT_EQ(arrival.error, 0);
  EXPECT_TRUE(arrival.data == Pattern(1, 0, size)) << "got " << arrival.data.size() << " bytes";
  // Generous lower bound: at least half the configured rate overall.
  const double floor_seconds =
      static_cast<double>(size - limit.burst) / static_cast<double>(limit.bytes_per_second);
  EXPECT_LT(elapsed, 2 * floor_seconds + 1.0) << "the limited way nearly stalled";
  ::shutdown(b->app.get(), SHUT_WR);
  std::vector<PairStats> closed = closes.WaitFor(1);
  EXPECT_EQ(closed.size(), 1u);
  if (!closed.empty()) {
    EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
    EXPECT_EQ(closed[0].a_to_b, size);
  }
  return CheckAndMeasure(arrival, limit, 0.25);
}

class RateLimitTest : public ::testing::TestWithParam<RelayMode> {};

TEST_P(RateLimitTest, BoundedByTheBucketAndNotStalled) {
  const RateLimit limit{.bytes_per_second = 2 << 20, .burst = 128 << 10};
  PipeLimited(GetParam(), limit, limit.burst + limit.bytes_per_second);  // about 1 s
}

INSTANTIATE_TEST_SUITE_P(Modes, RateLimitTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return RelayModeName(info.param);
                         });

// Several rates, 1.5 s each: the bounds hold, and the rate each achieved
// once its burst was spent is printed (a record, not a check).
TEST(RateLimitAccuracyTest, ManyRates) {
  for (uint64_t rate : {uint64_t{100} << 10, uint64_t{1} << 20, uint64_t{16} << 20}) {
    const RateLimit limit{.bytes_per_second = rate, .burst = std::max<uint64_t>(rate / 10, 16 << 10)};
    const double achieved = PipeLimited(RelayMode::kSplice, limit, limit.burst + rate * 3 / 2);
    std::printf("rate limit %llu B/s: achieved %.0f B/s after the burst (%.2f%%)\n",
                static_cast<unsigned long long>(rate), achieved,
                100.0 * achieved / static_cast<double>(rate));
    RecordProperty("achieved_per_mille_" + std::to_string(rate),
                   static_cast<int>(1000 * achieved / static_cast<double>(rate)));
  }
}

// ListenOptions::pair: b_to_a limits what the backend sends the client.
TEST(ListenerRateLimitTest, LimitsTheBackendToClientWay) {
  auto engine = testing::StartEngine({.workers = 2, .mode = RelayMode::kSplice});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  const RateLimit limit{.bytes_per_second = 1 << 20, .burst = 64 << 10};
  const std::string reply = Pattern(5, 0, limit.burst + limit.bytes_per_second);
  testing::RecordingBackend backend(reply);
  ListenOptions options;
  options.address = testing::Loopback(AF_INET);
  options.backends = {BackendOptions{backend.address(), nullptr, {}}};
  options.pair.b_to_a = limit;
  CloseRecorder closes;
  options.on_close = closes.Callback();
  const Address address = testing::ListenOrFail(**engine, options);
  ASSERT_NE(address.family(), AF_UNSPEC);

  const TimePoint start = Clock::now();
  auto client = testing::BlockingConnect(address);
  ASSERT_TRUE(client.ok()) << client.error().message();
  testing::SetIoTimeout(client->get(), kIoTimeout);
  ASSERT_TRUE(testing::SendAll(client->get(), "request"));
  ::shutdown(client->get(), SHUT_WR);
  const Arrival arrival = ReadTimed(client->get(), start);
  const double elapsed = SecondsSince(start);
  EXPECT_EQ(arrival.error, 0);
  EXPECT_TRUE(arrival.data == reply) << "got " << arrival.data.size() << " bytes";
  EXPECT_LT(elapsed, 3.0) << "the limited way nearly stalled";
  CheckAndMeasure(arrival, limit, 0.25);
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].b_to_a, reply.size());
  ASSERT_EQ(backend.received().size(), 1u);
  EXPECT_EQ(backend.received()[0], "request") << "the other way is not limited or changed";
}

// A limit so slow that the pause between two reads (200 ms) is longer than
// the idle timeout (100 ms): the pair is held back by its own limit, not
// idle, and finishes.
TEST(RateLimitIdleTest, APauseForTokensIsNotIdle) {
  auto engine = testing::StartEngine({.workers = 1, .mode = RelayMode::kCopy,
                               .idle_timeout = milliseconds(100)});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  PairOptions options;
  options.a_to_b = {.bytes_per_second = 5, .burst = 5};
  CloseRecorder closes;
  (*engine)->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback(), options);
  ASSERT_TRUE(testing::SendAll(a->app.get(), "0123456789"));  // the burst, then 1 s of pauses
  ::shutdown(a->app.get(), SHUT_WR);
  const testing::Stream at_b = testing::ReadToEof(b->app.get());
  EXPECT_EQ(at_b.error, 0);
  EXPECT_EQ(at_b.data, "0123456789");
  ::shutdown(b->app.get(), SHUT_WR);
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
}

}  // namespace
}  // namespace zrelay
