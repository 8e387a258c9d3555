// The datagrams of zrelay-load udp: what request `seq` of a flow carries, so
// an echo can be checked byte for byte.
//
// A datagram of `size` bytes is the keyed pattern of pattern.h starting at a
// phase drawn from (flow key, seq), so every request of every flow differs
// from its first byte on. From kUdpHeaderSize bytes up, the first 16 bytes
// are replaced by a header: the flow's key and the sequence number (u64
// little endian each), so a reply says which request it answers. Smaller
// datagrams carry no header; a reply to an earlier request is then found by
// comparing it with the few requests before (the flow keeps no more).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace zrelay::load {

inline constexpr size_t kUdpHeaderSize = 16;

// Writes the `size` bytes of request `seq` of flow `key` to `out`.
// size <= kMaxUdpSize (config.h).
void FillDatagram(uint64_t key, uint64_t seq, size_t size, uint8_t* out);

// The sequence number a datagram's header names, when it has one
// (len >= kUdpHeaderSize) and names flow `key`; nullopt otherwise.
std::optional<uint64_t> HeaderSeq(uint64_t key, const uint8_t* data, size_t len);

}  // namespace zrelay::load
