// End-to-end relay tests on real sockets: every test runs for each relay
// mode (splice, copy, auto) and, where the legs are sockets the test makes,
// for IPv4, IPv6 and unix stream sockets.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <random>
#include <thread>

#include "engine/socket.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::LegPair;
using testing::MakeLegPair;
using testing::ReceivePattern;
using testing::Received;
using testing::SendPattern;

struct Param {
  RelayMode mode;
  int family;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const char* mode = RelayModeName(info.param.mode);
  const char* fam = info.param.family == AF_INET ? "IPv4"
                    : info.param.family == AF_INET6 ? "IPv6"
                                                    : "Unix";
  return std::string(mode) + fam;
}

class RelayTest : public ::testing::TestWithParam<Param> {
 protected:
  void StartEngine(EngineOptions options = {}) {
    options.workers = 2;
    options.mode = GetParam().mode;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  // Makes two leg pairs and hands the legs to Pipe(); returns the app ends
  // (client, backend).
  std::pair<UniqueFd, UniqueFd> PipeThrough() {
    auto a = MakeLegPair(GetParam().family);
    auto b = MakeLegPair(GetParam().family);
    EXPECT_TRUE(a.ok() && b.ok());
    if (!a.ok() || !b.ok()) return {};
    engine_->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes_.Callback());
    return {std::move(a->app), std::move(b->app)};
  }

  CloseRecorder closes_;  // declared first: it must outlive the engine's callbacks
  std::unique_ptr<Engine> engine_;
};

// Both ways at once, sizes from 1 byte to 64 MiB, every byte checked.
TEST_P(RelayTest, TransfersByteExactBothWays) {
  StartEngine();
  std::mt19937_64 rng(0x5eed + GetParam().family * 7 + static_cast<int>(GetParam().mode));
  std::vector<std::pair<uint64_t, uint64_t>> sizes = {
      {1, 0},
      {0, 1},
      {rng() % 65536 + 1, rng() % 65536 + 1},
      {rng() % (4 << 20) + 1, rng() % (4 << 20) + 1},
      {64 << 20, rng() % (16 << 20) + 1},
  };
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto [up, down] = sizes[i];
    auto [client, backend] = PipeThrough();
    ASSERT_TRUE(client.valid());
    Received at_backend, at_client;
    std::thread t1([&, fd = client.get()] { SendPattern(fd, 1 + i, up); });
    std::thread t2([&, fd = backend.get()] { SendPattern(fd, 100 + i, down); });
    std::thread t3([&, fd = backend.get()] { at_backend = ReceivePattern(fd, 1 + i); });
    at_client = ReceivePattern(client.get(), 100 + i);
    t1.join();
    t2.join();
    t3.join();
    EXPECT_EQ(at_backend.bytes, up) << "size index " << i;
    EXPECT_EQ(at_backend.first_mismatch, -1);
    EXPECT_EQ(at_client.bytes, down);
    EXPECT_EQ(at_client.first_mismatch, -1);
    auto closed = closes_.WaitFor(i + 1);
    ASSERT_EQ(closed.size(), i + 1);
    EXPECT_EQ(closed[i].cause, CloseCause::kDone) << closed[i].detail;
    EXPECT_EQ(closed[i].a_to_b, up);
    EXPECT_EQ(closed[i].b_to_a, down);
  }
  EngineStats stats = engine_->Stats();
  if (GetParam().mode == RelayMode::kSplice) {
    EXPECT_GT(stats.total.bytes_spliced, 64u << 20);
  }
  if (GetParam().mode == RelayMode::kCopy) {
    EXPECT_EQ(stats.total.bytes_spliced, 0u);
  }
  if (GetParam().mode == RelayMode::kAuto) {
    // A 64 MiB stream is bulk: auto must have moved it to splice.
    EXPECT_GT(stats.total.splice_switches, 0u);
    EXPECT_GT(stats.total.bytes_spliced, 32u << 20);
  }
}

// FIN from one side is passed on as FIN while the other side keeps sending.
void HalfClose(RelayTest* test, bool client_first, std::pair<UniqueFd, UniqueFd> ends,
               CloseRecorder& closes) {
  int first = client_first ? ends.first.get() : ends.second.get();
  int second = client_first ? ends.second.get() : ends.first.get();
  (void)test;
  // `first` says a little and closes its sending side...
  EXPECT_EQ(SendPattern(first, 7, 1000), 1000u);
  Received got = ReceivePattern(second, 7);
  EXPECT_EQ(got.bytes, 1000u);
  EXPECT_EQ(got.first_mismatch, -1);
  // ...and still receives everything `second` sends after that FIN.
  EXPECT_EQ(closes.count(), 0u) << "a half-close must not close the pair";
  std::thread sender([&] { SendPattern(second, 8, 3 << 20); });
  Received back = ReceivePattern(first, 8);
  sender.join();
  EXPECT_EQ(back.bytes, 3u << 20);
  EXPECT_EQ(back.first_mismatch, -1);
  auto closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone);
}

TEST_P(RelayTest, HalfCloseFromClientKeepsBackendSending) {
  StartEngine();
  HalfClose(this, true, PipeThrough(), closes_);
}

TEST_P(RelayTest, HalfCloseFromBackendKeepsClientSending) {
  StartEngine();
  HalfClose(this, false, PipeThrough(), closes_);
}

// A reset on one leg aborts the pair and resets the other leg.
void ResetPropagates(bool from_client, std::pair<UniqueFd, UniqueFd> ends, CloseRecorder& closes) {
  UniqueFd& resetter = from_client ? ends.first : ends.second;
  UniqueFd& other = from_client ? ends.second : ends.first;
  EXPECT_EQ(SendPattern(resetter.get(), 3, 100, 100, false), 100u);
  char buf[100];
  size_t got = 0;
  while (got < sizeof(buf)) {
    ssize_t n = ::recv(other.get(), buf + got, sizeof(buf) - got, 0);
    ASSERT_GT(n, 0);
    got += static_cast<size_t>(n);
  }
  ASSERT_TRUE(SetLingerZero(resetter.get()).ok());
  resetter.Reset();
  Received r = ReceivePattern(other.get(), 0);
  EXPECT_EQ(r.error, ECONNRESET) << "the other side should see a reset, not a clean FIN";
  auto closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kReset) << closed[0].detail;
  EXPECT_NE(closed[0].detail.find(from_client ? "leg A" : "leg B"), std::string::npos)
      << closed[0].detail;
}

TEST_P(RelayTest, ResetFromClientResetsBackend) {
  if (GetParam().family == AF_UNIX) GTEST_SKIP() << "unix sockets have no RST";
  StartEngine();
  ResetPropagates(true, PipeThrough(), closes_);
}

TEST_P(RelayTest, ResetFromBackendResetsClient) {
  if (GetParam().family == AF_UNIX) GTEST_SKIP() << "unix sockets have no RST";
  StartEngine();
  ResetPropagates(false, PipeThrough(), closes_);
}

// Regression: after the client's FIN nothing reads leg A any more, so a
// later reset of A shows up only as EPOLLERR; it must still abort the pair.
TEST_P(RelayTest, ResetAfterHalfCloseIsNoticed) {
  if (GetParam().family == AF_UNIX) GTEST_SKIP() << "unix sockets have no RST";
  StartEngine();
  auto [client, backend] = PipeThrough();
  EXPECT_EQ(SendPattern(client.get(), 4, 10), 10u);
  EXPECT_EQ(ReceivePattern(backend.get(), 4).bytes, 10u);  // to the relayed FIN
  ASSERT_TRUE(SetLingerZero(client.get()).ok());
  client.Reset();
  auto closed = closes_.WaitFor(1, seconds(5));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kReset) << closed[0].detail;
  // The backend already read our FIN, so the reset shows on its next sends.
  int err = 0;
  for (int i = 0; i < 100 && err == 0; ++i) {
    if (::send(backend.get(), "x", 1, MSG_NOSIGNAL) < 0) err = errno;
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(err == ECONNRESET || err == EPIPE) << std::strerror(err);
}

TEST_P(RelayTest, IdleTimeoutClosesQuietPairs) {
  EngineOptions options;
  options.idle_timeout = milliseconds(200);
  StartEngine(options);
  auto [client, backend] = PipeThrough();
  // Traffic keeps it open past one timeout...
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(SendPattern(client.get(), 1, 10, 10, false), 10u);
    char buf[10];
    ASSERT_EQ(::recv(backend.get(), buf, sizeof(buf), MSG_WAITALL), 10);
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(closes_.count(), 0u);
  // ...silence closes it.
  auto closed = closes_.WaitFor(1, seconds(5));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kTimeout);
  // Last traffic at ~300 ms, so it closes no earlier than ~500 ms.
  EXPECT_GE(closed[0].age, milliseconds(480));
  Received r = ReceivePattern(client.get(), 0);
  EXPECT_EQ(r.bytes, 0u);
}

TEST_P(RelayTest, IdlePairsHoldNoPipesAndNoBuffers) {
  StartEngine();
  std::vector<std::pair<UniqueFd, UniqueFd>> pairs;
  for (int i = 0; i < 50; ++i) {
    pairs.push_back(PipeThrough());
    auto& [client, backend] = pairs.back();
    EXPECT_EQ(SendPattern(client.get(), i, 5000, 5000, false), 5000u);
    EXPECT_EQ(SendPattern(backend.get(), i, 300000, 65536, false), 300000u);
  }
  std::vector<char> buf(300000);
  for (auto& [client, backend] : pairs) {
    ASSERT_EQ(::recv(backend.get(), buf.data(), 5000, MSG_WAITALL), 5000);
    ASSERT_EQ(::recv(client.get(), buf.data(), 300000, MSG_WAITALL), 300000);
  }
  ASSERT_TRUE(testing::WaitFor([&] {
    EngineStats s = engine_->Stats();
    return s.total.bytes_a_to_b == 50u * 5000 && s.total.bytes_b_to_a == 50u * 300000;
  }));
  EngineStats s = engine_->Stats();
  EXPECT_EQ(s.total.pairs_open, 50u);
  EXPECT_EQ(s.total.pipes_in_use, 0u);
  EXPECT_EQ(s.total.buffers_in_use, 0u);
  if (GetParam().mode == RelayMode::kSplice) {
    EXPECT_GT(s.total.pipes_pooled, 0u);
  }
}

TEST_P(RelayTest, DrainLetsPairsFinishThenClosesTheRest) {
  StartEngine();
  auto quick = PipeThrough();
  auto stuck = PipeThrough();
  std::thread finisher([&] {
    std::this_thread::sleep_for(milliseconds(100));
    ::shutdown(quick.first.get(), SHUT_WR);
    ::shutdown(quick.second.get(), SHUT_WR);
  });
  TimePoint start = Clock::now();
  engine_->Drain(milliseconds(500));
  Duration took = Clock::now() - start;
  finisher.join();
  EXPECT_GE(took, milliseconds(450));
  auto closed = closes_.WaitFor(2);
  ASSERT_EQ(closed.size(), 2u);
  int done = 0, drained = 0;
  for (auto& c : closed) {
    done += c.cause == CloseCause::kDone;
    drained += c.cause == CloseCause::kDrained;
  }
  EXPECT_EQ(done, 1);
  EXPECT_EQ(drained, 1);
  EXPECT_EQ(engine_->Stats().total.pairs_open, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, RelayTest,
    ::testing::Values(Param{RelayMode::kSplice, AF_INET}, Param{RelayMode::kSplice, AF_INET6},
                      Param{RelayMode::kSplice, AF_UNIX}, Param{RelayMode::kCopy, AF_INET},
                      Param{RelayMode::kCopy, AF_INET6}, Param{RelayMode::kCopy, AF_UNIX},
                      Param{RelayMode::kAuto, AF_INET}, Param{RelayMode::kAuto, AF_INET6},
                      Param{RelayMode::kAuto, AF_UNIX}),
    ParamName);

}  // namespace
}  // namespace zrelay
