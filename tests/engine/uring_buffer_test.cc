// UringBuffer's per-thread free list: a buffer given back is the next one
// taken, the list keeps at most kKeptPerThread, and a buffer given back on
// another thread joins that thread's list (freed at its exit: LeakSanitizer
// checks that under ASan).
#include "engine/uring_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace zrelay {
namespace {

TEST(UringBufferTest, AGivenBackBufferIsTakenAgain) {
  UringBuffer first = TakeUringBuffer();
  std::memset(first.get(), 'x', kUringBufferBytes);  // all of it is ours
  const char* address = first.get();
  const size_t kept = UringBuffersKept();
  first.reset();
  EXPECT_EQ(UringBuffersKept(), kept + 1);
  UringBuffer again = TakeUringBuffer();
  EXPECT_EQ(again.get(), address);
  EXPECT_EQ(UringBuffersKept(), kept);
}

TEST(UringBufferTest, KeepsAtMostItsCap) {
  std::vector<UringBuffer> taken;
  for (size_t i = 0; i < kKeptPerThread + 10; ++i) taken.push_back(TakeUringBuffer());
  EXPECT_EQ(UringBuffersKept(), 0u);
  taken.clear();
  EXPECT_EQ(UringBuffersKept(), kKeptPerThread) << "the rest went back to the allocator";
}

TEST(UringBufferTest, GivenBackOnAnotherThreadJoinsThatThreadsList) {
  UringBuffer buffer = TakeUringBuffer();
  const size_t kept_here = UringBuffersKept();
  size_t kept_there = 0;
  std::thread other([&] {
    buffer.reset();
    kept_there = UringBuffersKept();
  });
  other.join();
  EXPECT_EQ(kept_there, 1u);
  EXPECT_EQ(UringBuffersKept(), kept_here);
}

}  // namespace
}  // namespace zrelay
