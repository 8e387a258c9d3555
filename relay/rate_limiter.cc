#include "relay/rate_limiter.h"

#include <algorithm>

namespace zrelay {
namespace {

constexpr uint64_t kNanosPerSecond = 1'000'000'000;
constexpr uint64_t kMinDefaultBurst = 16 << 10;

uint64_t BurstOf(const RateLimit& limit) {
  if (limit.burst > 0) return limit.burst;
  return std::max<uint64_t>(limit.bytes_per_second / 10, kMinDefaultBurst);
}

}  // namespace

TokenBucket::TokenBucket(const RateLimit& limit, TimePoint now)
    : rate_(limit.bytes_per_second),
      burst_(BurstOf(limit)),
      nano_tokens_(static_cast<unsigned __int128>(burst_) * kNanosPerSecond),
      last_(now) {}

void TokenBucket::Refill(TimePoint now) {
  if (now <= last_) return;
  const uint64_t elapsed_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
  const unsigned __int128 full = static_cast<unsigned __int128>(burst_) * kNanosPerSecond;
  nano_tokens_ = std::min(full, nano_tokens_ + static_cast<unsigned __int128>(elapsed_ns) * rate_);
  last_ = now;
}

uint64_t TokenBucket::Available(TimePoint now) {
  Refill(now);
  return static_cast<uint64_t>(nano_tokens_ / kNanosPerSecond);
}

void TokenBucket::Consume(uint64_t bytes, TimePoint now) {
  Refill(now);
  const unsigned __int128 taken = static_cast<unsigned __int128>(bytes) * kNanosPerSecond;
  nano_tokens_ = taken >= nano_tokens_ ? 0 : nano_tokens_ - taken;
}

Duration TokenBucket::WaitFor(TimePoint now) {
  Refill(now);
  const uint64_t want = std::clamp<uint64_t>(rate_ / 100, 1, burst_);
  const unsigned __int128 needed = static_cast<unsigned __int128>(want) * kNanosPerSecond;
  if (nano_tokens_ >= needed) return Duration::zero();
  // Round up: waking a nanosecond early would find too few tokens.
  const unsigned __int128 missing = needed - nano_tokens_;
  const uint64_t ns = static_cast<uint64_t>((missing + rate_ - 1) / rate_);
  return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(ns));
}

}  // namespace zrelay
