#include "tools/load/pattern.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace zrelay::load {
namespace {

constexpr char kStreamMagic[8] = {'Z', 'R', 'L', 'O', 'A', 'D', 'v', '1'};
constexpr char kReportMagic[8] = {'Z', 'R', 'L', 'V', 'R', 'P', 'T', '1'};

void BuildHeader(uint64_t key, uint8_t* out) {
  std::memcpy(out, kStreamMagic, sizeof(kStreamMagic));
  PutU64(out + 8, key);
}

uint64_t PhaseOf(uint64_t key) { return Mix64(key) % kPatternPeriod; }

}  // namespace

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

const uint8_t* PatternTable() {
  static const std::unique_ptr<uint8_t[]> table = [] {
    auto t = std::make_unique<uint8_t[]>(kPatternPeriod);
    uint64_t s = 0x5a52454c41594c44ULL;  // any non-zero xorshift seed
    for (uint64_t i = 0; i < kPatternPeriod; i += 8) {
      s ^= s >> 12;
      s ^= s << 25;
      s ^= s >> 27;
      uint64_t word = s * 0x2545f4914f6cdd1dULL;
      for (uint64_t b = 0; b < 8 && i + b < kPatternPeriod; ++b) {
        t[i + b] = static_cast<uint8_t>(word >> (8 * b));
      }
    }
    return t;
  }();
  return table.get();
}

StreamWriter::StreamWriter(uint64_t key) : key_(key), phase_(PhaseOf(key)) {
  BuildHeader(key, header_);
  PatternTable();  // build outside the data path
}

const uint8_t* StreamWriter::Next(size_t max, size_t* len) const {
  if (offset_ < kStreamHeaderSize) {
    *len = std::min<size_t>(max, kStreamHeaderSize - offset_);
    return header_ + offset_;
  }
  uint64_t pos = (phase_ + offset_ - kStreamHeaderSize) % kPatternPeriod;
  *len = std::min<uint64_t>(max, kPatternPeriod - pos);
  return PatternTable() + pos;
}

StreamChecker::StreamChecker(std::optional<uint64_t> expected_key) : expected_key_(expected_key) {
  if (expected_key_) {
    key_ = expected_key_;
    phase_ = PhaseOf(*expected_key_);
  }
  PatternTable();
}

void StreamChecker::Mismatch(uint64_t offset, uint64_t count) {
  if (first_mismatch_ == kNoMismatch) first_mismatch_ = offset;
  mismatches_ += count;
}

void StreamChecker::Feed(const uint8_t* data, size_t len) {
  if (offset_ < kStreamHeaderSize && len > 0) {
    size_t n = std::min<size_t>(len, kStreamHeaderSize - offset_);
    FeedHeader(data, n);
    data += n;
    len -= n;
  }
  if (len > 0) FeedPattern(data, len);
}

void StreamChecker::FeedHeader(const uint8_t* data, size_t len) {
  std::memcpy(header_ + offset_, data, len);
  offset_ += len;
  if (offset_ < kStreamHeaderSize) return;
  // The whole header is in: check the magic, then the key.
  for (size_t i = 0; i < sizeof(kStreamMagic); ++i) {
    if (header_[i] != static_cast<uint8_t>(kStreamMagic[i])) Mismatch(i, 1);
  }
  uint64_t key = GetU64(header_ + 8);
  if (expected_key_) {
    uint8_t want[kStreamHeaderSize];
    BuildHeader(*expected_key_, want);
    for (size_t i = 8; i < kStreamHeaderSize; ++i) {
      if (header_[i] != want[i]) Mismatch(i, 1);
    }
  } else {
    key_ = key;
    phase_ = PhaseOf(key);
  }
}

void StreamChecker::FeedPattern(const uint8_t* data, size_t len) {
  const uint8_t* table = PatternTable();
  while (len > 0) {
    uint64_t pos = (phase_ + offset_ - kStreamHeaderSize) % kPatternPeriod;
    size_t n = std::min<uint64_t>(len, kPatternPeriod - pos);
    if (std::memcmp(data, table + pos, n) != 0) {
      for (size_t i = 0; i < n; ++i) {
        if (data[i] != table[pos + i]) Mismatch(offset_ + i, 1);
      }
    }
    offset_ += n;
    data += n;
    len -= n;
  }
}

void EncodeVerifyReport(const VerifyReport& report, uint8_t out[kVerifyReportSize]) {
  std::memcpy(out, kReportMagic, sizeof(kReportMagic));
  PutU64(out + 8, report.bytes);
  PutU64(out + 16, report.mismatches);
  PutU64(out + 24, report.first_mismatch);
}

std::optional<VerifyReport> DecodeVerifyReport(const uint8_t in[kVerifyReportSize]) {
  if (std::memcmp(in, kReportMagic, sizeof(kReportMagic)) != 0) return std::nullopt;
  return VerifyReport{GetU64(in + 8), GetU64(in + 16), GetU64(in + 24)};
}

void PutU64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t GetU64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

}  // namespace zrelay::load
