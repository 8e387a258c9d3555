// RingBuffer: pure tests, no sockets. The iovec shapes are what readv/writev
// see, so they are checked exactly (base pointers and lengths), and a
// randomized run is checked against a std::deque model byte for byte.
#include "relay/ring_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace zrelay {
namespace {

// Copies `data` into the ring's free space through FreeIovecs, as readv
// would, and commits it. Returns how many bytes fit.
size_t Put(RingBuffer& ring, const std::string& data) {
  struct iovec iov[2];
  int n = ring.FreeIovecs(iov);
  size_t done = 0;
  for (int i = 0; i < n && done < data.size(); ++i) {
    size_t len = std::min(iov[i].iov_len, data.size() - done);
    std::memcpy(iov[i].iov_base, data.data() + done, len);
    done += len;
  }
  ring.Commit(done);
  return done;
}

// Takes up to `max` bytes out through DataIovecs, as writev would.
std::string Take(RingBuffer& ring, size_t max) {
  struct iovec iov[2];
  int n = ring.DataIovecs(iov);
  std::string out;
  for (int i = 0; i < n && out.size() < max; ++i) {
    size_t len = std::min(iov[i].iov_len, max - out.size());
    out.append(static_cast<const char*>(iov[i].iov_base), len);
  }
  ring.Consume(out.size());
  return out;
}

char* Base(const struct iovec& iov) { return static_cast<char*>(iov.iov_base); }

TEST(RingBufferTest, StartsEmptyWithOneContiguousFreeRun) {
  RingBuffer ring(16);
  EXPECT_EQ(ring.capacity(), 16u);
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.free_space(), 16u);
  EXPECT_TRUE(ring.empty());
  EXPECT_FALSE(ring.full());

  struct iovec iov[2];
  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(iov[0].iov_len, 16u);
  EXPECT_EQ(ring.DataIovecs(iov), 0);
  EXPECT_EQ(ring.DataSpan().iov_base, nullptr);
  EXPECT_EQ(ring.DataSpan().iov_len, 0u);
  EXPECT_EQ(ring.FreeSpan().iov_len, 16u);
}

TEST(RingBufferTest, CommitAndConsumeMoveSizeAndKeepOrder) {
  RingBuffer ring(16);
  EXPECT_EQ(Put(ring, "hello"), 5u);
  EXPECT_EQ(ring.size(), 5u);
  EXPECT_EQ(ring.free_space(), 11u);

  struct iovec iov[2];
  ASSERT_EQ(ring.DataIovecs(iov), 1);
  EXPECT_EQ(std::string(Base(iov[0]), iov[0].iov_len), "hello");
  // Head is at 0, so the free space is one run from the data's end to the
  // end of the storage.
  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(iov[0].iov_len, 11u);
  EXPECT_EQ(Base(iov[0]), Base(ring.DataSpan()) + 5);

  EXPECT_EQ(Take(ring, 2), "he");
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(Take(ring, 100), "llo");
  EXPECT_TRUE(ring.empty());
}

TEST(RingBufferTest, FillsExactlyToCapacity) {
  RingBuffer ring(8);
  EXPECT_EQ(Put(ring, "0123456789"), 8u);  // only 8 fit
  EXPECT_TRUE(ring.full());
  EXPECT_EQ(ring.free_space(), 0u);
  struct iovec iov[2];
  EXPECT_EQ(ring.FreeIovecs(iov), 0);
  EXPECT_EQ(ring.FreeSpan().iov_base, nullptr);
  EXPECT_EQ(ring.FreeSpan().iov_len, 0u);
  ASSERT_EQ(ring.DataIovecs(iov), 1);
  EXPECT_EQ(std::string(Base(iov[0]), iov[0].iov_len), "01234567");
}

// head in the middle, data not wrapped: free space is [tail, end) + [0, head).
TEST(RingBufferTest, FreeSpaceWrapsAsTwoIovecs) {
  RingBuffer ring(10);
  ASSERT_EQ(Put(ring, "abcdef"), 6u);
  ASSERT_EQ(Take(ring, 4), "abcd");  // head = 4, data "ef" at [4, 6)
  struct iovec data[2];
  ASSERT_EQ(ring.DataIovecs(data), 1);
  char* base = Base(data[0]) - 4;  // start of the storage

  struct iovec iov[2];
  ASSERT_EQ(ring.FreeIovecs(iov), 2);
  EXPECT_EQ(Base(iov[0]), base + 6);
  EXPECT_EQ(iov[0].iov_len, 4u);
  EXPECT_EQ(Base(iov[1]), base);
  EXPECT_EQ(iov[1].iov_len, 4u);
  EXPECT_EQ(iov[0].iov_len + iov[1].iov_len, ring.free_space());
  // FreeSpan is the first run only (what SSL_read would be given).
  EXPECT_EQ(Base(ring.FreeSpan()), base + 6);
  EXPECT_EQ(ring.FreeSpan().iov_len, 4u);
}

// Data that wraps: DataIovecs is [head, end) + [0, tail), and the free space
// between tail and head is a single run.
TEST(RingBufferTest, DataWrapsAsTwoIovecsAndFreeSpaceIsOneRun) {
  RingBuffer ring(10);
  ASSERT_EQ(Put(ring, "abcdefgh"), 8u);
  ASSERT_EQ(Take(ring, 6), "abcdef");  // head = 6, "gh" at [6, 8)
  ASSERT_EQ(Put(ring, "ijklmn"), 6u);   // "ij" at [8, 10), "klmn" at [0, 4)
  EXPECT_EQ(ring.size(), 8u);

  struct iovec iov[2];
  ASSERT_EQ(ring.DataIovecs(iov), 2);
  EXPECT_EQ(std::string(Base(iov[0]), iov[0].iov_len), "ghij");
  EXPECT_EQ(std::string(Base(iov[1]), iov[1].iov_len), "klmn");
  char* base = Base(iov[1]);
  EXPECT_EQ(Base(iov[0]), base + 6);
  // DataSpan is the first run only (what SSL_write would be given).
  EXPECT_EQ(std::string(Base(ring.DataSpan()), ring.DataSpan().iov_len), "ghij");

  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(Base(iov[0]), base + 4);
  EXPECT_EQ(iov[0].iov_len, 2u);

  EXPECT_EQ(Take(ring, 100), "ghijklmn");
}

// Data ends exactly at the end of the storage: tail wraps to 0, and the free
// space is the single run [0, head).
TEST(RingBufferTest, TailAtEndOfStorageWrapsToFront) {
  RingBuffer ring(8);
  ASSERT_EQ(Put(ring, "abcdefgh"), 8u);
  ASSERT_EQ(Take(ring, 3), "abc");  // head = 3, data [3, 8), tail = 0
  struct iovec iov[2];
  ASSERT_EQ(ring.DataIovecs(iov), 1);
  char* base = Base(iov[0]) - 3;
  EXPECT_EQ(iov[0].iov_len, 5u);
  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(Base(iov[0]), base);
  EXPECT_EQ(iov[0].iov_len, 3u);
  ASSERT_EQ(Put(ring, "XYZ"), 3u);
  EXPECT_TRUE(ring.full());
  EXPECT_EQ(Take(ring, 8), "defghXYZ");
}

// A full ring whose head is not at 0 still reports no free space, and its
// data as two runs.
TEST(RingBufferTest, FullWithHeadInTheMiddle) {
  RingBuffer ring(6);
  ASSERT_EQ(Put(ring, "abcdef"), 6u);
  ASSERT_EQ(Take(ring, 2), "ab");
  ASSERT_EQ(Put(ring, "gh"), 2u);
  EXPECT_TRUE(ring.full());
  struct iovec iov[2];
  EXPECT_EQ(ring.FreeIovecs(iov), 0);
  ASSERT_EQ(ring.DataIovecs(iov), 2);
  EXPECT_EQ(iov[0].iov_len, 4u);
  EXPECT_EQ(iov[1].iov_len, 2u);
  EXPECT_EQ(Take(ring, 6), "cdefgh");
}

// Emptying the ring rewinds it, so the next fill is one contiguous run of the
// whole capacity (one readv iovec, one big SSL record).
TEST(RingBufferTest, RewindsWhenEmptied) {
  RingBuffer ring(10);
  ASSERT_EQ(Put(ring, "abcdefg"), 7u);
  struct iovec iov[2];
  ASSERT_EQ(ring.DataIovecs(iov), 1);
  char* base = Base(iov[0]);
  ASSERT_EQ(Take(ring, 7), "abcdefg");
  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(Base(iov[0]), base);
  EXPECT_EQ(iov[0].iov_len, 10u);
  EXPECT_EQ(Base(ring.FreeSpan()), base);
  EXPECT_EQ(ring.FreeSpan().iov_len, 10u);
}

// A partial consume does not rewind (the remaining bytes stay where they are).
TEST(RingBufferTest, PartialConsumeDoesNotRewind) {
  RingBuffer ring(10);
  ASSERT_EQ(Put(ring, "abcdefg"), 7u);
  ASSERT_EQ(Take(ring, 5), "abcde");
  struct iovec iov[2];
  ASSERT_EQ(ring.DataIovecs(iov), 1);
  EXPECT_EQ(std::string(Base(iov[0]), iov[0].iov_len), "fg");
  ASSERT_EQ(ring.FreeIovecs(iov), 2);
  EXPECT_EQ(iov[0].iov_len + iov[1].iov_len, 8u);
}

TEST(RingBufferTest, ClearDropsDataAndRewinds) {
  RingBuffer ring(10);
  ASSERT_EQ(Put(ring, "abcdefgh"), 8u);
  ASSERT_EQ(Take(ring, 6), "abcdef");
  ASSERT_EQ(Put(ring, "ijkl"), 4u);  // wrapped
  ring.Clear();
  EXPECT_TRUE(ring.empty());
  struct iovec iov[2];
  ASSERT_EQ(ring.FreeIovecs(iov), 1);
  EXPECT_EQ(iov[0].iov_len, 10u);
  ASSERT_EQ(Put(ring, "0123456789"), 10u);
  EXPECT_EQ(Take(ring, 10), "0123456789");
}

TEST(RingBufferTest, CommitOfZeroAndConsumeOfZeroChangeNothing) {
  RingBuffer ring(4);
  ring.Commit(0);
  EXPECT_TRUE(ring.empty());
  ASSERT_EQ(Put(ring, "ab"), 2u);
  ring.Consume(0);
  EXPECT_EQ(ring.size(), 2u);
  EXPECT_EQ(Take(ring, 4), "ab");
}

TEST(RingBufferTest, CapacityOneWorks) {
  RingBuffer ring(1);
  for (char c = 'a'; c <= 'z'; ++c) {
    ASSERT_EQ(Put(ring, std::string(2, c)), 1u);
    EXPECT_TRUE(ring.full());
    ASSERT_EQ(Take(ring, 5), std::string(1, c));
  }
}

// Random Commit/Consume sequences (through the iovecs and through the spans),
// checked against a std::deque after every step: sizes, iovec invariants
// (count, no zero-length iovecs, total length), and every byte read back.
TEST(RingBufferTest, RandomizedAgainstDequeModel) {
  for (size_t capacity : {1u, 2u, 3u, 7u, 64u, 1000u, 4096u}) {
    SCOPED_TRACE("capacity " + std::to_string(capacity));
    std::mt19937_64 rng(capacity * 7919);
    RingBuffer ring(capacity);
    std::deque<char> model;
    uint64_t next_byte = 0;
    for (int step = 0; step < 20000; ++step) {
      const int op = static_cast<int>(rng() % 5);
      if (op <= 1) {  // write through FreeIovecs (readv-like) or FreeSpan
        size_t want = rng() % (capacity + 2);
        std::string data;
        for (size_t i = 0; i < want; ++i) data.push_back(static_cast<char>(next_byte++ * 131));
        size_t put;
        if (op == 0) {
          put = Put(ring, data);
        } else {
          struct iovec span = ring.FreeSpan();
          put = std::min(span.iov_len, data.size());
          if (put > 0) std::memcpy(span.iov_base, data.data(), put);
          ring.Commit(put);
        }
        // Through the iovecs everything that fits goes in; the first span
        // may hold less (it stops at the end of the storage).
        if (op == 0) {
          ASSERT_EQ(put, std::min(want, capacity - model.size()));
        } else {
          ASSERT_LE(put, std::min(want, capacity - model.size()));
        }
        next_byte -= want - put;  // bytes that did not fit were not sent
        model.insert(model.end(), data.begin(), data.begin() + static_cast<long>(put));
      } else if (op <= 3) {  // read through DataIovecs (writev-like) or DataSpan
        size_t want = rng() % (capacity + 2);
        std::string got;
        if (op == 2) {
          got = Take(ring, want);
          ASSERT_EQ(got.size(), std::min(want, model.size()));
        } else {
          struct iovec span = ring.DataSpan();
          size_t n = std::min(span.iov_len, want);
          got.assign(static_cast<const char*>(span.iov_base), n);
          ring.Consume(n);
        }
        ASSERT_LE(got.size(), model.size());
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i], model.front()) << "step " << step << " byte " << i;
          model.pop_front();
        }
      } else {
        if (rng() % 50 == 0) {
          ring.Clear();
          model.clear();
        }
      }
      ASSERT_EQ(ring.size(), model.size());
      ASSERT_EQ(ring.free_space(), capacity - model.size());
      ASSERT_EQ(ring.empty(), model.empty());
      ASSERT_EQ(ring.full(), model.size() == capacity);
      struct iovec iov[2];
      int n = ring.FreeIovecs(iov);
      size_t total = 0;
      for (int i = 0; i < n; ++i) {
        ASSERT_GT(iov[i].iov_len, 0u);
        total += iov[i].iov_len;
      }
      ASSERT_EQ(total, ring.free_space());
      ASSERT_EQ(n == 0, ring.full());
      n = ring.DataIovecs(iov);
      total = 0;
      for (int i = 0; i < n; ++i) {
        ASSERT_GT(iov[i].iov_len, 0u);
        total += iov[i].iov_len;
      }
      ASSERT_EQ(total, ring.size());
      ASSERT_EQ(n == 0, ring.empty());
      if (ring.empty()) {
        // Rewound: the whole capacity is one run.
        ASSERT_EQ(ring.FreeIovecs(iov), 1);
        ASSERT_EQ(iov[0].iov_len, capacity);
      }
    }
  }
}

}  // namespace
}  // namespace zrelay
