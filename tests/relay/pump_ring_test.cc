// Pump() on an io_uring loop, where a plain leg's copied reads are ring
// receives whose bytes arrive a turn later: small messages take no read
// syscall, auto mode still moves bulk to splice, and no splice ever
// overtakes the bytes a receive holds.
#include <gtest/gtest.h>

#include <memory>

#include "relay/pipe_pool.h"
#include "relay/pump.h"
#include "tests/relay/pump_harness.h"

namespace zrelay {
namespace {

using testing::Family;
using testing::FamilyName;
using testing::Op;
using testing::PumpConfig;
using testing::PumpHarness;

class RingPumpTest : public ::testing::TestWithParam<Family> {
 protected:
  PumpConfig MakeConfig(Path path, bool auto_splice) {
    PumpConfig c;
    c.family = GetParam();
    c.path = path;
    c.auto_splice = auto_splice;
    c.io = IoBackend::kUring;
    return c;
  }
};

// Request-sized messages in auto mode: every byte comes through a ring
// receive (no readv, no splice) and stays on copy.
TEST_P(RingPumpTest, AutoModeSmallMessagesTakeNoReadSyscall) {
  PumpHarness h(MakeConfig(Path::kCopy, true));
  h.Register();
  uint64_t total = 0;
  for (int i = 0; i < 100; ++i) {
    total += 128 + i % 5;
    ASSERT_TRUE(h.Transfer(128 + i % 5, i == 99)) << "message " << i;
  }
  EXPECT_EQ(h.receiver_.payload(), total);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.sys_.calls(Op::kReadv), 0) << "reads go through the ring";
  EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  EXPECT_EQ(h.dir_.path, Path::kCopy);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), total);
  h.ExpectNothingHeld();
}

// Bulk in auto mode: receives, then readv once one fills up, then splice
// once the ring and the receiver are both empty; the stream stays whole.
TEST_P(RingPumpTest, AutoModeBulkMovesToSplice) {
  PumpHarness h(MakeConfig(Path::kCopy, true));
  h.Register();
  ASSERT_TRUE(h.Transfer(100, false));  // a small message first: a receive
  ASSERT_TRUE(h.Transfer(4 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), 100u + (4u << 20));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.path, Path::kSplice);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 1u);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 2u << 20);
  EXPECT_EQ(h.stats_.bytes_copied.Get() + h.stats_.bytes_spliced.Get(), 100u + (4u << 20));
  h.ExpectNothingHeld();
}

// A splice direction copies while its pipe pool is dry, so a receive is
// queued; a pipe freed meanwhile must wait until the receive's bytes are
// delivered through a ring, or the splice would put later bytes first.
TEST_P(RingPumpTest, APipeWaitsForTheBytesOfAReceive) {
  PumpConfig c = MakeConfig(Path::kSplice, false);
  c.pipe_cap = 1;
  PumpHarness h(c);
  h.auto_pump_ = false;  // each step by hand
  std::unique_ptr<KernelPipe> held = h.pipes_.Take();
  ASSERT_NE(held, nullptr);
  h.Register();

  h.sender_.allowed = 100;
  ASSERT_TRUE(h.RunFor([&] { return h.src_watch_.readable(); }, seconds(5)));
  EXPECT_EQ(h.PumpNow().outcome, PumpOutcome::kIdle);
  EXPECT_GT(h.stats_.pipe_pool_exhausted.Get(), 0u);
  EXPECT_TRUE(h.src_io_->receiving_now()) << "the dry pool made it copy: a receive is queued";
  EXPECT_EQ(h.dir_.ring, nullptr) << "an empty ring goes back while the receive runs";

  h.pipes_.Return(std::move(held));
  ASSERT_TRUE(h.RunFor([&] { return h.src_io_->ReadReady(); }, seconds(5)));
  h.PumpNow();
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.payload() == 100; }, seconds(5)));
  EXPECT_EQ(h.stats_.bytes_copied.Get(), 100u) << "the receive's bytes went through a ring";
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.pipes_.stats().in_use, 0u) << "no pipe while a receive held bytes";

  h.auto_pump_ = true;
  h.PumpNow();
  ASSERT_TRUE(h.Transfer(1 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), 100u + (1u << 20));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 0u) << "splicing again once the receiver was empty";
  EXPECT_EQ(h.stats_.bytes_copied.Get() + h.stats_.bytes_spliced.Get(), 100u + (1u << 20));
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(Families, RingPumpTest, ::testing::Values(Family::kTcp, Family::kUnix),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return FamilyName(info.param);
                         });

}  // namespace
}  // namespace zrelay
