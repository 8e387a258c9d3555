// Histogram: a log-linear latency histogram in the style of HdrHistogram.
//
// Values are unsigned integers (zrelay-load records nanoseconds). The range
// [1, 60 s in ns] is covered with 2 significant decimal digits: values below
// 256 are counted exactly, larger ones fall in buckets whose width is at most
// 1/128 of their value, so any reported percentile is within 1/128 (0.79 %)
// of a recorded value. Memory is fixed at construction (about 30 KiB), a
// record is O(1) (a count-leading-zeros and an add), and two histograms merge
// by adding their counters, so each worker keeps its own and the runner sums
// them at the end. Values outside the range are clamped to its ends and
// counted (underflows(), overflows()), never dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zrelay::load {

class Histogram {
 public:
  static constexpr uint64_t kLowest = 1;                   // smallest value kept apart from 0
  static constexpr uint64_t kHighest = 60'000'000'000ULL;  // 60 s in ns
  static constexpr int kSubBucketHalfMagnitude = 7;        // 2 digits: 256 sub-buckets
  static constexpr uint64_t kSubBucketCount = 1ULL << (kSubBucketHalfMagnitude + 1);
  static constexpr uint64_t kSubBucketHalfCount = kSubBucketCount / 2;

  Histogram();

  // Counts `value` once (clamped into [kLowest, kHighest]). O(1).
  void Record(uint64_t value) { RecordN(value, 1); }
  void RecordN(uint64_t value, uint64_t count);
  // Adds every count of `other` into this histogram.
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return total_; }
  uint64_t underflows() const { return underflows_; }  // values < kLowest, counted as kLowest
  uint64_t overflows() const { return overflows_; }    // values > kHighest, counted as kHighest
  // Exact extremes of the (clamped) recorded values; 0 when empty.
  uint64_t min() const { return total_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  // Mean of the recorded values, exact up to the clamping (sum is kept).
  double mean() const;

  // The value at percentile `p` (0..100]: the highest value equivalent to the
  // bucket holding the ceil(p/100 * count)-th smallest record, capped at max().
  // 0 when empty.
  uint64_t ValueAtPercentile(double p) const;

  // Bucket geometry, exposed for tests: every value in [Lowest, Highest] of a
  // bucket is reported as Highest.
  static size_t IndexOf(uint64_t value);
  static uint64_t LowestEquivalent(uint64_t value);
  static uint64_t HighestEquivalent(uint64_t value);
  static size_t counts_length();

 private:
  static uint64_t ValueAtIndex(size_t index);

  std::vector<uint64_t> counts_;  // sized once, never grows
  uint64_t total_ = 0;
  uint64_t underflows_ = 0;
  uint64_t overflows_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace zrelay::load
