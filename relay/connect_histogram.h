// ConnectHistogram: backend connect latencies, in the buckets of
// kConnectSecondsBounds. Every worker connecting to the endpoint observes
// into it (an atomic add per connect, never per byte); any thread reads it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "engine/clock.h"
#include "relay/metrics.h"

namespace zrelay {

class ConnectHistogram {
 public:
  // Any thread.
  void Observe(Duration latency);
  // Any thread. Observations racing with it may be in the counts and not
  // yet in the sum, or the other way round.
  HistogramSnapshot Snapshot() const;

 private:
  // counts_[i]: latencies <= kConnectSecondsBounds[i] (and above the bound
  // before); the last one: above every bound.
  std::array<std::atomic<uint64_t>, kConnectSecondsBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_nanos_{0};
};

}  // namespace zrelay
