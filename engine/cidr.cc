#include "engine/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace zrelay {
namespace {

Error Bad(std::string_view text, std::string_view what) {
  std::string message = "bad network '";
  message.append(text);
  message += "': ";
  message.append(what);
  return Error::Invalid(std::move(message));
}

// Whether the first `bits` bits of `a` and `b` are equal.
bool SamePrefix(const uint8_t* a, const uint8_t* b, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

Result<CidrBlock> CidrBlock::Parse(std::string_view text) {
  if (text.empty()) return Bad(text, "empty network");
  // The address goes on to inet_pton as a C string, which a NUL would cut short.
  if (text.find('\0') != std::string_view::npos) return Bad(text, "contains a NUL byte");
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));

  CidrBlock block;
  if (inet_pton(AF_INET, host.c_str(), block.network_) == 1) {
    block.family_ = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), block.network_) == 1) {
    block.family_ = AF_INET6;
  } else {
    return Bad(text, "'" + host + "' is not an IPv4 or IPv6 address");
  }
  const int max_prefix = block.family_ == AF_INET ? 32 : 128;

  block.prefix_ = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    // At most 3 digits, no sign, no leading zero: "/08" is more likely a typo than /8.
    const bool number =
        !digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        (digits.size() == 1 || digits[0] != '0');
    int prefix = 0;
    if (number) {
      for (char c : digits) prefix = prefix * 10 + (c - '0');
    }
    if (!number || prefix > max_prefix) {
      return Bad(text, "prefix length '" + std::string(digits) + "' is not a number 0.." +
                           std::to_string(max_prefix));
    }
    block.prefix_ = prefix;
  }

  for (int bit = block.prefix_; bit < max_prefix; ++bit) {
    if (block.network_[bit / 8] & (0x80 >> (bit % 8))) {
      return Bad(text, "host bits set below /" + std::to_string(block.prefix_));
    }
  }
  return block;
}

bool CidrBlock::Contains(const Address& address) const {
  if (address.family() == AF_INET && family_ == AF_INET) {
    const auto* in = &reinterpret_cast<const sockaddr_in*>(address.sockaddr())->sin_addr;
    return SamePrefix(reinterpret_cast<const uint8_t*>(in), network_, prefix_);
  }
  if (address.family() != AF_INET6) return false;
  const auto* in6 = &reinterpret_cast<const sockaddr_in6*>(address.sockaddr())->sin6_addr;
  if (family_ == AF_INET6) return SamePrefix(in6->s6_addr, network_, prefix_);
  // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d: it is that
  // IPv4 peer for an IPv4 block (and stays itself for IPv6 blocks, above).
  return IN6_IS_ADDR_V4MAPPED(in6) && SamePrefix(in6->s6_addr + 12, network_, prefix_);
}

std::string CidrBlock::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family_, network_, buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix_);
}

}  // namespace zrelay
