// RelaxedCounter: a counter one thread writes and any thread reads.
//
// The worker that owns it is its only writer, so an increment needs no
// atomic read-modify-write: a relaxed load and a relaxed store compile to
// plain moves on x86 (no lock prefix), as cheap as the uint64_t it
// replaces. Readers on other threads (Engine::Metrics) see a value that is
// whole, never torn, and at most a few increments old.
#pragma once

#include <atomic>
#include <cstdint>

namespace zrelay {

class RelaxedCounter {
 public:
  // The owning thread only.
  void Add(uint64_t n = 1) { Set(Get() + n); }
  void Sub(uint64_t n = 1) { Set(Get() - n); }  // gauges (in use, pooled)
  // Any thread.
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  void Set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }

  std::atomic<uint64_t> value_{0};
};

}  // namespace zrelay
