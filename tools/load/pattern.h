// The verifiable byte stream of bulk --verify, and the backend's verify report.
//
// A stream is a 16-byte header ("ZRLOADv1" + the stream's 64-bit key, little
// endian) followed by a keyed pattern: pattern byte i of key k is
// table[(phase(k) + i) mod P], where the table is P = 1048573 (a prime) bytes
// of xorshift64* output built once per process. Sending is then a send() out
// of the table and checking a memcmp against it: verification costs no more
// than a copy. Every byte is checked at its exact offset, so a flipped,
// dropped, duplicated or reordered byte is a mismatch, as are bytes from the
// wrong stream (another key starts at another phase). What this cannot see is
// a loss or duplication of exactly a multiple of P bytes; the byte counts,
// which both ends compare, catch that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace zrelay::load {

inline constexpr uint64_t kPatternPeriod = 1048573;
inline constexpr size_t kStreamHeaderSize = 16;
inline constexpr size_t kVerifyReportSize = 32;
inline constexpr uint64_t kNoMismatch = UINT64_MAX;

// The shared table (kPatternPeriod bytes). Thread-safe; built on first use.
const uint8_t* PatternTable();

// Produces the bytes of stream `key` in order, as contiguous spans that point
// into the header or the table (no copy).
class StreamWriter {
 public:
  explicit StreamWriter(uint64_t key);

  // The next bytes of the stream at offset(): at most `max`, at least 1 when
  // max > 0. Spans stop at the header end and at the table's wrap point.
  const uint8_t* Next(size_t max, size_t* len) const;
  void Advance(size_t n) { offset_ += n; }
  uint64_t offset() const { return offset_; }
  uint64_t key() const { return key_; }

 private:
  uint64_t key_;
  uint64_t phase_;
  uint64_t offset_ = 0;
  uint8_t header_[kStreamHeaderSize];
};

// Checks received bytes against the stream they should be. Feed them in
// order; mismatched bytes are counted, and checking goes on after one (a
// flipped byte is one mismatch; a shifted stream is many).
class StreamChecker {
 public:
  // With `expected_key` (an echo of our own stream) the header must carry it;
  // without, the key is read from the header (a backend's source stream).
  explicit StreamChecker(std::optional<uint64_t> expected_key = std::nullopt);

  void Feed(const uint8_t* data, size_t len);

  uint64_t bytes() const { return offset_; }
  uint64_t mismatches() const { return mismatches_; }
  uint64_t first_mismatch() const { return first_mismatch_; }  // kNoMismatch if none
  std::optional<uint64_t> key() const { return key_; }

 private:
  void FeedHeader(const uint8_t* data, size_t len);
  void FeedPattern(const uint8_t* data, size_t len);
  void Mismatch(uint64_t offset, uint64_t count);

  std::optional<uint64_t> expected_key_;
  std::optional<uint64_t> key_;
  uint64_t phase_ = 0;
  uint64_t offset_ = 0;
  uint64_t mismatches_ = 0;
  uint64_t first_mismatch_ = kNoMismatch;
  uint8_t header_[kStreamHeaderSize] = {};
};

// What a verify backend sends back when the client half-closes: "ZRLVRPT1",
// then bytes checked, mismatched bytes and the first mismatch offset
// (kNoMismatch if none), each u64 little endian.
struct VerifyReport {
  uint64_t bytes = 0;
  uint64_t mismatches = 0;
  uint64_t first_mismatch = kNoMismatch;
};
void EncodeVerifyReport(const VerifyReport& report, uint8_t out[kVerifyReportSize]);
// nullopt when the magic is wrong.
std::optional<VerifyReport> DecodeVerifyReport(const uint8_t in[kVerifyReportSize]);

// A well-mixed 64-bit function (splitmix64's finalizer), for keys and phases.
uint64_t Mix64(uint64_t x);

// 8 bytes, little-endian: the wire form of the headers' numbers.
void PutU64(uint8_t* out, uint64_t v);
uint64_t GetU64(const uint8_t* in);

}  // namespace zrelay::load
