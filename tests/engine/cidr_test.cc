// CidrBlock: parsing, printing and matching IPv4 and IPv6 peers.
#include "engine/cidr.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

namespace zrelay {
namespace {

CidrBlock MustParse(std::string_view text) {
  Result<CidrBlock> block = CidrBlock::Parse(text);
  EXPECT_TRUE(block.ok()) << text << ": " << (block.ok() ? "" : block.error().message());
  return block.ok() ? *block : CidrBlock::Parse("0.0.0.0/32").value();
}

Address Peer(std::string_view text) {
  Result<Address> address = Address::Parse(text);
  EXPECT_TRUE(address.ok()) << text;
  return address.ok() ? *address : Address();
}

std::string ParseError(std::string_view text) {
  Result<CidrBlock> block = CidrBlock::Parse(text);
  EXPECT_FALSE(block.ok()) << text << " parsed as " << (block.ok() ? block->ToString() : "");
  return block.ok() ? "" : block.error().message();
}

TEST(CidrTest, Ipv4Network) {
  const CidrBlock block = MustParse("10.0.0.0/8");
  EXPECT_EQ(block.family(), AF_INET);
  EXPECT_EQ(block.prefix(), 8);
  EXPECT_EQ(block.ToString(), "10.0.0.0/8");
  EXPECT_TRUE(block.Contains(Peer("10.0.0.0:1")));
  EXPECT_TRUE(block.Contains(Peer("10.255.255.255:65535")));
  EXPECT_FALSE(block.Contains(Peer("11.0.0.0:1")));
  EXPECT_FALSE(block.Contains(Peer("9.255.255.255:1")));
}

TEST(CidrTest, Ipv4PrefixNotOnAByteBoundary) {
  const CidrBlock block = MustParse("192.0.2.64/26");
  EXPECT_TRUE(block.Contains(Peer("192.0.2.64:80")));
  EXPECT_TRUE(block.Contains(Peer("192.0.2.127:80")));
  EXPECT_FALSE(block.Contains(Peer("192.0.2.63:80")));
  EXPECT_FALSE(block.Contains(Peer("192.0.2.128:80")));
}

TEST(CidrTest, Ipv4SingleHost) {
  const CidrBlock host = MustParse("192.0.2.7");
  EXPECT_EQ(host.prefix(), 32);
  EXPECT_EQ(host.ToString(), "192.0.2.7/32");
  EXPECT_EQ(MustParse("192.0.2.7/32").ToString(), "192.0.2.7/32");
  EXPECT_TRUE(host.Contains(Peer("192.0.2.7:1234")));
  EXPECT_FALSE(host.Contains(Peer("192.0.2.6:1234")));
  EXPECT_FALSE(host.Contains(Peer("192.0.2.8:1234")));
}

TEST(CidrTest, ZeroPrefixMatchesItsWholeFamily) {
  const CidrBlock v4 = MustParse("0.0.0.0/0");
  EXPECT_EQ(v4.prefix(), 0);
  EXPECT_TRUE(v4.Contains(Peer("0.0.0.0:1")));
  EXPECT_TRUE(v4.Contains(Peer("255.255.255.255:1")));
  EXPECT_FALSE(v4.Contains(Peer("[2001:db8::1]:1")));

  const CidrBlock v6 = MustParse("::/0");
  EXPECT_EQ(v6.family(), AF_INET6);
  EXPECT_EQ(v6.ToString(), "::/0");
  EXPECT_TRUE(v6.Contains(Peer("[::1]:1")));
  EXPECT_TRUE(v6.Contains(Peer("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1")));
  EXPECT_FALSE(v6.Contains(Peer("127.0.0.1:1")));
}

TEST(CidrTest, Ipv6Network) {
  const CidrBlock block = MustParse("2001:db8::/32");
  EXPECT_EQ(block.family(), AF_INET6);
  EXPECT_EQ(block.prefix(), 32);
  EXPECT_EQ(block.ToString(), "2001:db8::/32");
  EXPECT_TRUE(block.Contains(Peer("[2001:db8::1]:443")));
  EXPECT_TRUE(block.Contains(Peer("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:443")));
  EXPECT_FALSE(block.Contains(Peer("[2001:db9::]:443")));
  EXPECT_FALSE(block.Contains(Peer("10.0.0.1:443")));

  const CidrBlock odd = MustParse("fc00::/7");
  EXPECT_TRUE(odd.Contains(Peer("[fc00::1]:1")));
  EXPECT_TRUE(odd.Contains(Peer("[fdff::1]:1")));
  EXPECT_FALSE(odd.Contains(Peer("[fe00::1]:1")));
  EXPECT_EQ(ParseError("fd00::/7"), "bad network 'fd00::/7': host bits set below /7");
}

TEST(CidrTest, Ipv6SingleHost) {
  const CidrBlock host = MustParse("::1");
  EXPECT_EQ(host.prefix(), 128);
  EXPECT_EQ(host.ToString(), "::1/128");
  EXPECT_TRUE(host.Contains(Peer("[::1]:80")));
  EXPECT_FALSE(host.Contains(Peer("[::2]:80")));
  EXPECT_FALSE(host.Contains(Peer("127.0.0.1:80")));
  EXPECT_EQ(MustParse("2001:db8::7/128").ToString(), "2001:db8::7/128");
}

TEST(CidrTest, V4MappedPeerMatchesTheIpv4Block) {
  const CidrBlock v4 = MustParse("10.0.0.0/8");
  EXPECT_TRUE(v4.Contains(Peer("[::ffff:10.1.2.3]:80")));
  EXPECT_FALSE(v4.Contains(Peer("[::ffff:11.1.2.3]:80")));
  // Only the mapped form is IPv4: an IPv6 address that merely ends in the
  // same 4 bytes is not.
  EXPECT_FALSE(v4.Contains(Peer("[::10.1.2.3]:80")));
  EXPECT_FALSE(v4.Contains(Peer("[2001:db8::a01:203]:80")));
  // For IPv6 blocks a mapped peer is the IPv6 address it is written as.
  EXPECT_TRUE(MustParse("::ffff:10.0.0.0/104").Contains(Peer("[::ffff:10.1.2.3]:80")));
  EXPECT_TRUE(MustParse("::/0").Contains(Peer("[::ffff:10.1.2.3]:80")));
  EXPECT_FALSE(MustParse("2001:db8::/32").Contains(Peer("[::ffff:10.1.2.3]:80")));
}

TEST(CidrTest, UnixPeersMatchNoBlock) {
  const Address unix_peer = Peer("unix:/run/zrelay-test.sock");
  EXPECT_FALSE(MustParse("0.0.0.0/0").Contains(unix_peer));
  EXPECT_FALSE(MustParse("::/0").Contains(unix_peer));
  EXPECT_FALSE(MustParse("0.0.0.0/0").Contains(Peer("unix:@abstract")));
  EXPECT_FALSE(MustParse("0.0.0.0/0").Contains(Address()));
}

TEST(CidrTest, ToStringRoundTrips) {
  for (const char* text : {"10.0.0.0/8", "0.0.0.0/0", "192.0.2.7/32", "192.0.2.64/26", "::/0",
                           "::1/128", "2001:db8::/32", "fc00::/7", "::ffff:10.0.0.0/104"}) {
    const CidrBlock block = MustParse(text);
    EXPECT_EQ(block.ToString(), text);
    const CidrBlock again = MustParse(block.ToString());
    EXPECT_EQ(again.family(), block.family());
    EXPECT_EQ(again.prefix(), block.prefix());
  }
}

TEST(CidrTest, HostBitsBelowThePrefixAreAnError) {
  EXPECT_EQ(ParseError("10.0.0.1/8"), "bad network '10.0.0.1/8': host bits set below /8");
  EXPECT_EQ(ParseError("192.0.2.65/26"), "bad network '192.0.2.65/26': host bits set below /26");
  EXPECT_EQ(ParseError("0.0.0.1/0"), "bad network '0.0.0.1/0': host bits set below /0");
  EXPECT_EQ(ParseError("2001:db8::1/32"), "bad network '2001:db8::1/32': host bits set below /32");
  EXPECT_EQ(ParseError("::1/127"), "bad network '::1/127': host bits set below /127");
}

TEST(CidrTest, BadTextIsAnErrorThatQuotesIt) {
  EXPECT_EQ(ParseError(""), "bad network '': empty network");
  EXPECT_EQ(ParseError("10.0.0/8"),
            "bad network '10.0.0/8': '10.0.0' is not an IPv4 or IPv6 address");
  EXPECT_EQ(ParseError("localhost"),
            "bad network 'localhost': 'localhost' is not an IPv4 or IPv6 address");
  EXPECT_EQ(ParseError("[::1]/128"),
            "bad network '[::1]/128': '[::1]' is not an IPv4 or IPv6 address");
  EXPECT_EQ(ParseError("256.0.0.0/8"),
            "bad network '256.0.0.0/8': '256.0.0.0' is not an IPv4 or IPv6 address");
  EXPECT_EQ(ParseError("10.0.0.0/33"),
            "bad network '10.0.0.0/33': prefix length '33' is not a number 0..32");
  EXPECT_EQ(ParseError("::/129"),
            "bad network '::/129': prefix length '129' is not a number 0..128");
  EXPECT_EQ(ParseError("10.0.0.0/"),
            "bad network '10.0.0.0/': prefix length '' is not a number 0..32");
  EXPECT_EQ(ParseError("10.0.0.0/-8"),
            "bad network '10.0.0.0/-8': prefix length '-8' is not a number 0..32");
  EXPECT_EQ(ParseError("10.0.0.0/08"),
            "bad network '10.0.0.0/08': prefix length '08' is not a number 0..32");
  EXPECT_EQ(ParseError("10.0.0.0/8/8"),
            "bad network '10.0.0.0/8/8': prefix length '8/8' is not a number 0..32");
  EXPECT_EQ(ParseError("10.0.0.0/ 8"),
            "bad network '10.0.0.0/ 8': prefix length ' 8' is not a number 0..32");
  EXPECT_EQ(ParseError("10.0.0.0/0008"),
            "bad network '10.0.0.0/0008': prefix length '0008' is not a number 0..32");
  EXPECT_EQ(ParseError(std::string_view("10.0.0.0\0/8", 11)),
            std::string("bad network '10.0.0.0\0/8': contains a NUL byte", 46));
}

}  // namespace
}  // namespace zrelay
