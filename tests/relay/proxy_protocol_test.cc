// The PROXY protocol parser and writers: headers as HAProxy sends them
// (written out here byte by byte from the spec, independently of the
// writers), round trips, headers cut at every byte, and malformed headers.
#include "relay/proxy_protocol.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

namespace zrelay {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out += static_cast<char>(b);
  return out;
}

const std::string kSignature =
    Bytes({0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a});

Address Addr(std::string_view text) {
  Result<Address> address = Address::Parse(text);
  EXPECT_TRUE(address.ok()) << text;
  return address.ok() ? *address : Address();
}

bool SameAddress(const Address& a, const Address& b) {
  return a.family() == b.family() && a.length() == b.length() &&
         std::memcmp(a.sockaddr(), b.sockaddr(), a.length()) == 0;
}

// Parses `bytes`, expects a header of exactly `length` bytes, returns it.
ProxyHeader ExpectOk(std::string_view bytes, size_t length) {
  const ProxyParse parse = ParseProxyHeader(bytes);
  EXPECT_EQ(parse.status, ProxyParseStatus::kOk) << parse.error;
  EXPECT_EQ(parse.length, length);
  return parse.header;
}

std::string ExpectInvalid(std::string_view bytes) {
  const ProxyParse parse = ParseProxyHeader(bytes);
  EXPECT_EQ(parse.status, ProxyParseStatus::kInvalid);
  EXPECT_FALSE(parse.error.empty());
  return parse.error;
}

void ExpectAddresses(const ProxyHeader& header, std::string_view source,
                     std::string_view destination) {
  EXPECT_FALSE(header.local);
  EXPECT_TRUE(SameAddress(header.source, Addr(source))) << header.source.ToString();
  EXPECT_TRUE(SameAddress(header.destination, Addr(destination))) << header.destination.ToString();
}

// Every proper prefix of `header` asks for more, with a `needed` beyond
// what it was given that never overshoots the header; the whole header,
// with or without stream data after it, parses to the same length.
void ExpectNeedMoreAtEveryCut(const std::string& header) {
  for (size_t cut = 0; cut < header.size(); ++cut) {
    const ProxyParse parse = ParseProxyHeader(std::string_view(header).substr(0, cut));
    ASSERT_EQ(parse.status, ProxyParseStatus::kNeedMore) << "cut at " << cut << ": " << parse.error;
    EXPECT_GT(parse.needed, cut);
    EXPECT_LE(parse.needed, header.size()) << "cut at " << cut;
  }
  EXPECT_EQ(ParseProxyHeader(header).length, header.size());
  EXPECT_EQ(ParseProxyHeader(header + "GET / HTTP/1.1\r\n").length, header.size());
}

// ---- headers as HAProxy's send-proxy and send-proxy-v2 write them ----

TEST(ProxyProtocolTest, HaproxyV1Ipv4) {
  const std::string line = "PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\r\n";
  const ProxyHeader header = ExpectOk(line + "GET /", line.size());
  EXPECT_EQ(header.version, ProxyVersion::kV1);
  ExpectAddresses(header, "192.0.2.1:51234", "198.51.100.1:443");
  EXPECT_EQ(ProxyHeaderV1(Addr("192.0.2.1:51234"), Addr("198.51.100.1:443")), line);
}

TEST(ProxyProtocolTest, HaproxyV1Ipv6) {
  const std::string line = "PROXY TCP6 2001:db8::1 2001:db8::2:1 65535 0\r\n";
  const ProxyHeader header = ExpectOk(line, line.size());
  ExpectAddresses(header, "[2001:db8::1]:65535", "[2001:db8::2:1]:0");
  EXPECT_EQ(ProxyHeaderV1(Addr("[2001:db8::1]:65535"), Addr("[2001:db8::2:1]:0")), line);
}

TEST(ProxyProtocolTest, HaproxyV2Ipv4) {
  // 192.0.2.1:51234 -> 198.51.100.1:443, PROXY command, TCP over IPv4.
  const std::string header = kSignature + Bytes({0x21, 0x11, 0x00, 0x0c,  //
                                                 192, 0, 2, 1,            //
                                                 198, 51, 100, 1,         //
                                                 0xc8, 0x22, 0x01, 0xbb});
  ASSERT_EQ(header.size(), 28u);
  const ProxyHeader parsed = ExpectOk(header + "\x16\x03\x01", 28);
  EXPECT_EQ(parsed.version, ProxyVersion::kV2);
  ExpectAddresses(parsed, "192.0.2.1:51234", "198.51.100.1:443");
  EXPECT_EQ(ProxyHeaderV2(Addr("192.0.2.1:51234"), Addr("198.51.100.1:443")), header);
}

TEST(ProxyProtocolTest, HaproxyV2Ipv6) {
  // [2001:db8::1]:1 -> [2001:db8::2]:65535, PROXY command, TCP over IPv6.
  const std::string header =
      kSignature + Bytes({0x21, 0x21, 0x00, 0x24,                                      //
                          0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                          0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,  //
                          0x00, 0x01, 0xff, 0xff});
  ASSERT_EQ(header.size(), 52u);
  ExpectAddresses(ExpectOk(header, 52), "[2001:db8::1]:1", "[2001:db8::2]:65535");
  EXPECT_EQ(ProxyHeaderV2(Addr("[2001:db8::1]:1"), Addr("[2001:db8::2]:65535")), header);
}

TEST(ProxyProtocolTest, HaproxyV2LocalHealthCheck) {
  const std::string header = kSignature + Bytes({0x20, 0x00, 0x00, 0x00});
  const ProxyHeader parsed = ExpectOk(header + "PING", 16);
  EXPECT_EQ(parsed.version, ProxyVersion::kV2);
  EXPECT_TRUE(parsed.local);
}

TEST(ProxyProtocolTest, V2TlvsAreSkipped) {
  // As with proxy-v2-options: ALPN "h2", authority "example.com", a NOOP of
  // 3 bytes and an empty one, a CRC32C: 2+3 + 11+3 + 3+3 + 0+3 + 4+3 = 35 bytes.
  const std::string tlvs = Bytes({0x01, 0x00, 0x02, 'h', '2'}) + Bytes({0x02, 0x00, 0x0b}) +
                           "example.com" + Bytes({0x04, 0x00, 0x03, 0, 0, 0}) +
                           Bytes({0x04, 0x00, 0x00}) +
                           Bytes({0x03, 0x00, 0x04, 0x12, 0x34, 0x56, 0x78});
  ASSERT_EQ(tlvs.size(), 35u);
  const std::string header = kSignature +
                             Bytes({0x21, 0x11, 0x00, 12 + 35,  //
                                    10, 0, 0, 1, 10, 0, 0, 2,   //
                                    0x30, 0x39, 0x00, 0x50}) +
                             tlvs;
  ExpectAddresses(ExpectOk(header + "data", header.size()), "10.0.0.1:12345", "10.0.0.2:80");
  ExpectNeedMoreAtEveryCut(header);
}

TEST(ProxyProtocolTest, V2UnixAddresses) {
  // A client of a unix socket is usually unnamed (all NULs); the listener
  // has a path; an abstract name starts with a NUL.
  std::string source(108, '\0');
  std::string destination(108, '\0');
  std::memcpy(destination.data(), "/run/app.sock", 13);
  const std::string header = kSignature + Bytes({0x21, 0x31, 0x00, 0xd8}) + source + destination;
  ASSERT_EQ(header.size(), 16u + 216u);
  const ProxyHeader parsed = ExpectOk(header, header.size());
  EXPECT_FALSE(parsed.local);
  EXPECT_EQ(parsed.source.family(), AF_UNIX);
  EXPECT_EQ(parsed.source.length(), offsetof(sockaddr_un, sun_path));
  EXPECT_TRUE(SameAddress(parsed.destination, Addr("unix:/run/app.sock")));
  EXPECT_EQ(parsed.destination.ToString(), "unix:/run/app.sock");

  std::memcpy(source.data(), "\0name", 5);
  const ProxyHeader abstract =
      ExpectOk(kSignature + Bytes({0x21, 0x31, 0x00, 0xd8}) + source + destination, 232);
  EXPECT_TRUE(SameAddress(abstract.source, Addr("unix:@name")));
}

// ---- round trips: writer -> parser ----

TEST(ProxyProtocolTest, RoundTrips) {
  const std::pair<const char*, const char*> pairs[] = {
      {"192.0.2.1:51234", "198.51.100.1:443"},
      {"0.0.0.0:0", "255.255.255.255:65535"},
      {"[2001:db8::1]:1", "[2001:db8::2]:65535"},
      {"[::]:0", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
      {"[::ffff:10.0.0.1]:40000", "[::1]:80"},
  };
  for (const auto& [source, destination] : pairs) {
    SCOPED_TRACE(std::string(source) + " -> " + destination);
    for (const std::string& header : {ProxyHeaderV1(Addr(source), Addr(destination)),
                                      ProxyHeaderV2(Addr(source), Addr(destination))}) {
      const ProxyHeader parsed = ExpectOk(header, header.size());
      EXPECT_EQ(parsed.version, header[0] == 'P' ? ProxyVersion::kV1 : ProxyVersion::kV2);
      ExpectAddresses(parsed, source, destination);
      ExpectNeedMoreAtEveryCut(header);
    }
  }
}

TEST(ProxyProtocolTest, NoUsableAddressesWriteUnknownAndLocal) {
  const std::pair<const char*, const char*> pairs[] = {
      {"unix:/run/client.sock", "unix:/run/zrelay.sock"},
      {"192.0.2.1:1", "[2001:db8::1]:2"},
      {"[2001:db8::1]:2", "192.0.2.1:1"},
      {"unix:@abstract", "192.0.2.1:1"},
  };
  for (const auto& [source, destination] : pairs) {
    SCOPED_TRACE(std::string(source) + " -> " + destination);
    const std::string v1 = ProxyHeaderV1(Addr(source), Addr(destination));
    EXPECT_EQ(v1, "PROXY UNKNOWN\r\n");
    EXPECT_TRUE(ExpectOk(v1, v1.size()).local);
    const std::string v2 = ProxyHeaderV2(Addr(source), Addr(destination));
    EXPECT_EQ(v2, kSignature + Bytes({0x20, 0x00, 0x00, 0x00}));
    EXPECT_TRUE(ExpectOk(v2, v2.size()).local);
    ExpectNeedMoreAtEveryCut(v1);
    ExpectNeedMoreAtEveryCut(v2);
  }
}

TEST(ProxyProtocolTest, V1UnknownIgnoresWhatFollows) {
  const std::string line = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
  const ProxyHeader header = ExpectOk(line + "data", line.size());
  EXPECT_EQ(header.version, ProxyVersion::kV1);
  EXPECT_TRUE(header.local);
}

TEST(ProxyProtocolTest, V1LongestLinesFit) {
  // The spec's worst cases: 104 bytes for TCP6, 107 for UNKNOWN.
  const std::string tcp6 =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(tcp6.size(), 104u);
  ExpectOk(tcp6, 104);
  const std::string unknown = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 107u);
  EXPECT_TRUE(ExpectOk(unknown, 107).local);
  ExpectNeedMoreAtEveryCut(unknown);
}

TEST(ProxyProtocolTest, V2UnspecAndLocalUseTheConnectionsAddresses) {
  // PROXY command with the UNSPEC family, or with the UNSPEC protocol, and
  // some bytes the receiver must skip.
  EXPECT_TRUE(ExpectOk(kSignature + Bytes({0x21, 0x00, 0x00, 0x03, 1, 2, 3}), 19).local);
  EXPECT_TRUE(
      ExpectOk(kSignature + Bytes({0x21, 0x10, 0x00, 0x0c}) + std::string(12, '\0'), 28).local);
  // LOCAL ignores the family and protocol, and whatever the block holds.
  const std::string local = kSignature + Bytes({0x20, 0x11, 0x00, 0x0c}) + std::string(12, '\x7f');
  EXPECT_TRUE(ExpectOk(local, 28).local);
  ExpectNeedMoreAtEveryCut(local);
}

// ---- kNeedMore ----

TEST(ProxyProtocolTest, NeededBytes) {
  EXPECT_EQ(ParseProxyHeader("").needed, 15u);
  EXPECT_EQ(ParseProxyHeader("PROXY").needed, 15u);
  EXPECT_EQ(ParseProxyHeader("PROXY TCP4 192.0.2.1 198.51.100.1 1 2").needed, 38u);
  EXPECT_EQ(ParseProxyHeader("PROXY TCP4 192.0.2.1 198.51.100.1 1 2\r").needed, 39u);
  EXPECT_EQ(ParseProxyHeader(std::string_view("\r\n\r\n\0", 5)).needed, 16u);
  // Once the fixed 16 bytes are in, the length says exactly how many.
  const std::string v2 = kSignature + Bytes({0x21, 0x21, 0x00, 0x24});
  EXPECT_EQ(ParseProxyHeader(v2).status, ProxyParseStatus::kNeedMore);
  EXPECT_EQ(ParseProxyHeader(v2).needed, 52u);
  EXPECT_EQ(ParseProxyHeader(v2 + std::string(35, '\0')).needed, 52u);
}

// ---- malformed headers ----

TEST(ProxyProtocolTest, NotAProxyHeader) {
  EXPECT_EQ(ExpectInvalid("GET / HTTP/1.1\r\n"), "not a PROXY protocol header");
  EXPECT_EQ(ExpectInvalid("PROXZ"), "not a PROXY protocol header");
  EXPECT_EQ(ExpectInvalid("PROXY"
                          "\t"),
            "not a PROXY protocol header");
  EXPECT_EQ(ExpectInvalid("proxy TCP4"), "not a PROXY protocol header");
  EXPECT_EQ(ExpectInvalid("\x16\x03\x01\x02\x00"), "not a PROXY protocol header");
  EXPECT_EQ(ExpectInvalid("\r\n\r\n\n"), "not a PROXY protocol header");
  std::string bad_signature = kSignature + Bytes({0x21, 0x11, 0x00, 0x0c}) + std::string(12, '\0');
  bad_signature[11] = 'X';
  EXPECT_EQ(ExpectInvalid(bad_signature), "not a PROXY protocol header");
}

TEST(ProxyProtocolTest, V1Malformed) {
  const std::pair<std::string, std::string> cases[] = {
      {"PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\n",
       "v1 header has a line feed without a carriage return before it"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 51234 443\rX",
       "v1 header has a carriage return without a line feed"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 51234 65536\r\n", "v1 header has bad port '65536'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 051234 443\r\n", "v1 header has bad port '051234'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 0443 443\r\n", "v1 header has bad port '0443'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 -1 443\r\n", "v1 header has bad port '-1'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 +1 443\r\n", "v1 header has bad port '+1'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 1 99999999999\r\n",
       "v1 header has bad port '99999999999'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 1 0x1\r\n", "v1 header has bad port '0x1'"},
      {"PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",
       "v1 header has bad TCP4 address '192.0.2.256'"},
      {"PROXY TCP4 192.0.2 198.51.100.1 1 2\r\n", "v1 header has bad TCP4 address '192.0.2'"},
      {"PROXY TCP4 192.0.02.1 198.51.100.1 1 2\r\n", "v1 header has bad TCP4 address '192.0.02.1'"},
      {"PROXY TCP4 localhost 198.51.100.1 1 2\r\n", "v1 header has bad TCP4 address 'localhost'"},
      {"PROXY TCP6 2001:db8:::1 ::1 1 2\r\n", "v1 header has bad TCP6 address '2001:db8:::1'"},
      {"PROXY TCP6 [::1] ::1 1 2\r\n", "v1 header has bad TCP6 address '[::1]'"},
      // Mixed families: the protocol names both addresses' family.
      {"PROXY TCP4 192.0.2.1 2001:db8::1 1 2\r\n", "v1 header has bad TCP4 address '2001:db8::1'"},
      {"PROXY TCP4 ::1 192.0.2.1 1 2\r\n", "v1 header has bad TCP4 address '::1'"},
      {"PROXY TCP6 2001:db8::1 192.0.2.1 1 2\r\n", "v1 header has bad TCP6 address '192.0.2.1'"},
      {"PROXY TCP5 192.0.2.1 198.51.100.1 1 2\r\n", "v1 header has unknown protocol 'TCP5'"},
      {"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n", "v1 header has unknown protocol 'UDP4'"},
      {"PROXY UNKNOWNX\r\n", "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY \r\n", "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n",
       "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3\r\n",
       "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY TCP4  192.0.2.1 198.51.100.1 1 2\r\n",
       "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY TCP4 192.0.2.1 198.51.100.1 1 2 \r\n",
       "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {"PROXY  TCP4 192.0.2.1 198.51.100.1 1 2\r\n",
       "v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'"},
      {std::string("PROXY TCP4 192.0.2.1\0 198.51.100.1 1 2\r\n", 40),
       "v1 header has a byte that is not printable ASCII"},
      {"PROXY TCP4 192.0.2.1\t198.51.100.1 1 2\r\n",
       "v1 header has a byte that is not printable ASCII"},
      {"PROXY " + std::string(101, 'x') + "\r\n", "v1 header longer than 107 bytes"},
      {"PROXY UNKNOWN " + std::string(100, 'x'), "v1 header longer than 107 bytes"},
      // The CR as the 107th byte: the LF would be the 108th.
      {"PROXY UNKNOWN " + std::string(92, 'x') + "\r", "v1 header longer than 107 bytes"},
  };
  for (const auto& [line, error] : cases) {
    EXPECT_EQ(ExpectInvalid(line), error) << line;
  }
}

TEST(ProxyProtocolTest, V2Malformed) {
  const std::string ipv4_block = Bytes({192, 0, 2, 1, 198, 51, 100, 1, 0, 1, 0, 2});
  const std::pair<std::string, std::string> cases[] = {
      {kSignature + Bytes({0x11, 0x11, 0x00, 0x0c}) + ipv4_block, "v2 header has version 1, not 2"},
      {kSignature + Bytes({0x31, 0x11, 0x00, 0x0c}) + ipv4_block, "v2 header has version 3, not 2"},
      {kSignature + Bytes({0x22, 0x11, 0x00, 0x0c}) + ipv4_block,
       "v2 header has unknown command 2"},
      {kSignature + Bytes({0x2f, 0x11, 0x00, 0x0c}) + ipv4_block,
       "v2 header has unknown command 15"},
      {kSignature + Bytes({0x21, 0x41, 0x00, 0x0c}) + ipv4_block,
       "v2 header has unknown address family 4"},
      {kSignature + Bytes({0x21, 0x13, 0x00, 0x0c}) + ipv4_block,
       "v2 header has unknown protocol 3"},
      {kSignature + Bytes({0x21, 0x12, 0x00, 0x0c}) + ipv4_block,
       "v2 header is for a datagram (UDP) flow, which a TCP relay cannot carry"},
      {kSignature + Bytes({0x21, 0x22, 0x00, 0x24}) + std::string(36, '\0'),
       "v2 header is for a datagram (UDP) flow, which a TCP relay cannot carry"},
      // Lengths too short for the family's addresses: rejected before the
      // addresses arrive, as no more bytes could make them valid.
      {kSignature + Bytes({0x21, 0x11, 0x00, 0x0b}),
       "v2 header's length 11 is too short for its 12 bytes of addresses"},
      {kSignature + Bytes({0x21, 0x21, 0x00, 0x0c}) + ipv4_block,
       "v2 header's length 12 is too short for its 36 bytes of addresses"},
      {kSignature + Bytes({0x21, 0x31, 0x00, 0xd7}),
       "v2 header's length 215 is too short for its 216 bytes of addresses"},
      // Longer than kMaxProxyHeader: refused at once, before it arrives.
      {kSignature + Bytes({0x21, 0x11, 0x0f, 0xf1}), "v2 header of 4097 bytes is longer than 4096"},
      {kSignature + Bytes({0x20, 0x00, 0xff, 0xff}),
       "v2 header of 65551 bytes is longer than 4096"},
      // TLVs that run past the header: a partial TLV head, or a value longer
      // than what is left.
      {kSignature + Bytes({0x21, 0x11, 0x00, 0x0d}) + ipv4_block + Bytes({0x04}),
       "v2 header has a TLV that runs past the header's end"},
      {kSignature + Bytes({0x21, 0x11, 0x00, 0x0e}) + ipv4_block + Bytes({0x04, 0x00}),
       "v2 header has a TLV that runs past the header's end"},
      {kSignature + Bytes({0x21, 0x11, 0x00, 0x10}) + ipv4_block + Bytes({0x04, 0x00, 0x02, 0}),
       "v2 header has a TLV that runs past the header's end"},
      {kSignature + Bytes({0x21, 0x11, 0x00, 0x13}) + ipv4_block +
           Bytes({0x04, 0x00, 0x00, 0x01, 0xff, 0xff, 0}),
       "v2 header has a TLV that runs past the header's end"},
  };
  for (const auto& [header, error] : cases) {
    EXPECT_EQ(ExpectInvalid(header), error) << "byte 13: " << int(uint8_t(header[12]));
  }
}

TEST(ProxyProtocolTest, V2LargestHeaderAccepted) {
  // 16 + 12 + one NOOP TLV filling the rest: exactly kMaxProxyHeader bytes.
  const size_t tlv_value = kMaxProxyHeader - 16 - 12 - 3;
  const size_t payload = kMaxProxyHeader - 16;
  const std::string header =
      kSignature + Bytes({0x21, 0x11, int(payload >> 8), int(payload & 0xff)}) +
      Bytes({127, 0, 0, 1, 127, 0, 0, 2, 0, 1, 0, 2}) +
      Bytes({0x04, int(tlv_value >> 8), int(tlv_value & 0xff)}) + std::string(tlv_value, '\0');
  ASSERT_EQ(header.size(), kMaxProxyHeader);
  ExpectAddresses(ExpectOk(header, kMaxProxyHeader), "127.0.0.1:1", "127.0.0.2:2");
}

}  // namespace
}  // namespace zrelay
