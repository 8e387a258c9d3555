// TokenBucket: one way's rate limit (RateLimit), as pure arithmetic on
// TimePoints, so it can be driven by a fake clock in tests.
//
// The bucket holds up to `burst` tokens (one per byte) and gains
// `bytes_per_second` of them per second, starting full. The pump reads no
// more than Available() says and Consume()s what it read; when nothing is
// available it asks WaitFor() how long until enough tokens for a read worth
// making, and a timer resumes the direction then.
#pragma once

#include <cstdint>

#include "engine/clock.h"
#include "relay/relay.h"

namespace zrelay {

class TokenBucket {
 public:
  // `limit.bytes_per_second` > 0. burst 0: bytes_per_second / 10, at least
  // 16 KiB (relay.h).
  TokenBucket(const RateLimit& limit, TimePoint now);

  uint64_t rate() const { return rate_; }
  uint64_t burst() const { return burst_; }

  // Whole tokens available at `now`.
  uint64_t Available(TimePoint now);
  // Takes `bytes` tokens (no more than Available() said).
  void Consume(uint64_t bytes, TimePoint now);
  // How long from `now` until the bucket holds a read's worth of tokens:
  // about 10 ms of the rate (at least one byte, at most the burst), so a
  // slow limit still moves in a few reads per second instead of byte by
  // byte, and a fast one resumes often enough to stay smooth.
  Duration WaitFor(TimePoint now);

 private:
  void Refill(TimePoint now);

  uint64_t rate_;
  uint64_t burst_;
  // Tokens in nanobyte units (bytes * 1e9), so that refilling over a few
  // microseconds at a slow rate loses no fraction of a byte.
  unsigned __int128 nano_tokens_;
  TimePoint last_;
};

}  // namespace zrelay
