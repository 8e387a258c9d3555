// TokenBucket on a fake clock: it starts full, refills at its rate up to its
// burst, never lends more than it holds, and says how long until a read is
// worth making.
#include "relay/rate_limiter.h"

#include <gtest/gtest.h>

namespace zrelay {
namespace {

const TimePoint kStart = TimePoint() + seconds(1000);

TEST(TokenBucketTest, StartsFullAndRefillsAtItsRate) {
  TokenBucket bucket({.bytes_per_second = 1000, .burst = 500}, kStart);
  EXPECT_EQ(bucket.Available(kStart), 500u);
  bucket.Consume(500, kStart);
  EXPECT_EQ(bucket.Available(kStart), 0u);
  EXPECT_EQ(bucket.Available(kStart + milliseconds(100)), 100u);
  EXPECT_EQ(bucket.Available(kStart + milliseconds(250)), 250u);
  // Never more than the burst, however long it was quiet.
  EXPECT_EQ(bucket.Available(kStart + seconds(60)), 500u);
}

TEST(TokenBucketTest, KeepsFractionsOfAByteAcrossManySmallSteps) {
  // 3 bytes a second, looked at every millisecond: 1000 looks of 0.003
  // bytes each must still add up to 3 bytes.
  TokenBucket bucket({.bytes_per_second = 3, .burst = 3}, kStart);
  bucket.Consume(3, kStart);
  TimePoint now = kStart;
  for (int i = 0; i < 1000; ++i) {
    now += milliseconds(1);
    (void)bucket.Available(now);
  }
  EXPECT_EQ(bucket.Available(now), 3u);
}

TEST(TokenBucketTest, DefaultBurstIsATenthOfTheRateAndAtLeast16KiB) {
  EXPECT_EQ(TokenBucket({.bytes_per_second = 10 << 20}, kStart).burst(), 1u << 20);
  EXPECT_EQ(TokenBucket({.bytes_per_second = 1000}, kStart).burst(), 16u << 10);
}

// Whatever the pattern of reads, what was consumed by time t never exceeds
// burst + rate * t: the bound the relay's rate limit rests on.
TEST(TokenBucketTest, ConsumedNeverExceedsBurstPlusRateTimesTime) {
  const uint64_t rate = 1 << 20, burst = 64 << 10;
  TokenBucket bucket({.bytes_per_second = rate, .burst = burst}, kStart);
  uint64_t consumed = 0;
  TimePoint now = kStart;
  for (int i = 0; i < 5000; ++i) {
    now += microseconds(137 + (i * 7919) % 3000);  // uneven steps
    const uint64_t available = bucket.Available(now);
    const uint64_t take = available / (1 + i % 3);  // sometimes all, sometimes less
    bucket.Consume(take, now);
    consumed += take;
    const double t = std::chrono::duration<double>(now - kStart).count();
    ASSERT_LE(static_cast<double>(consumed), static_cast<double>(burst) + rate * t) << i;
  }
  // And it lends what it may: over ~7.5 s, within a burst of rate * t.
  const double t = std::chrono::duration<double>(now - kStart).count();
  EXPECT_GE(static_cast<double>(consumed), rate * t - 2.0 * burst);
}

TEST(TokenBucketTest, WaitForIsTheTimeUntilAReadsWorth) {
  // A read's worth: 10 ms of the rate.
  TokenBucket bucket({.bytes_per_second = 100000, .burst = 20000}, kStart);
  EXPECT_EQ(bucket.WaitFor(kStart), Duration::zero());
  bucket.Consume(20000, kStart);
  EXPECT_EQ(bucket.WaitFor(kStart), milliseconds(10));
  EXPECT_EQ(bucket.WaitFor(kStart + milliseconds(4)), milliseconds(6));
  EXPECT_GE(bucket.Available(kStart + milliseconds(10)), 1000u);
  // A burst smaller than 10 ms of the rate caps the read's worth.
  TokenBucket small({.bytes_per_second = 100000, .burst = 100}, kStart);
  small.Consume(100, kStart);
  EXPECT_EQ(small.WaitFor(kStart), milliseconds(1));
  // A slow rate waits for one byte at least.
  TokenBucket slow({.bytes_per_second = 10, .burst = 10}, kStart);
  slow.Consume(10, kStart);
  EXPECT_EQ(slow.WaitFor(kStart), milliseconds(100));
}

}  // namespace
}  // namespace zrelay
