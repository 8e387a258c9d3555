// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016): a lookup table of prime size
// M filled by letting each backend, in turn, claim the next free slot of its
// own permutation of 0..M-1. A client's IP address hashes to a slot; the slot
// names its backend.
//
// Deterministic across processes and hosts: the hash is written here (no
// std::hash, which may differ between builds), and backends take their turns
// in the order of their address text, not their list order, so two lists
// with the same backends and weights build the same table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/address.h"
#include "relay/balancer.h"

namespace zrelay {

// 64-bit FNV-1a over `bytes` (its offset basis xor `seed`), finished with
// MurmurHash3's fmix64 so that every input bit reaches the low bits a
// modulo keeps.
uint64_t BalancerHash(std::string_view bytes, uint64_t seed);

// The hash of a client's IP address, port ignored: a client keeps its
// backend across connections. An IPv4-mapped IPv6 address hashes as the
// IPv4 address (a dual-stack listener sees IPv4 clients that way). Unix
// clients have no address to tell them apart: they all hash to one key.
uint64_t ClientKey(const Address& client);

class MaglevTable {
 public:
  // The smallest prime >= max(65537, 100 * backends): the paper keeps M
  // above 100 N so that each backend's share is within about 1% of its
  // weight.
  static size_t SizeFor(size_t backends);

  // Every backend of the set takes slots, healthy or not (lookups walk past
  // unhealthy ones), in proportion to its weight: within a round, a backend
  // of the largest weight claims a slot every turn, one of half that weight
  // every other turn.
  static MaglevTable Build(const BackendSet& backends);

  size_t size() const { return slots_.size(); }
  // The backend index that owns `slot` (< size()).
  uint32_t at(size_t slot) const { return slots_[slot]; }
  size_t SlotOf(const Address& client) const { return ClientKey(client) % slots_.size(); }

 private:
  explicit MaglevTable(std::vector<uint32_t> slots) : slots_(std::move(slots)) {}

  std::vector<uint32_t> slots_;
};

}  // namespace zrelay
