#include "relay/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace zrelay {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV1MaxLength = 107;  // the spec's bound, CRLF included
constexpr size_t kV1MinLength = 15;   // "PROXY UNKNOWN\r\n"
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr size_t kV2FixedLength = 16;  // signature, version/command, family/protocol, length
constexpr size_t kV2Inet = 12;         // two IPv4 addresses, two ports
constexpr size_t kV2Inet6 = 36;        // two IPv6 addresses, two ports
constexpr size_t kV2Unix = 216;        // two 108-byte sun_path fields
constexpr size_t kUnixPathField = 108;

ProxyParse Invalid(std::string error) {
  ProxyParse parse;
  parse.status = ProxyParseStatus::kInvalid;
  parse.error = std::move(error);
  return parse;
}

ProxyParse NeedMore(size_t needed) {
  ProxyParse parse;
  parse.needed = needed;
  return parse;
}

ProxyParse Ok(ProxyHeader header, size_t length) {
  ProxyParse parse;
  parse.status = ProxyParseStatus::kOk;
  parse.header = std::move(header);
  parse.length = length;
  return parse;
}

bool IsPrefixOf(std::string_view bytes, std::string_view whole) {
  return whole.substr(0, bytes.size()) == bytes;
}

uint16_t ReadBigEndian16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}

Address InetAddress(const void* ip, uint16_t port_network_order) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  std::memcpy(&sin.sin_addr, ip, sizeof(sin.sin_addr));
  sin.sin_port = port_network_order;
  return Address(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
}

Address Inet6Address(const void* ip, uint16_t port_network_order) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  std::memcpy(&sin6.sin6_addr, ip, sizeof(sin6.sin6_addr));
  sin6.sin6_port = port_network_order;
  return Address(reinterpret_cast<const sockaddr*>(&sin6), sizeof(sin6));
}

// A v2 sun_path field (108 bytes, NUL-padded) as the unix address it names:
// a path up to its first NUL, an abstract name (a leading NUL) up to its
// last non-NUL byte, or an unnamed socket (all NULs: what a client usually is).
Address UnixAddress(const char* field) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  static_assert(sizeof(sun.sun_path) == kUnixPathField);
  std::memcpy(sun.sun_path, field, kUnixPathField);
  size_t used;
  if (field[0] != '\0') {
    used = std::find(field, field + kUnixPathField, '\0') - field;
    if (used < kUnixPathField) ++used;  // the terminating NUL, as the kernel counts it
  } else {
    used = kUnixPathField;
    while (used > 0 && field[used - 1] == '\0') --used;
  }
  return Address(reinterpret_cast<const sockaddr*>(&sun),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + used));
}

// ---- v1 ----

// A port as the spec writes it: a decimal integer 0..65535. Leading zeros,
// signs and empty fields are refused: no sender writes them, and a header
// that does is malformed rather than something to guess about.
bool ParseV1Port(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  *port = htons(static_cast<uint16_t>(value));
  return true;
}

// Splits `line` at single spaces into exactly `count` non-empty fields.
bool SplitFields(std::string_view line, std::string_view* fields, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const size_t space = i + 1 < count ? line.find(' ') : std::string_view::npos;
    if (i + 1 < count && space == std::string_view::npos) return false;
    fields[i] = line.substr(0, space);
    if (fields[i].empty() || fields[i].find(' ') != std::string_view::npos) return false;
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  }
  return true;
}

ProxyParse ParseV1Line(std::string_view line, size_t length) {
  // `line`: what follows "PROXY " up to (not including) the CRLF.
  ProxyHeader header;
  header.version = ProxyVersion::kV1;
  if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ") {
    // The spec: whatever follows UNKNOWN is to be ignored.
    header.local = true;
    return Ok(header, length);
  }
  // inet_pton reads C strings: a NUL (or any control byte) would cut an
  // address short and let what follows it pass unseen.
  if (!std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    return Invalid("v1 header has a byte that is not printable ASCII");
  }
  std::string_view fields[5];
  if (!SplitFields(line, fields, 5)) {
    return Invalid("v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'");
  }
  int family;
  if (fields[0] == "TCP4") {
    family = AF_INET;
  } else if (fields[0] == "TCP6") {
    family = AF_INET6;
  } else {
    return Invalid("v1 header has unknown protocol '" + std::string(fields[0]) + "'");
  }
  unsigned char ips[2][sizeof(in6_addr)];
  for (int i = 0; i < 2; ++i) {
    const std::string text(fields[1 + i]);
    if (inet_pton(family, text.c_str(), ips[i]) != 1) {
      return Invalid("v1 header has bad " + std::string(fields[0]) + " address '" + text + "'");
    }
  }
  uint16_t ports[2];
  for (int i = 0; i < 2; ++i) {
    if (!ParseV1Port(fields[3 + i], &ports[i])) {
      return Invalid("v1 header has bad port '" + std::string(fields[3 + i]) + "'");
    }
  }
  if (family == AF_INET) {
    header.source = InetAddress(ips[0], ports[0]);
    header.destination = InetAddress(ips[1], ports[1]);
  } else {
    header.source = Inet6Address(ips[0], ports[0]);
    header.destination = Inet6Address(ips[1], ports[1]);
  }
  return Ok(header, length);
}

ProxyParse ParseV1(std::string_view bytes) {
  const std::string_view window = bytes.substr(0, kV1MaxLength);
  const size_t cr = window.find('\r');
  const size_t lf = window.find('\n');
  if (lf != std::string_view::npos && (cr == std::string_view::npos || lf < cr)) {
    return Invalid("v1 header has a line feed without a carriage return before it");
  }
  if (cr == std::string_view::npos || cr + 1 == window.size()) {
    if (window.size() >= kV1MaxLength) return Invalid("v1 header longer than 107 bytes");
    return NeedMore(std::max(bytes.size() + 1, kV1MinLength));
  }
  if (window[cr + 1] != '\n') return Invalid("v1 header has a carriage return without a line feed");
  return ParseV1Line(window.substr(kV1Prefix.size(), cr - kV1Prefix.size()), cr + 2);
}

// ---- v2 ----

// Each TLV (type, 16-bit length, value) must end within the header; their
// contents are never interpreted.
bool TlvsFit(std::string_view tlvs) {
  while (!tlvs.empty()) {
    if (tlvs.size() < 3) return false;
    const size_t value_length = ReadBigEndian16(tlvs.data() + 1);
    if (tlvs.size() - 3 < value_length) return false;
    tlvs.remove_prefix(3 + value_length);
  }
  return true;
}

ProxyParse ParseV2(std::string_view bytes) {
  if (bytes.size() < kV2FixedLength) return NeedMore(kV2FixedLength);
  const uint8_t version_command = static_cast<uint8_t>(bytes[12]);
  const uint8_t family_protocol = static_cast<uint8_t>(bytes[13]);
  const size_t payload = ReadBigEndian16(bytes.data() + 14);
  const size_t length = kV2FixedLength + payload;
  if ((version_command >> 4) != 2) {
    return Invalid("v2 header has version " + std::to_string(version_command >> 4) + ", not 2");
  }
  const int command = version_command & 0x0f;
  if (command > 1) {
    return Invalid("v2 header has unknown command " + std::to_string(command));
  }
  if (length > kMaxProxyHeader) {
    return Invalid("v2 header of " + std::to_string(length) + " bytes is longer than " +
                   std::to_string(kMaxProxyHeader));
  }
  ProxyHeader header;
  header.version = ProxyVersion::kV2;
  if (command == 0) {
    // LOCAL (the proxy's own health check): the spec has the receiver
    // discard the whole block, family and protocol included.
    if (bytes.size() < length) return NeedMore(length);
    header.local = true;
    return Ok(header, length);
  }

  const int family = family_protocol >> 4;
  const int protocol = family_protocol & 0x0f;
  if (family > 3) return Invalid("v2 header has unknown address family " + std::to_string(family));
  if (protocol > 2) return Invalid("v2 header has unknown protocol " + std::to_string(protocol));
  if (protocol == 2) {
    return Invalid("v2 header is for a datagram (UDP) flow, which a TCP relay cannot carry");
  }
  const size_t addresses = family == 1   ? kV2Inet
                           : family == 2 ? kV2Inet6
                           : family == 3 ? kV2Unix
                                         : 0;
  if (payload < addresses) {
    return Invalid("v2 header's length " + std::to_string(payload) + " is too short for its " +
                   std::to_string(addresses) + " bytes of addresses");
  }
  if (bytes.size() < length) return NeedMore(length);

  // UNSPEC family or protocol: the addresses are not a TCP peer's, so the
  // connection's own stand, as for LOCAL.
  if (family == 0 || protocol == 0) {
    header.local = true;
    return Ok(header, length);
  }
  const char* block = bytes.data() + kV2FixedLength;
  if (!TlvsFit(std::string_view(block + addresses, payload - addresses))) {
    return Invalid("v2 header has a TLV that runs past the header's end");
  }
  uint16_t ports[2];
  if (family == 1) {
    std::memcpy(ports, block + 8, sizeof(ports));
    header.source = InetAddress(block, ports[0]);
    header.destination = InetAddress(block + 4, ports[1]);
  } else if (family == 2) {
    std::memcpy(ports, block + 32, sizeof(ports));
    header.source = Inet6Address(block, ports[0]);
    header.destination = Inet6Address(block + 16, ports[1]);
  } else {
    header.source = UnixAddress(block);
    header.destination = UnixAddress(block + kUnixPathField);
  }
  return Ok(header, length);
}

// The addresses of an IPv4 or IPv6 pair of one family, or false.
bool SameIpFamily(const Address& source, const Address& destination) {
  return source.family() == destination.family() &&
         (source.family() == AF_INET || source.family() == AF_INET6);
}

const sockaddr_in& In(const Address& a) {
  return *reinterpret_cast<const sockaddr_in*>(a.sockaddr());
}
const sockaddr_in6& In6(const Address& a) {
  return *reinterpret_cast<const sockaddr_in6*>(a.sockaddr());
}

std::string IpText(const Address& a) {
  char text[INET6_ADDRSTRLEN];
  const void* ip = a.family() == AF_INET ? static_cast<const void*>(&In(a).sin_addr)
                                         : static_cast<const void*>(&In6(a).sin6_addr);
  inet_ntop(a.family(), ip, text, sizeof(text));
  return text;
}

}  // namespace

ProxyParse ParseProxyHeader(std::string_view bytes) {
  if (bytes.empty()) return NeedMore(kV1MinLength);
  if (bytes[0] == kV1Prefix[0]) {
    if (bytes.size() < kV1Prefix.size()) {
      if (IsPrefixOf(bytes, kV1Prefix)) return NeedMore(kV1MinLength);
    } else if (bytes.substr(0, kV1Prefix.size()) == kV1Prefix) {
      return ParseV1(bytes);
    }
    return Invalid("not a PROXY protocol header");
  }
  if (bytes.size() < kV2Signature.size()) {
    if (IsPrefixOf(bytes, kV2Signature)) return NeedMore(kV2FixedLength);
    return Invalid("not a PROXY protocol header");
  }
  if (bytes.substr(0, kV2Signature.size()) != kV2Signature) {
    return Invalid("not a PROXY protocol header");
  }
  return ParseV2(bytes);
}

std::string ProxyHeaderV1(const Address& source, const Address& destination) {
  if (!SameIpFamily(source, destination)) return "PROXY UNKNOWN\r\n";
  return std::string(source.family() == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ") + IpText(source) +
         " " + IpText(destination) + " " + std::to_string(source.port()) + " " +
         std::to_string(destination.port()) + "\r\n";
}

std::string ProxyHeaderV2(const Address& source, const Address& destination) {
  std::string header(kV2Signature);
  if (!SameIpFamily(source, destination)) {
    header += std::string("\x20\x00\x00\x00", 4);  // version 2 LOCAL, UNSPEC, no payload
    return header;
  }
  const bool v4 = source.family() == AF_INET;
  header += '\x21';                // version 2, PROXY
  header += v4 ? '\x11' : '\x21';  // AF_INET or AF_INET6, STREAM
  const size_t payload = v4 ? kV2Inet : kV2Inet6;
  header += static_cast<char>(payload >> 8);
  header += static_cast<char>(payload & 0xff);
  if (v4) {
    header.append(reinterpret_cast<const char*>(&In(source).sin_addr), 4);
    header.append(reinterpret_cast<const char*>(&In(destination).sin_addr), 4);
    header.append(reinterpret_cast<const char*>(&In(source).sin_port), 2);
    header.append(reinterpret_cast<const char*>(&In(destination).sin_port), 2);
  } else {
    header.append(reinterpret_cast<const char*>(&In6(source).sin6_addr), 16);
    header.append(reinterpret_cast<const char*>(&In6(destination).sin6_addr), 16);
    header.append(reinterpret_cast<const char*>(&In6(source).sin6_port), 2);
    header.append(reinterpret_cast<const char*>(&In6(destination).sin6_port), 2);
  }
  return header;
}

}  // namespace zrelay
