// CidrBlock: an IPv4 or IPv6 network ("10.0.0.0/8", "::1/128", "192.0.2.7"
// for a single host), to say which peers a listener trusts.
//
//   auto block = CidrBlock::Parse("10.0.0.0/8");
//   if (block.ok() && block->Contains(peer)) { ... }
//
// Host bits set below the prefix ("10.0.0.1/8") are an error, as a typo is
// more likely than intent. An IPv4-mapped IPv6 peer (::ffff:10.0.0.1, what a
// dual-stack socket reports) matches the IPv4 block it maps to. Unix
// addresses match no block.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/address.h"
#include "engine/result.h"

namespace zrelay {

class CidrBlock {
 public:
  // Errors quote the text and say what is wrong ("bad network '10.0.0.1/8':
  // host bits set below /8").
  static Result<CidrBlock> Parse(std::string_view text);

  bool Contains(const Address& address) const;
  int family() const { return family_; }  // AF_INET or AF_INET6
  int prefix() const { return prefix_; }
  // "10.0.0.0/8", "::1/128": Parse(ToString()) round-trips.
  std::string ToString() const;

 private:
  CidrBlock() = default;
  int family_ = 0;
  int prefix_ = 0;
  uint8_t network_[16] = {};  // network byte order; IPv4 uses the first 4
};

}  // namespace zrelay
