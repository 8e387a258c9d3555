// The bulk --verify stream: what the writer produces, the checker accepts,
// and every kind of damage the checker must see.
#include "tools/load/pattern.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace zrelay::load {
namespace {

// `len` bytes of stream `key`, as the writer produces them, in spans of at
// most `max` bytes.
std::vector<uint8_t> Produce(uint64_t key, size_t len, size_t max = 1 << 16) {
  StreamWriter writer(key);
  std::vector<uint8_t> out;
  while (out.size() < len) {
    size_t n = 0;
    const uint8_t* p = writer.Next(std::min(max, len - out.size()), &n);
    EXPECT_GT(n, 0u);
    out.insert(out.end(), p, p + n);
    writer.Advance(n);
  }
  return out;
}

// Feeds `data` to a checker in uneven pieces.
StreamChecker Check(const std::vector<uint8_t>& data, std::optional<uint64_t> key = std::nullopt) {
  StreamChecker checker(key);
  size_t off = 0;
  for (size_t piece = 1; off < data.size(); piece = piece * 3 + 7) {
    size_t n = std::min(piece % 100000 + 1, data.size() - off);
    checker.Feed(data.data() + off, n);
    off += n;
  }
  return checker;
}

TEST(PatternTest, StreamStartsWithHeaderAndKey) {
  std::vector<uint8_t> s = Produce(0x1122334455667788ULL, 32);
  EXPECT_EQ(std::memcmp(s.data(), "ZRLOADv1", 8), 0);
  EXPECT_EQ(s[8], 0x88);
  EXPECT_EQ(s[15], 0x11);
}

TEST(PatternTest, CleanStreamAcrossTheTableWrapChecksOut) {
  // Longer than two periods of the table, so spans wrap around it.
  const size_t len = 2 * kPatternPeriod + 12345;
  std::vector<uint8_t> s = Produce(42, len, 200000);
  StreamChecker by_header = Check(s);
  EXPECT_EQ(by_header.bytes(), len);
  EXPECT_EQ(by_header.mismatches(), 0u);
  EXPECT_EQ(by_header.first_mismatch(), kNoMismatch);
  EXPECT_EQ(by_header.key().value(), 42u);
  StreamChecker by_key = Check(s, 42);
  EXPECT_EQ(by_key.mismatches(), 0u);
}

TEST(PatternTest, SpanSizeDoesNotChangeTheBytes) {
  EXPECT_EQ(Produce(9, 300000, 1), Produce(9, 300000, 1 << 20));
}

TEST(PatternTest, OneFlippedByteIsOneMismatchAtItsOffset) {
  std::vector<uint8_t> s = Produce(7, 1 << 20);
  s[777777] ^= 0x01;
  StreamChecker c = Check(s);
  EXPECT_EQ(c.mismatches(), 1u);
  EXPECT_EQ(c.first_mismatch(), 777777u);
}

TEST(PatternTest, ADroppedByteShiftsEverythingAfterIt) {
  std::vector<uint8_t> s = Produce(7, 100000);
  s.erase(s.begin() + 5000);
  StreamChecker c = Check(s);
  EXPECT_GT(c.mismatches(), 90000u);  // ~255/256 of the shifted bytes differ
  EXPECT_EQ(c.first_mismatch(), 5000u);
}

TEST(PatternTest, ADuplicatedChunkIsDetected) {
  std::vector<uint8_t> s = Produce(7, 100000);
  s.insert(s.begin() + 60000, s.begin() + 50000, s.begin() + 51000);
  EXPECT_GT(Check(s).mismatches(), 0u);
}

TEST(PatternTest, AnotherStreamsBytesAreDetected) {
  // The relay mixed up two pairs: stream 8's bytes arrive where 7's should.
  std::vector<uint8_t> mine = Produce(7, 100000);
  std::vector<uint8_t> theirs = Produce(8, 100000);
  std::vector<uint8_t> s(mine.begin(), mine.begin() + 40000);
  s.insert(s.end(), theirs.begin() + 40000, theirs.end());
  StreamChecker c = Check(s, 7);
  EXPECT_GT(c.mismatches(), 50000u);
  EXPECT_EQ(c.first_mismatch(), 40000u);
}

TEST(PatternTest, WrongKeyInAnEchoIsDetected) {
  std::vector<uint8_t> s = Produce(8, 1000);
  EXPECT_GT(Check(s, /*key=*/7).mismatches(), 0u);
}

TEST(PatternTest, CorruptMagicIsDetected) {
  std::vector<uint8_t> s = Produce(7, 1000);
  s[0] = 'X';
  StreamChecker c = Check(s);
  EXPECT_EQ(c.mismatches(), 1u);
  EXPECT_EQ(c.first_mismatch(), 0u);
}

TEST(PatternTest, VerifyReportRoundTrips) {
  uint8_t buf[kVerifyReportSize];
  EncodeVerifyReport({123456789012ULL, 3, 4096}, buf);
  auto r = DecodeVerifyReport(buf);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->bytes, 123456789012ULL);
  EXPECT_EQ(r->mismatches, 3u);
  EXPECT_EQ(r->first_mismatch, 4096u);
  buf[2] ^= 1;
  EXPECT_FALSE(DecodeVerifyReport(buf).has_value());
}

}  // namespace
}  // namespace zrelay::load
