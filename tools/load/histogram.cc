#include "tools/load/histogram.h"

#include <algorithm>
#include <cmath>

namespace zrelay::load {
namespace {

constexpr uint64_t kSubBucketMask = Histogram::kSubBucketCount - 1;

// Bucket b holds values in [256 << (b - 1), 256 << b) with a step of 1 << b;
// bucket 0 holds [0, 256) with a step of 1.
int BucketOf(uint64_t value) {
  int pow2_ceiling = 64 - __builtin_clzll(value | kSubBucketMask);
  return pow2_ceiling - (Histogram::kSubBucketHalfMagnitude + 1);
}

constexpr size_t CountsLength() {
  size_t buckets = 1;
  uint64_t smallest_untrackable = Histogram::kSubBucketCount;
  while (smallest_untrackable <= Histogram::kHighest) {
    smallest_untrackable <<= 1;
    ++buckets;
  }
  return (buckets + 1) * Histogram::kSubBucketHalfCount;
}

}  // namespace

Histogram::Histogram() : counts_(CountsLength(), 0) {}

size_t Histogram::counts_length() { return CountsLength(); }

size_t Histogram::IndexOf(uint64_t value) {
  int bucket = BucketOf(value);
  uint64_t sub = value >> bucket;
  return ((static_cast<size_t>(bucket) + 1) << kSubBucketHalfMagnitude) +
         static_cast<size_t>(sub - kSubBucketHalfCount);
}

uint64_t Histogram::ValueAtIndex(size_t index) {
  int bucket = static_cast<int>(index >> kSubBucketHalfMagnitude) - 1;
  uint64_t sub = (index & (kSubBucketHalfCount - 1)) + kSubBucketHalfCount;
  if (bucket < 0) {
    sub -= kSubBucketHalfCount;
    bucket = 0;
  }
  return sub << bucket;
}

uint64_t Histogram::LowestEquivalent(uint64_t value) {
  int bucket = BucketOf(value);
  return (value >> bucket) << bucket;
}

uint64_t Histogram::HighestEquivalent(uint64_t value) {
  int bucket = BucketOf(value);
  return LowestEquivalent(value) + (uint64_t{1} << bucket) - 1;
}

void Histogram::RecordN(uint64_t value, uint64_t count) {
  if (count == 0) return;
  if (value < kLowest) {
    value = kLowest;
    underflows_ += count;
  } else if (value > kHighest) {
    value = kHighest;
    overflows_ += count;
  }
  counts_[IndexOf(value)] += count;
  total_ += count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value) * count;
}

void Histogram::Merge(const Histogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  underflows_ += other.underflows_;
  overflows_ += other.overflows_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = underflows_ = overflows_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double Histogram::mean() const { return total_ ? static_cast<double>(sum_ / total_) : 0.0; }

uint64_t Histogram::ValueAtPercentile(double p) const {
  if (total_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  rank = std::clamp<uint64_t>(rank, 1, total_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(HighestEquivalent(ValueAtIndex(i)), max_);
  }
  return max_;
}

}  // namespace zrelay::load
