// Pump() on a real loop (see pump_harness.h) choosing between splice and
// copy, per socket family: a splice direction falling back to copy on ENOSYS
// or EINVAL and on a dry pipe pool (and splicing again once a pipe is free),
// EAGAIN from a full pipe not taken for a drained socket, and auto mode
// switching to splice for bulk but not for small messages.
#include <gtest/gtest.h>

#include <cstring>
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
using testing::Queued;

// ---- Splice only ------------------------------------------------------------

class SplicePumpTest : public ::testing::TestWithParam<Family> {
 protected:
  PumpConfig MakeConfig() {
    PumpConfig c;
    c.family = GetParam();
    c.path = Path::kSplice;
    return c;
  }
};

// HAProxy's raw_sock.c rule: ENOSYS or EINVAL from the first splice means
// this fd cannot splice; the direction moves to copy for good and the
// transfer completes byte-exact.
TEST_P(SplicePumpTest, EnosysOrEinvalFromTheFirstSpliceFallsBackToCopy) {
  for (int err : {ENOSYS, EINVAL}) {
    SCOPED_TRACE(std::strerror(err));
    PumpHarness h(MakeConfig());
    h.sys_.FailNth(Op::kSpliceIn, 1, err);
    h.Register();
    ASSERT_TRUE(h.Transfer(1 << 20, true));
    EXPECT_EQ(h.receiver_.payload(), 1u << 20);
    EXPECT_EQ(h.receiver_.first_mismatch, -1);
    EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
    EXPECT_EQ(h.dir_.path, Path::kCopy);
    EXPECT_FALSE(h.dir_.auto_splice);
    EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 1) << "no second splice attempt";
    EXPECT_EQ(h.sys_.calls(Op::kSpliceOut), 0);
    EXPECT_GT(h.sys_.calls(Op::kReadv), 0);
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 1u << 20);
    // The pipe it borrowed for the failed splice went back to the pool.
    EXPECT_EQ(h.pipes_.stats().created, 1u);
    EXPECT_EQ(h.pipes_.stats().pooled, 1u);
    EXPECT_EQ(h.pipes_.stats().discarded_full, 0u);
    h.ExpectNothingHeld();
  }
}

// ENOSYS while the pipe holds bytes is not a fallback but an error: copying
// from the socket then would let new bytes overtake the ones in the pipe.
TEST_P(SplicePumpTest, EnosysWithBytesInThePipeIsAnError) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the pipe cannot be flushed, so its bytes stay
  h.sys_.ShortNth(Op::kSpliceIn, 1, 1000);
  h.sys_.FailNth(Op::kSpliceIn, 2, ENOSYS);
  h.Preload(10000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
  PumpResult r = h.results_.back();
  EXPECT_EQ(r.outcome, PumpOutcome::kError);
  EXPECT_EQ(r.err, ENOSYS);
  EXPECT_TRUE(r.on_source);
  EXPECT_EQ(h.dir_.path, Path::kSplice);
}

// Regression for the pitfall pump.cc guards (ARCHITECTURE.md, "Pitfalls"; HAProxy
// raw_sock.c): "EAGAIN from splice(socket -> pipe) with bytes in the pipe
// does not mean drained" -- it may mean the pipe is full. If SpliceIn cleared
// the source's readable flag on that EAGAIN, the bytes still queued in the
// socket would never be read: edge-triggered epoll sends no new edge for
// data that is already there, and the sender here sends nothing more.
TEST_P(SplicePumpTest, EagainFromSpliceInWithBytesInThePipeDoesNotMeanDrained) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the first pump call cannot flush
  h.sys_.ShortNth(Op::kSpliceIn, 1, 1000);   // 1000 bytes land in the pipe
  h.sys_.FailNth(Op::kSpliceIn, 2, EAGAIN);  // then "EAGAIN": the pipe is full
  const uint64_t total = GetParam() == Family::kTcp ? 48 << 10 : 128 << 10;
  h.Preload(total);  // all of it queued in the relay's socket before the edge
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.sys_.calls(Op::kSpliceIn) >= 2; }, seconds(5)));
  ASSERT_NE(h.dir_.pipe, nullptr);
  EXPECT_EQ(h.dir_.pipe->bytes, 1000u);
  EXPECT_TRUE(h.dir_.pipe_may_be_full);
  EXPECT_TRUE(h.src_watch_.readable())
      << "EAGAIN with bytes in the pipe must not clear the source's readable flag";
  EXPECT_FALSE(h.dst_watch_.writable());
  EXPECT_EQ(Queued(h.src_.relay.get()), static_cast<int>(total - 1000));

  // The app drains the destination; everything arrives without the sender
  // sending another byte (no FIN either: that would bring a fresh edge).
  h.receiver_.reading = true;
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.payload() == total || h.failed(); },
                       seconds(10)))
      << "stuck at " << h.receiver_.payload() << " of " << total << " bytes";
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.sender_.sent, total);
  EXPECT_FALSE(h.sender_.shut);
  EXPECT_FALSE(h.dir_.pipe_may_be_full);
  EXPECT_GT(h.sys_.calls(Op::kSpliceIn), 2) << "reading resumed after the pipe drained";
  // Once truly drained, a real EAGAIN with an empty pipe does clear the flag.
  ASSERT_TRUE(h.RunFor([&] { return !h.src_watch_.readable(); }, seconds(5)));
  h.ExpectNothingHeld();
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
}

// The pipe pool is at its cap (0 here): a splice direction copies through a
// ring instead, counts the exhaustion, and still delivers every byte.
TEST_P(SplicePumpTest, PipePoolCapZeroFallsBackToCopy) {
  PumpConfig c = MakeConfig();
  c.pipe_cap = 0;
  PumpHarness h(c);
  h.Register();
  ASSERT_TRUE(h.Transfer(1 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), 1u << 20);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_GT(h.stats_.pipe_pool_exhausted.Get(), 0u);
  EXPECT_EQ(h.stats_.pipe_pool_exhausted.Get(), h.pipes_.stats().exhausted);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), 1u << 20);
  EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  // The direction stays a splice direction: it asks again next time.
  EXPECT_EQ(h.dir_.path, Path::kSplice);
  h.ExpectNothingHeld();
}

// The pool refuses at first and has a pipe later: the direction copies while
// dry and splices again once a pipe is free, with the order of bytes intact.
TEST_P(SplicePumpTest, PipeFreedLaterIsUsedAgain) {
  PumpConfig c = MakeConfig();
  c.pipe_cap = 1;
  PumpHarness h(c);
  std::unique_ptr<KernelPipe> held = h.pipes_.Take();
  ASSERT_NE(held, nullptr);
  h.Register();
  ASSERT_TRUE(h.Transfer(300000, false));
  EXPECT_GT(h.stats_.pipe_pool_exhausted.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  h.pipes_.Return(std::move(held));
  ASSERT_TRUE(h.Transfer(700000, true));
  EXPECT_EQ(h.receiver_.payload(), 1000000u);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get() + h.stats_.bytes_copied.Get(), 1000000u);
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(Families, SplicePumpTest,
                         ::testing::Values(Family::kTcp, Family::kUnix),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return FamilyName(info.param);
                         });

// ---- Auto mode ----------------------------------------------------------------

class AutoPumpTest : public ::testing::TestWithParam<Family> {
 protected:
  PumpConfig MakeConfig() {
    PumpConfig c;
    c.family = GetParam();
    c.path = Path::kCopy;
    c.auto_splice = true;
    return c;
  }
};

// A read that fills the ring marks the direction for splice; the switch
// waits until the ring has drained (no byte may overtake another), then the
// rest goes through a pipe.
TEST_P(AutoPumpTest, AReadThatFillsTheRingSwitchesToSpliceOnceDrained) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the ring cannot drain until the app reads
  h.Preload(GetParam() == Family::kTcp ? 100000 : 150000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.sys_.calls(Op::kReadv) >= 1; }, seconds(5)));
  ASSERT_NE(h.dir_.ring, nullptr);
  EXPECT_TRUE(h.dir_.ring->full());
  EXPECT_TRUE(h.dir_.want_splice) << "a read that filled the ring is bulk";
  EXPECT_EQ(h.dir_.path, Path::kCopy) << "no switch while bytes are in the ring";
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.dir_.pipe, nullptr);

  const uint64_t preloaded = h.sender_.allowed;
  h.receiver_.reading = true;
  ASSERT_TRUE(h.Transfer(2 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), preloaded + (2u << 20));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.path, Path::kSplice);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 1u);
  EXPECT_GE(h.stats_.bytes_copied.Get(), 65536u);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 1u << 20);
  EXPECT_EQ(h.stats_.bytes_copied.Get() + h.stats_.bytes_spliced.Get(), preloaded + (2u << 20));
  EXPECT_GT(h.sys_.calls(Op::kSpliceIn), 0);
  h.ExpectNothingHeld();
}

// Request/response-sized messages never fill the ring: the direction stays
// on copy.
TEST_P(AutoPumpTest, SmallReadsNeverSwitch) {
  PumpHarness h(MakeConfig());
  h.Register();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(h.Transfer(100 + i % 7, i == 199)) << "message " << i;
    ASSERT_FALSE(h.dir_.want_splice) << "message " << i;
  }
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.path, Path::kCopy);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), h.receiver_.payload());
  h.ExpectNothingHeld();
}

// Without auto_splice (copy mode), even bulk stays on copy.
TEST_P(AutoPumpTest, CopyModeNeverSwitches) {
  PumpConfig c = MakeConfig();
  c.auto_splice = false;
  PumpHarness h(c);
  h.Register();
  ASSERT_TRUE(h.Transfer(2 << 20, true));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.dir_.path, Path::kCopy);
  EXPECT_FALSE(h.dir_.want_splice);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, AutoPumpTest,
                         ::testing::Values(Family::kTcp, Family::kUnix),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return FamilyName(info.param);
                         });

}  // namespace
}  // namespace zrelay
