#include "relay/connect_histogram.h"

#include <algorithm>
#include <chrono>

namespace zrelay {

void ConnectHistogram::Observe(Duration latency) {
  const double seconds = std::chrono::duration<double>(latency).count();
  // The first bound >= the latency: its bucket holds it (Prometheus' "le").
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kConnectSecondsBounds.begin(), kConnectSecondsBounds.end(), seconds) -
      kConnectSecondsBounds.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count();
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(nanos, 0)),
                       std::memory_order_relaxed);
}

HistogramSnapshot ConnectHistogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds_seconds.assign(kConnectSecondsBounds.begin(), kConnectSecondsBounds.end());
  s.counts.reserve(counts_.size());
  for (const auto& c : counts_) {
    s.counts.push_back(c.load(std::memory_order_relaxed));
    s.count += s.counts.back();
  }
  s.sum_seconds = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

}  // namespace zrelay
