// Pump() on a real loop (see pump_harness.h), the plain runs on every path
// and socket family: a byte-exact transfer and its FIN, the last direction
// leaving the FIN to close(), the fairness budget's kMore turns, a dry buffer
// pool's kNoBuffer and resumption, and the exact syscall pattern of one fixed
// transfer per path.
#include "relay/pump.h"

#include <gtest/gtest.h>

#include <memory>
#include <tuple>

#include "tests/relay/pump_harness.h"

namespace zrelay {
namespace {

using testing::AllPathsAndFamilies;
using testing::Family;
using testing::Op;
using testing::PathAndFamilyName;
using testing::PathName;
using testing::PumpConfig;
using testing::PumpHarness;
using testing::PumpTest;

// The baseline the injection tests build on: 4 MiB and a FIN, byte-exact,
// counted on the right path, and nothing borrowed afterwards.
TEST_P(PumpTest, TransfersByteExactAndFinishes) {
  PumpHarness h(MakeConfig());
  h.Register();
  ASSERT_TRUE(h.Transfer(4 << 20, true));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.receiver_.payload(), 4u << 20);
  EXPECT_TRUE(h.receiver_.eof);
  ASSERT_FALSE(h.results_.empty());
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.state, DirectionState::kDone);
  EXPECT_EQ(h.dir_.bytes, 4u << 20);
  if (h.config_.path == Path::kSplice) {
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 4u << 20);
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 0u);
  } else {
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 4u << 20);
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
    EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  }
  h.ExpectNothingHeld();
}

// The shutdown() for FIN is made only when the socket stays open afterwards:
// for the pair's last direction, close() sends the FIN.
TEST_P(PumpTest, LastDirectionLeavesTheFinToClose) {
  PumpHarness h(MakeConfig());
  h.close_follows_ = true;
  h.Register();
  // Without a shutdown() no FIN reaches the app until the pair closes the
  // socket, so wait for the bytes and the pump's kDone, then close as it would.
  h.sender_.fin = true;
  h.sender_.allowed += 100000;
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.payload() == 100000 && h.stopped_; },
                       seconds(20)));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.sys_.calls(Op::kShutdown), 0);
  h.dst_watch_.Unregister();
  h.dst_.relay.Reset();
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.eof; }, seconds(5)))
      << "close() must deliver the FIN";
  EXPECT_EQ(h.receiver_.first_mismatch, -1);

  PumpHarness g(MakeConfig());
  g.Register();
  ASSERT_TRUE(g.Transfer(100000, true));
  EXPECT_EQ(g.sys_.calls(Op::kShutdown), 1) << "a direction that is not last sends its FIN";
}

// The fairness budget: a small budget stops the pump with kMore while the
// source still has data; the next call carries on where it stopped.
TEST_P(PumpTest, SmallBudgetReturnsMoreAndTheNextCallContinues) {
  PumpConfig c = MakeConfig();
  c.budget = 16 << 10;
  PumpHarness h(c);
  h.auto_pump_ = false;
  // A short first splice: the turn must top up to exactly the budget, not
  // read another full budget on top.
  h.sys_.ShortNth(Op::kSpliceIn, 1, 5000);
  const uint64_t total = 100000;  // fits the relay socket's receive queue
  h.Preload(total);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.src_watch_.readable() && h.dst_watch_.writable(); },
                       seconds(5)));
  PumpResult first = h.PumpNow();
  EXPECT_EQ(first.outcome, PumpOutcome::kMore);
  uint64_t after_first = h.dir_.bytes;
  EXPECT_GT(after_first, 0u);
  // Splice reads at most the budget; copy reads at most one ring, and a read
  // that reaches the budget ends the turn.
  EXPECT_LE(after_first, c.path == Path::kSplice ? c.budget : c.buffer_size);
  EXPECT_LT(after_first, total);
  EXPECT_TRUE(h.src_watch_.readable());

  PumpResult second = h.PumpNow();
  EXPECT_GT(h.dir_.bytes, after_first) << "the second call must continue";
  // kMore while bytes are left. A copy read that empties the socket is short,
  // and a short read counts as drained, so that turn ends idle.
  EXPECT_EQ(second.outcome, h.dir_.bytes < total ? PumpOutcome::kMore : PumpOutcome::kIdle);

  // Keep calling (as the ready list would): each call moves more until the
  // source is drained, then the pump goes idle.
  int more = 2;  // calls that returned kMore
  while (h.PumpNow().outcome == PumpOutcome::kMore && more < 1000) ++more;
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kIdle);
  EXPECT_EQ(h.dir_.bytes, total);
  if (c.path == Path::kSplice) {
    // splice() is asked for exactly what is left of the budget, so every
    // kMore turn moved exactly one budget (the first in two splices: 5000
    // bytes, then the rest), and the last turn the remainder.
    EXPECT_EQ(after_first, c.budget);
    EXPECT_GE(h.sys_.calls(Op::kSpliceIn), 2);
    EXPECT_EQ(static_cast<uint64_t>(more), total / c.budget);
  } else {
    EXPECT_GE(static_cast<uint64_t>(more), total / c.buffer_size);
  }
  h.auto_pump_ = true;
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.receiver_.payload(), total);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
}

// The buffer pool is dry (another direction holds the only ring): the pump
// reads nothing and says kNoBuffer; once a ring comes back it proceeds.
TEST_P(PumpTest, BufferPoolDryReturnsNoBufferThenResumes) {
  PumpConfig c = MakeConfig();
  c.buffer_cap = 1;
  if (c.path == Path::kSplice) c.pipe_cap = 0;  // splice falls back to copy, which is dry too
  PumpHarness h(c);
  std::unique_ptr<RingBuffer> held = h.buffers_.Take();
  ASSERT_NE(held, nullptr);
  h.Preload(100000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return !h.results_.empty() && h.src_watch_.readable(); }, seconds(5)));
  PumpResult r = h.PumpNow();
  EXPECT_EQ(r.outcome, PumpOutcome::kNoBuffer);
  EXPECT_EQ(h.dir_.bytes, 0u);
  EXPECT_TRUE(h.src_watch_.readable()) << "nothing was read, the data is still there";
  EXPECT_GE(h.buffers_.stats().exhausted, 1u);
  EXPECT_EQ(h.sys_.calls(Op::kReadv) + h.sys_.calls(Op::kSpliceIn), 0);
  if (c.path == Path::kSplice) {
    EXPECT_GE(h.stats_.pipe_pool_exhausted.Get(), 1u);
  }

  h.buffers_.Return(std::move(held));
  r = h.PumpNow();
  EXPECT_NE(r.outcome, PumpOutcome::kNoBuffer);
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.receiver_.payload(), 100000u);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), 100000u);
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(PathsAndFamilies, PumpTest, AllPathsAndFamilies(), PathAndFamilyName);

// The syscalls of one fixed transfer, counted: 100000 bytes and a FIN that
// sit in the source's receive queue before the pump first runs, relayed
// over unix sockets (no segmenting to vary the counts). The numbers pin the
// pump's syscall pattern per path, so a refactoring of the transports that
// adds or drops a call shows up here.
class PumpSyscallCountTest : public ::testing::TestWithParam<Path> {};

TEST_P(PumpSyscallCountTest, PreloadedTransferMakesTheSameCallsAsAlways) {
  PumpConfig c;
  c.family = Family::kUnix;
  c.path = GetParam();
  PumpHarness h(c);
  h.Preload(100000);
  h.sender_.fin = true;
  h.sender_.Step();  // FIN queued behind the bytes
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.eof || h.failed(); }, seconds(10)));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.receiver_.payload(), 100000u);
  ASSERT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  // Two reads fill the 64 KiB vehicle and take the rest, a third reads the
  // FIN; two writes deliver; one shutdown() passes the FIN on.
  const bool splice = c.path == Path::kSplice;
  EXPECT_EQ(h.sys_.calls(splice ? Op::kSpliceIn : Op::kReadv), 3);
  EXPECT_EQ(h.sys_.calls(splice ? Op::kSpliceOut : Op::kWritev), 2);
  EXPECT_EQ(h.sys_.calls(splice ? Op::kReadv : Op::kSpliceIn), 0);
  EXPECT_EQ(h.sys_.calls(splice ? Op::kWritev : Op::kSpliceOut), 0);
  EXPECT_EQ(h.sys_.calls(Op::kShutdown), 1);
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(Paths, PumpSyscallCountTest,
                         ::testing::Values(Path::kSplice, Path::kCopy),
                         [](const ::testing::TestParamInfo<Path>& info) {
                           return PathName(info.param);
                         });

}  // namespace
}  // namespace zrelay
