#include "tests/chaos/close_check.h"

#include <gtest/gtest.h>

#include "tests/chaos/plan.h"
#include "tests/chaos/zrelayd_process.h"

namespace zrelay::chaos {
namespace {

CloseLine Line(const std::string& text) {
  CloseLine l;
  EXPECT_TRUE(ParseCloseLine(text, &l)) << text;
  return l;
}

TEST(CloseLineTest, ParsesCauseAndBytes) {
  CloseLine l = Line(
      "zrelayd: pair closed on worker 1: connect-failed, 12 bytes up, 0 down: "
      "connect 127.0.0.1:9: timed out");
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
      CheckCloseLines(pairs, {Line("zrelayd: pair closed on worker 0: done, 30 bytes up, 40 down"),
                              Line("zrelayd: pair closed on worker 1: done, 10 bytes up, 20 down")})
          .empty());
  // Right cause, wrong bytes: both the stray line and the missing pair show.
  auto problems = CheckCloseLines(
      pairs, {Line("zrelayd: pair closed on worker 0: done, 30 bytes up, 41 down"),
              Line("zrelayd: pair closed on worker 1: done, 10 bytes up, 20 down")});
  ASSERT_GE(problems.size(), 2u);
  EXPECT_NE(problems[0].find("41 down"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("30 bytes up, 40 down"), std::string::npos) << problems[1];
}

TEST(CloseCheckTest, EveryOtherLineNeedsAPairThatAllowsItsCause) {
  std::vector<CloseExpectation> pairs = {
      {kReset, true}, {kReset | kConnectFailed, true}, {kNotDone, false}};
  const CloseLine reset = Line("zrelayd: pair closed on worker 0: reset, 1 bytes up, 0 down");
  const CloseLine failed =
      Line("zrelayd: pair closed on worker 0: connect-failed, 0 bytes up, 0 down");
  const CloseLine error = Line("zrelayd: pair closed on worker 0: error, 0 bytes up, 0 down");
  const CloseLine drained = Line("zrelayd: pair closed on worker 0: drained, 0 bytes up, 0 down");
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
