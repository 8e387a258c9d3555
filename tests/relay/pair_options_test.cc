// PairOptions checked and carried: bad settings fail Listen naming the
// field, and close a Pipe() pair with kError naming it; good watermarks
// relay every byte both ways in every relay mode.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>
#include <thread>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/pair_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::MakeLegPair;

constexpr Duration kIoTimeout = seconds(20);

struct BadOptions {
  const char* name;
  PairOptions options;
  const char* field;  // the error names it
};

std::vector<BadOptions> BadCases() {
  std::vector<BadOptions> out;
  out.push_back({"HighAboveBufferSize", {}, "pair.high_watermark"});
  out.back().options.high_watermark = (64 << 10) + 1;
  out.push_back({"LowAboveHigh", {}, "pair.low_watermark"});
  out.back().options.high_watermark = 4096;
  out.back().options.low_watermark = 4097;
  out.push_back({"LowAboveBufferSize", {}, "pair.low_watermark"});
  out.back().options.low_watermark = (64 << 10) + 1;
  out.push_back({"BurstWithoutRate", {}, "pair.b_to_a.burst"});
  out.back().options.b_to_a.burst = 1000;
  return out;
}

class PairOptionsValidationTest : public ::testing::TestWithParam<BadOptions> {};

TEST_P(PairOptionsValidationTest, ListenFailsNamingTheField) {
  auto engine = testing::StartEngine({.workers = 1, .buffer_size = 64 << 10});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  ListenOptions options;
  options.name = "web";
  options.address = testing::Loopback(AF_INET);
  options.backends = {BackendOptions{testing::Loopback(AF_INET, 9), nullptr, {}}};
  options.pair = GetParam().options;
  auto id = (*engine)->Listen(options);
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().message().find(GetParam().field), std::string::npos)
      << id.error().message();
  EXPECT_NE(id.error().message().find("web"), std::string::npos) << id.error().message();
}

TEST_P(PairOptionsValidationTest, PipeClosesThePairNamingTheField) {
  auto engine = testing::StartEngine({.workers = 1, .buffer_size = 64 << 10});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  CloseRecorder closes;
  (*engine)->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback(),
                  GetParam().options);
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kError);
  EXPECT_NE(closed[0].detail.find(GetParam().field), std::string::npos) << closed[0].detail;
  // Both legs were closed: the peers see the end (a reset: the pair aborted).
  const testing::Stream at_a = testing::ReadToEof(a->app.get());
  const testing::Stream at_b = testing::ReadToEof(b->app.get());
  EXPECT_TRUE(at_a.data.empty() && at_a.error != EAGAIN) << at_a.error;
  EXPECT_TRUE(at_b.data.empty() && at_b.error != EAGAIN) << at_b.error;
}

INSTANTIATE_TEST_SUITE_P(Cases, PairOptionsValidationTest, ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadOptions>& info) {
                           return std::string(info.param.name);
                         });

class WatermarkRelayTest : public ::testing::TestWithParam<RelayMode> {};

// Small watermarks change how often the relay reads, never what arrives.
TEST_P(WatermarkRelayTest, EveryByteBothWays) {
  auto engine = testing::StartEngine({.workers = 1, .mode = GetParam()});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  PairOptions options;
  options.high_watermark = 4096;
  options.low_watermark = 1024;
  CloseRecorder closes;
  (*engine)->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback(), options);
  constexpr uint64_t kUp = 8 << 20, kDown = 3 << 20;
  testing::Received at_b, at_a;
  std::thread b_side([&] {
    std::thread reads([&] { at_b = testing::ReceivePattern(b->app.get(), 1); });
    testing::SendPattern(b->app.get(), 2, kDown);
    reads.join();
  });
  std::thread a_reads([&] { at_a = testing::ReceivePattern(a->app.get(), 2); });
  testing::SendPattern(a->app.get(), 1, kUp);
  a_reads.join();
  b_side.join();
  EXPECT_EQ(at_b.bytes, kUp);
  EXPECT_EQ(at_b.first_mismatch, -1);
  EXPECT_EQ(at_a.bytes, kDown);
  EXPECT_EQ(at_a.first_mismatch, -1);
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, kUp);
  EXPECT_EQ(closed[0].b_to_a, kDown);
}

INSTANTIATE_TEST_SUITE_P(Modes, WatermarkRelayTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         [](const ::testing::TestParamInfo<RelayMode>& info) {
                           return RelayModeName(info.param);
                         });

}  // namespace
}  // namespace zrelay
