// zrelay-load's latency histogram: precision, percentiles, merge, clamping.
#include "tools/load/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace zrelay::load {
namespace {

// The stated precision: a reported value is within 1/128 of a recorded one
// (values below 256 are exact).
bool WithinPrecision(uint64_t reported, uint64_t truth) {
  double tolerance = std::max(1.0, static_cast<double>(truth) / 128.0);
  return std::abs(static_cast<double>(reported) - static_cast<double>(truth)) <= tolerance;
}

// The exact percentile of a sorted sample, by the same rank rule.
uint64_t ExactPercentile(const std::vector<uint64_t>& sorted, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtPercentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 255; ++v) h.Record(v);
  for (uint64_t v = 1; v <= 255; ++v) {
    EXPECT_EQ(Histogram::LowestEquivalent(v), v);
    EXPECT_EQ(Histogram::HighestEquivalent(v), v);
  }
  EXPECT_EQ(h.ValueAtPercentile(100), 255u);
  EXPECT_EQ(h.min(), 1u);
}

TEST(HistogramTest, BucketsNeverWiderThanStatedPrecision) {
  // Walk the whole range geometrically; every value's bucket is at most
  // value/128 wide and contains the value.
  for (uint64_t v = 1; v <= Histogram::kHighest; v = v + v / 7 + 1) {
    uint64_t lo = Histogram::LowestEquivalent(v);
    uint64_t hi = Histogram::HighestEquivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_GE(hi, v);
    ASSERT_LE(hi - lo, v / 128) << v;
    ASSERT_LT(Histogram::IndexOf(v), Histogram::counts_length()) << v;
  }
  EXPECT_LT(Histogram::IndexOf(Histogram::kHighest), Histogram::counts_length());
  // Fixed memory: a few thousand counters, not one per value.
  EXPECT_LT(Histogram::counts_length(), 5000u);
}

TEST(HistogramTest, UniformDistributionPercentiles) {
  // 1 us .. 100 ms in ns, uniform: p-th percentile ~ p% of the range.
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> dist(1000, 100'000'000);
  Histogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 200000; ++i) {
    uint64_t v = dist(rng);
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    uint64_t got = h.ValueAtPercentile(p);
    uint64_t want = ExactPercentile(values, p);
    EXPECT_TRUE(WithinPrecision(got, want)) << "p" << p << ": got " << got << " want " << want;
  }
  EXPECT_EQ(h.count(), 200000u);
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
}

TEST(HistogramTest, LongTailedDistributionPercentiles) {
  // Log-normal latencies around 50 us with a heavy tail: percentiles spread
  // over several decades, where a linear histogram would fail.
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(50'000.0), 1.2);
  Histogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    uint64_t got = h.ValueAtPercentile(p);
    uint64_t want = ExactPercentile(values, p);
    EXPECT_TRUE(WithinPrecision(got, want)) << "p" << p << ": got " << got << " want " << want;
  }
  double exact_mean = 0;
  for (uint64_t v : values) exact_mean += static_cast<double>(v);
  exact_mean /= static_cast<double>(values.size());
  EXPECT_NEAR(h.mean(), exact_mean, exact_mean * 1e-9);
}

TEST(HistogramTest, TwoPointDistribution) {
  // 99% at 10 us, 1% at 5 ms: p99 is still 10 us, p99.9 is 5 ms.
  Histogram h;
  h.RecordN(10'000, 9900);
  h.RecordN(5'000'000, 100);
  EXPECT_TRUE(WithinPrecision(h.ValueAtPercentile(50), 10'000));
  EXPECT_TRUE(WithinPrecision(h.ValueAtPercentile(99), 10'000));
  EXPECT_TRUE(WithinPrecision(h.ValueAtPercentile(99.01), 5'000'000));
  EXPECT_TRUE(WithinPrecision(h.ValueAtPercentile(99.9), 5'000'000));
  EXPECT_EQ(h.ValueAtPercentile(100), 5'000'000u);  // capped at the true max
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint64_t> dist(1, 10'000'000'000ULL);
  Histogram a, b, all;
  for (int i = 0; i < 50000; ++i) {
    uint64_t v = dist(rng);
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {0.1, 25.0, 50.0, 75.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(a.ValueAtPercentile(p), all.ValueAtPercentile(p)) << p;
  }
}

TEST(HistogramTest, MergeIntoEmpty) {
  Histogram empty, h;
  h.Record(123456);
  empty.Merge(h);
  EXPECT_EQ(empty.count(), 1u);
  EXPECT_EQ(empty.min(), 123456u);
  EXPECT_TRUE(WithinPrecision(empty.ValueAtPercentile(50), 123456));
}

TEST(HistogramTest, OutOfRangeValuesAreClampedAndCounted) {
  Histogram h;
  h.Record(0);                        // below kLowest
  h.Record(Histogram::kHighest + 1);  // above kHighest
  h.Record(UINT64_MAX);
  h.Record(500);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.underflows(), 1u);
  EXPECT_EQ(h.overflows(), 2u);
  EXPECT_EQ(h.min(), Histogram::kLowest);
  EXPECT_EQ(h.max(), Histogram::kHighest);
  EXPECT_EQ(h.ValueAtPercentile(100), Histogram::kHighest);
  EXPECT_EQ(h.ValueAtPercentile(25), Histogram::kLowest);

  Histogram other;
  other.Record(0);
  h.Merge(other);
  EXPECT_EQ(h.underflows(), 2u);
}

TEST(HistogramTest, ResetForgetsEverything) {
  Histogram h;
  h.RecordN(1000, 10);
  h.Record(0);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.underflows(), 0u);
  EXPECT_EQ(h.ValueAtPercentile(99), 0u);
}

}  // namespace
}  // namespace zrelay::load
