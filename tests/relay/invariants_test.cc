// The relay's buffer invariants are ZR_CHECKs: on in the -c opt build too,
// where a ring consumed past its end would otherwise corrupt the stream
// (these were asserts, compiled out by NDEBUG).
#include <gtest/gtest.h>

#include "relay/ring_buffer.h"

namespace zrelay {
namespace {

TEST(RelayInvariantsDeathTest, RingRefusesToConsumeMoreThanItHolds) {
  RingBuffer ring(16);
  ring.Commit(4);
  EXPECT_DEATH(ring.Consume(5),
               "CHECK failed at relay/ring_buffer.cc:[0-9]+: .*consume 5 bytes of 4 held");
  EXPECT_EQ(ring.size(), 4u);
}

TEST(RelayInvariantsDeathTest, RingRefusesToCommitPastItsCapacity) {
  RingBuffer ring(16);
  ring.Commit(10);
  EXPECT_DEATH(ring.Commit(7), "commit 7 bytes into 6 free");
}

}  // namespace
}  // namespace zrelay
