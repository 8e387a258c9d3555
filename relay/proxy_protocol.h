// The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a proxy
// writes before a connection's first byte to tell the next hop who the
// client really is.
//
//   v1: "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n" (text, at most
//       107 bytes; "PROXY UNKNOWN ...\r\n" when the proxy cannot say)
//   v2: a 12-byte signature, version/command, family/protocol, a length,
//       then the addresses and optional TLVs (binary)
//
// Parsing reads only the bytes given (peeked from the socket), says how many
// bytes the header is so the caller consumes exactly those, and rejects
// anything malformed rather than guessing. Writing makes the header for a
// client/destination pair.
//
// Where the spec leaves a choice, the parser takes the strict one:
//   - v1 ports are decimal 0..65535 as senders write them: no sign, no
//     leading zero ("0443" is refused), single spaces between fields;
//     addresses must be of the family TCP4/TCP6 names.
//   - v2 PROXY with the DGRAM protocol is refused: a UDP flow cannot be
//     relayed as a TCP stream. With the UNSPEC protocol or family the
//     addresses are not a TCP peer's, so the header is `local`.
//   - v2 UNIX addresses are kept as unix Addresses (an unnamed client's is
//     empty); the writers never send them.
//   - v2 TLVs after IPv4/IPv6/unix addresses must each end within the
//     header; LOCAL and UNSPEC blocks are skipped whole, as the spec says.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/address.h"

namespace zrelay {

enum class ProxyVersion { kV1, kV2 };

struct ProxyHeader {
  ProxyVersion version = ProxyVersion::kV1;
  // No addresses to use: a v2 LOCAL command (a health check from the proxy
  // itself), v1 "UNKNOWN", or a v2 UNSPEC family. The connection's own
  // addresses stand.
  bool local = false;
  Address source;       // the client, unless `local`
  Address destination;  // the address the client connected to, unless `local`
};

enum class ProxyParseStatus {
  kNeedMore,  // a prefix of what may be a valid header: read more, parse again
  kInvalid,   // not a PROXY header, or a malformed, truncated or oversized one
  kOk,
};

struct ProxyParse {
  ProxyParseStatus status = ProxyParseStatus::kNeedMore;
  ProxyHeader header;  // kOk only
  size_t length = 0;   // kOk: the header's bytes; the stream's data starts after
  size_t needed = 0;   // kNeedMore: the least total bytes to make progress (> given)
  std::string error;   // kInvalid: why ("v1 header longer than 107 bytes", ...)
};

// Largest header accepted: v1's 107 bytes, or v2's 16 plus addresses and
// TLVs up to this total (TLVs are skipped, never interpreted).
inline constexpr size_t kMaxProxyHeader = 4096;

// Parses the bytes a connection started with, v1 or v2 (told apart by their
// first bytes). Never reads past `bytes`.
ProxyParse ParseProxyHeader(std::string_view bytes);

// The header to send before relaying a client from `source` that connected
// to `destination`. Both IPv4 or both IPv6 give TCP4/TCP6 (v1) or
// AF_INET/AF_INET6 PROXY (v2); anything else (a unix client, mixed
// families) gives "PROXY UNKNOWN\r\n" (v1) or the LOCAL command with
// AF_UNSPEC (v2), which tells the receiver to use the connection's own
// addresses.
std::string ProxyHeaderV1(const Address& source, const Address& destination);
std::string ProxyHeaderV2(const Address& source, const Address& destination);

}  // namespace zrelay
