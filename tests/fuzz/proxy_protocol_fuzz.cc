// Fuzzes ParseProxyHeader, which reads the first bytes a client sends on a
// listener that expects the PROXY protocol. Beyond not crashing:
//  - kNeedMore asks for more than it was given, at most kMaxProxyHeader;
//    kInvalid says why on one line; kOk's header fits in what was given and
//    in kMaxProxyHeader;
//  - the verdict is stable as bytes arrive, as a MSG_PEEK caller sees them:
//    one byte less never contradicts it (it is kNeedMore, or the same
//    verdict), and a kOk header's own bytes alone parse to the same header;
//  - a parsed header with addresses is written back (v1 or v2, as it came)
//    and parses to the same addresses;
//  - the writers' headers for addresses drawn from the input's first bytes
//    parse back to those addresses, or to `local` when there are none to
//    send.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "relay/proxy_protocol.h"
#include "tests/fuzz/fuzz_check.h"

namespace zrelay {
namespace {

bool SameAddress(const Address& a, const Address& b) {
  return a.family() == b.family() && a.length() == b.length() &&
         std::memcmp(a.sockaddr(), b.sockaddr(), a.length()) == 0;
}

bool SameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  return a.version == b.version && a.local == b.local &&
         (a.local ||
          (SameAddress(a.source, b.source) && SameAddress(a.destination, b.destination)));
}

bool SameParse(const ProxyParse& a, const ProxyParse& b) {
  return a.status == b.status && a.length == b.length &&
         (a.status != ProxyParseStatus::kOk || SameHeader(a.header, b.header));
}

void CheckVerdict(std::string_view bytes, const ProxyParse& parse) {
  switch (parse.status) {
    case ProxyParseStatus::kNeedMore:
      FUZZ_CHECK(parse.needed > bytes.size());
      FUZZ_CHECK(parse.needed <= kMaxProxyHeader);
      break;
    case ProxyParseStatus::kInvalid:
      FUZZ_CHECK(!parse.error.empty());
      FUZZ_CHECK(parse.error.find('\n') == std::string::npos);
      break;
    case ProxyParseStatus::kOk:
      FUZZ_CHECK(parse.length > 0 && parse.length <= bytes.size());
      FUZZ_CHECK(parse.length <= kMaxProxyHeader);
      if (!parse.header.local) {
        const int family = parse.header.source.family();
        FUZZ_CHECK(family == AF_INET || family == AF_INET6 || family == AF_UNIX);
        FUZZ_CHECK(parse.header.destination.family() == family);
      }
      break;
  }
}

// A parsed IP header, written again as it came, reads back the same.
void CheckRewrite(const ProxyHeader& header) {
  if (header.local || header.source.is_unix()) return;  // the writers send no unix addresses
  const std::string written = header.version == ProxyVersion::kV1
                                  ? ProxyHeaderV1(header.source, header.destination)
                                  : ProxyHeaderV2(header.source, header.destination);
  const ProxyParse again = ParseProxyHeader(written);
  FUZZ_CHECK(again.status == ProxyParseStatus::kOk);
  FUZZ_CHECK(again.length == written.size());
  FUZZ_CHECK(SameHeader(again.header, header));
}

// An IPv4 or IPv6 address made of 16 + 2 input bytes; byte `kind` picks the
// family (its low bit) and, for IPv6, whether it is v4-mapped.
Address DrawnAddress(const uint8_t* bytes, uint8_t kind) {
  if (kind & 1) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, bytes, 4);
    std::memcpy(&sin.sin_port, bytes + 16, 2);
    return Address(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  std::memcpy(&sin6.sin6_addr, bytes, 16);
  if (kind & 2) std::memcpy(sin6.sin6_addr.s6_addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
  std::memcpy(&sin6.sin6_port, bytes + 16, 2);
  return Address(reinterpret_cast<const sockaddr*>(&sin6), sizeof(sin6));
}

void CheckWriters(const uint8_t* data, size_t size) {
  uint8_t drawn[1 + 18 + 18] = {};
  std::memcpy(drawn, data, std::min(size, sizeof(drawn)));
  const Address source = DrawnAddress(drawn + 1, drawn[0]);
  const Address destination = DrawnAddress(drawn + 19, drawn[0] >> 2);
  const bool same_family = source.family() == destination.family();
  for (const ProxyVersion version : {ProxyVersion::kV1, ProxyVersion::kV2}) {
    const std::string written = version == ProxyVersion::kV1 ? ProxyHeaderV1(source, destination)
                                                             : ProxyHeaderV2(source, destination);
    const ProxyParse parse = ParseProxyHeader(written);
    FUZZ_CHECK(parse.status == ProxyParseStatus::kOk);
    FUZZ_CHECK(parse.length == written.size());
    FUZZ_CHECK(parse.header.version == version);
    FUZZ_CHECK(parse.header.local == !same_family);
    if (same_family) {
      FUZZ_CHECK(SameAddress(parse.header.source, source));
      FUZZ_CHECK(SameAddress(parse.header.destination, destination));
    }
  }
}

}  // namespace
}  // namespace zrelay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zrelay;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const ProxyParse parse = ParseProxyHeader(bytes);
  CheckVerdict(bytes, parse);

  if (size > 0) {
    const ProxyParse shorter = ParseProxyHeader(bytes.substr(0, size - 1));
    if (shorter.status != ProxyParseStatus::kNeedMore) FUZZ_CHECK(SameParse(shorter, parse));
  }
  if (parse.status == ProxyParseStatus::kNeedMore) {
    FUZZ_CHECK(parse.needed > size);
  } else if (parse.status == ProxyParseStatus::kOk) {
    const ProxyParse own = ParseProxyHeader(bytes.substr(0, parse.length));
    FUZZ_CHECK(SameParse(own, parse));
    // One byte short of the header is still a prefix of it.
    FUZZ_CHECK(ParseProxyHeader(bytes.substr(0, parse.length - 1)).status ==
               ProxyParseStatus::kNeedMore);
    CheckRewrite(parse.header);
  }
  CheckWriters(data, size);
  return 0;
}
