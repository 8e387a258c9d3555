// Address parsing and formatting: every accepted form, and clear errors.
#include "engine/address.h"

#include <netinet/in.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace zrelay {
namespace {

Address MustParse(std::string_view text) {
  Result<Address> a = Address::Parse(text);
  EXPECT_TRUE(a.ok()) << text << ": " << (a.ok() ? "" : a.error().message());
  return a.ok() ? *a : Address();
}

TEST(AddressTest, Ipv4) {
  Address a = MustParse("127.0.0.1:8080");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_FALSE(a.is_unix());
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.length(), sizeof(sockaddr_in));
  EXPECT_EQ(a.ToString(), "127.0.0.1:8080");
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a.sockaddr());
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), 0x7f000001u);
}

TEST(AddressTest, Ipv6) {
  Address a = MustParse("[::1]:443");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.length(), sizeof(sockaddr_in6));
  EXPECT_EQ(a.ToString(), "[::1]:443");
  EXPECT_EQ(MustParse("[2001:db8::1:0]:1").ToString(), "[2001:db8::1:0]:1");
  EXPECT_EQ(MustParse("[::]:0").ToString(), "[::]:0");
}

TEST(AddressTest, AnyAddressAndPortZero) {
  EXPECT_EQ(MustParse(":8080").ToString(), "0.0.0.0:8080");
  EXPECT_EQ(MustParse("*:8080").ToString(), "0.0.0.0:8080");
  Address zero = MustParse("127.0.0.1:0");
  EXPECT_EQ(zero.port(), 0);
  EXPECT_EQ(MustParse("127.0.0.1:65535").port(), 65535);
}

TEST(AddressTest, HostNameResolves) {
  Address a = MustParse("localhost:8080");
  ASSERT_TRUE(a.family() == AF_INET || a.family() == AF_INET6);
  EXPECT_EQ(a.port(), 8080);
  // Resolved once, to a literal: the string form is a parseable literal.
  const std::string s = a.ToString();
  EXPECT_TRUE(s == "127.0.0.1:8080" || s == "[::1]:8080") << s;
}

TEST(AddressTest, UnixPathAndAbstract) {
  Address path = MustParse("unix:/run/zrelay.sock");
  EXPECT_TRUE(path.is_unix());
  EXPECT_EQ(path.port(), 0);
  EXPECT_EQ(path.ToString(), "unix:/run/zrelay.sock");
  const auto* sun = reinterpret_cast<const sockaddr_un*>(path.sockaddr());
  EXPECT_STREQ(sun->sun_path, "/run/zrelay.sock");

  Address abstract = MustParse("unix:@zrelay-test");
  EXPECT_TRUE(abstract.is_unix());
  EXPECT_EQ(abstract.ToString(), "unix:@zrelay-test");
  sun = reinterpret_cast<const sockaddr_un*>(abstract.sockaddr());
  EXPECT_EQ(sun->sun_path[0], '\0');
  // Abstract names are length-delimited, not NUL-terminated.
  EXPECT_EQ(abstract.length(), offsetof(sockaddr_un, sun_path) + 1 + 11);

  // The longest path that fits (107 bytes + NUL).
  const std::string longest = "/" + std::string(106, 'p');
  EXPECT_EQ(MustParse("unix:" + longest).ToString(), "unix:" + longest);
}

TEST(AddressTest, RoundTrips) {
  for (const char* text : {"127.0.0.1:1", "10.1.2.3:65535", "0.0.0.0:0", "[::1]:80",
                           "[fe80::1]:9", "[::ffff:1.2.3.4]:5", "unix:/tmp/a b",
                           "unix:@abstract", "unix:relative/path"}) {
    Address a = MustParse(text);
    EXPECT_EQ(a.ToString(), text);
    Address b = MustParse(a.ToString());
    EXPECT_EQ(b.ToString(), a.ToString());
    EXPECT_EQ(b.length(), a.length());
    EXPECT_EQ(0, std::memcmp(a.sockaddr(), b.sockaddr(), a.length())) << text;
  }
}

TEST(AddressTest, FromKernelSockaddr) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(99);
  sin.sin_addr.s_addr = htonl(0x0a000001);
  Address a(reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  EXPECT_EQ(a.ToString(), "10.0.0.1:99");
}

// The error message quotes the input and says what is wrong.
void ExpectError(std::string_view text, std::string_view reason) {
  Result<Address> a = Address::Parse(text);
  ASSERT_FALSE(a.ok()) << "'" << text << "' parsed as " << a->ToString();
  const std::string& message = a.error().message();
  EXPECT_NE(message.find("'" + std::string(text) + "'"), std::string::npos)
      << "message does not quote the input: " << message;
  EXPECT_NE(message.find(reason), std::string::npos)
      << "message for '" << text << "' lacks '" << reason << "': " << message;
  EXPECT_EQ(a.error().code(), std::make_error_code(std::errc::invalid_argument));
}

TEST(AddressTest, ClearErrors) {
  ExpectError("", "empty");
  ExpectError("127.0.0.1", "missing ':port'");
  ExpectError("localhost", "missing ':port'");
  ExpectError("127.0.0.1:", "missing port");
  ExpectError("1.2.3:x", "not a number");
  ExpectError("127.0.0.1:-1", "not a number");
  ExpectError("127.0.0.1:80a", "not a number");
  ExpectError("127.0.0.1:65536", "out of range (0..65535)");
  ExpectError("127.0.0.1:99999999999999999999", "out of range");
  ExpectError("1.2.3:80", "not a valid IPv4 address");
  ExpectError("256.1.1.1:80", "not a valid IPv4 address");
  ExpectError("[::1:80", "missing ']'");
  ExpectError("[::1]", "missing ':port'");
  ExpectError("[::1]80", "missing ':port'");
  ExpectError("[::g]:80", "not a valid IPv6 address");
  ExpectError("[]:80", "not a valid IPv6 address");
  ExpectError("[1.2.3.4]:80", "not a valid IPv6 address");
  ExpectError("::1:80", "must be written in brackets");
  ExpectError("unix:", "path is empty");
  ExpectError("unix:@", "name is empty");
  ExpectError("unix:/" + std::string(107, 'p'), "longer than the 107");
  ExpectError("unix:@" + std::string(108, 'p'), "longer than the 107");
  ExpectError("no-such-host.invalid:80", "cannot resolve host 'no-such-host.invalid'");
}

}  // namespace
}  // namespace zrelay
