#include "tools/load/udp_payload.h"

#include <algorithm>
#include <cstring>

#include "tools/load/pattern.h"

namespace zrelay::load {

void FillDatagram(uint64_t key, uint64_t seq, size_t size, uint8_t* out) {
  const uint8_t* table = PatternTable();
  uint64_t pos = Mix64(key ^ Mix64(seq)) % kPatternPeriod;
  // size < kPatternPeriod: at most one wrap of the table.
  size_t first = static_cast<size_t>(std::min<uint64_t>(size, kPatternPeriod - pos));
  std::memcpy(out, table + pos, first);
  std::memcpy(out + first, table, size - first);
  if (size >= kUdpHeaderSize) {
    PutU64(out, key);
    PutU64(out + 8, seq);
  }
}

std::optional<uint64_t> HeaderSeq(uint64_t key, const uint8_t* data, size_t len) {
  if (len < kUdpHeaderSize || GetU64(data) != key) return std::nullopt;
  return GetU64(data + 8);
}

}  // namespace zrelay::load
