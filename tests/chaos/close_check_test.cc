#include "tests/chaos/close_check.h"

#include <gtest/gtest.h>

#include "tests/chaos/plan.h"
#include "tests/chaos/zrelayd_process.h"
#include "tools/log/access_log.h"

namespace zrelay::chaos {
namespace {

// The line zrelayd writes on stderr for such a pair.
CloseLine Line(CloseCause cause, uint64_t up, uint64_t down, std::string detail = "") {
  PairStats stats;
  stats.cause = cause;
  stats.a_to_b = up;
  stats.b_to_a = down;
  stats.detail = std::move(detail);
  stats.backend = Address::Parse("127.0.0.1:9").value();
  const std::string text = "zrelayd: " + AccessLine("", stats);
  CloseLine l;
  EXPECT_TRUE(ParseCloseLine(text, &l)) << text;
  return l;
}

TEST(CloseLineTest, ParsesCauseAndBytes) {
  CloseLine l = Line(CloseCause::kConnectFailed, 12, 0, "connect 127.0.0.1:9: timed out");
  EXPECT_EQ(l.cause, "connect-failed");
  EXPECT_EQ(l.up, 12u);
  EXPECT_EQ(l.down, 0u);
  CloseLine other;
  EXPECT_FALSE(ParseCloseLine("zrelayd: listening on 127.0.0.1:1, backend x", &other));
}

TEST(TotalsTest, ParsesEveryCounter) {
  auto t = ParseTotals(
      "zrelayd: totals: accepted 5, pairs closed 4, connect failures 1, bytes client->backend "
      "100, backend->client 200 (spliced 250, copied 50), pipe pool exhausted 3, auto splice "
      "switches 0");
  EXPECT_EQ(t["accepted"], 5u);
  EXPECT_EQ(t["pairs closed"], 4u);
  EXPECT_EQ(t["connect failures"], 1u);
  EXPECT_EQ(t["bytes client->backend"], 100u);
  EXPECT_EQ(t["backend->client"], 200u);
  EXPECT_EQ(t["spliced"], 250u);
  EXPECT_EQ(t["copied"], 50u);
  EXPECT_EQ(t["pipe pool exhausted"], 3u);
  EXPECT_EQ(t["auto splice switches"], 0u);
}

TEST(CloseCheckTest, DoneLinesMustMatchCleanPairsExactly) {
  std::vector<CloseExpectation> pairs = {{kDone, true, 10, 20}, {kDone, true, 30, 40}};
  EXPECT_TRUE(
      CheckCloseLines(pairs, {Line(CloseCause::kDone, 30, 40), Line(CloseCause::kDone, 10, 20)})
          .empty());
  // Right cause, wrong bytes: both the stray line and the missing pair show.
  auto problems =
      CheckCloseLines(pairs, {Line(CloseCause::kDone, 30, 41), Line(CloseCause::kDone, 10, 20)});
  ASSERT_GE(problems.size(), 2u);
  EXPECT_NE(problems[0].find("bytes_down=41"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("30 bytes up, 40 down"), std::string::npos) << problems[1];
}

TEST(CloseCheckTest, EveryOtherLineNeedsAPairThatAllowsItsCause) {
  std::vector<CloseExpectation> pairs = {
      {kReset, true}, {kReset | kConnectFailed, true}, {kNotDone, false}};
  const CloseLine reset = Line(CloseCause::kReset, 1, 0);
  const CloseLine failed = Line(CloseCause::kConnectFailed, 0, 0);
  const CloseLine error = Line(CloseCause::kError, 0, 0);
  const CloseLine drained = Line(CloseCause::kDrained, 0, 0);
  EXPECT_TRUE(CheckCloseLines(pairs, {reset, failed}).empty());
  EXPECT_TRUE(CheckCloseLines(pairs, {reset, reset, error}).empty());
  // Two connect failures, but only one pair may end that way (the third
  // allows it, yet then nothing is left for the reset-only pair).
  EXPECT_FALSE(CheckCloseLines(pairs, {failed, failed}).empty());
  EXPECT_FALSE(CheckCloseLines(pairs, {reset}).empty());  // a required pair has no line
  EXPECT_FALSE(CheckCloseLines(pairs, {reset, failed, drained}).empty());
  EXPECT_FALSE(CheckCloseLines(pairs, {reset, failed, error, error}).empty());  // one line too many
}

TEST(PlanTest, SameSeedSamePlansAndHeadersRoundTrip) {
  PlanOptions o;
  o.tls = true;
  auto a = MakePlans(o, 200, 7), b = MakePlans(o, 200, 7);
  ASSERT_EQ(a.size(), 200u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].fault, b[i].fault);
    EXPECT_EQ(a[i].up_bytes, b[i].up_bytes);
    EXPECT_EQ(a[i].down_seed, b[i].down_seed);
    EXPECT_GE(a[i].up_bytes, a[i].client_split);
    char header[kHeaderBytes];
    FillUp(a[i].id, a[i].up_seed, 0, header, sizeof(header));
    EXPECT_EQ(ParseHeader(header), a[i].id);
  }
  char junk[kHeaderBytes] = {'Z', 'C', 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(ParseHeader(junk), -1);
}

}  // namespace
}  // namespace zrelay::chaos
