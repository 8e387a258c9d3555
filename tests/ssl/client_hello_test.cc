// ParseClientHello on ClientHellos written by a real OpenSSL client (through
// a memory BIO), on every prefix of them, on re-fragmented and hand-built
// ones, on hostile mutations, and on a real socket with MSG_PEEK.
#include "ssl/client_hello.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/ssl/client_hello_capture.h"
#include "tests/ssl/tls_test_util.h"
#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::CaptureClientHello;

// Parses from an exactly-sized heap copy, so ASan flags any read past the end.
ClientHelloPeek Parse(std::string_view bytes) {
  std::unique_ptr<char[]> copy(new char[bytes.size() + 1]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  return ParseClientHello(std::string_view(copy.get(), bytes.size()));
}

// Cuts the handshake message out of `hello` (one record) and re-frames it
// into records of at most `chunk` bytes.
std::string Refragment(const std::string& hello, size_t chunk) {
  const std::string message = hello.substr(5);
  std::string out;
  for (size_t i = 0; i < message.size(); i += chunk) {
    const size_t n = std::min(chunk, message.size() - i);
    out += "\x16\x03\x01";
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
    out += message.substr(i, n);
  }
  return out;
}

std::string U16(size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

// A minimal TLS 1.2-style ClientHello with the given raw extensions block
// (nullptr: no extensions field at all).
std::string BuildHello(const std::string* extensions) {
  std::string body = "\x03\x03" + std::string(32, 'r');  // version, random
  body += '\0';                                           // no session id
  body += U16(2) + "\x13\x01";                            // one suite
  body += std::string("\x01\x00", 2);                     // null compression
  if (extensions) body += U16(extensions->size()) + *extensions;
  std::string msg = "\x01" + std::string(1, '\0') + U16(body.size()) + body;
  return "\x16\x03\x01" + U16(msg.size()) + msg;
}

std::string Ext(uint16_t type, const std::string& data) { return U16(type) + U16(data.size()) + data; }
std::string SniExt(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += std::string(1, '\0') + U16(n.size()) + n;
  return Ext(0, U16(list.size()) + list);
}

TEST(ClientHelloTest, RealHelloWithSniAndAlpn) {
  const std::string hello = CaptureClientHello({"h2", "http/1.1"}, "Example.COM");
  ASSERT_GT(hello.size(), 100u);
  ClientHelloPeek p = Parse(hello);
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "example.com");  // DNS names compare lower-case
  EXPECT_THAT(p.hello.alpn, ElementsAre("h2", "http/1.1"));
  EXPECT_TRUE(p.hello.offers_tls13);
  EXPECT_EQ(p.hello.legacy_version, 0x0303);
}

TEST(ClientHelloTest, RealHelloWithoutSniOrAlpn) {
  ClientHelloPeek p = Parse(CaptureClientHello({}, ""));
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "");
  EXPECT_THAT(p.hello.alpn, IsEmpty());
}

TEST(ClientHelloTest, RealTls12OnlyHello) {
  ClientHelloPeek p = Parse(CaptureClientHello({"http/1.1"}, "legacy.test", TLS1_2_VERSION));
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "legacy.test");
  EXPECT_FALSE(p.hello.offers_tls13);
}

TEST(ClientHelloTest, EveryPrefixNeedsMore) {
  const std::string hello = CaptureClientHello({"h2"}, "prefix.test");
  for (size_t n = 0; n < hello.size(); ++n) {
    ClientHelloPeek p = Parse(hello.substr(0, n));
    ASSERT_EQ(p.status, PeekStatus::kNeedMore) << "prefix " << n << ": " << p.error;
    ASSERT_GT(p.needed, n);
    ASSERT_LE(p.needed, hello.size());
  }
}

TEST(ClientHelloTest, FragmentedAcrossRecords) {
  const std::string hello = CaptureClientHello({"h2", "http/1.1"}, "frag.test");
  for (size_t chunk : {1, 3, 4, 50, 200, 16384}) {
    SCOPED_TRACE(chunk);
    const std::string framed = Refragment(hello, chunk);
    ClientHelloPeek p = Parse(framed);
    ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
    EXPECT_EQ(p.hello.sni, "frag.test");
    EXPECT_THAT(p.hello.alpn, ElementsAre("h2", "http/1.1"));
    for (size_t n = 0; n < framed.size(); n += std::max<size_t>(1, framed.size() / 97)) {
      ClientHelloPeek q = Parse(framed.substr(0, n));
      ASSERT_EQ(q.status, PeekStatus::kNeedMore) << n;
      ASSERT_GT(q.needed, n);
    }
  }
}

TEST(ClientHelloTest, TrailingBytesAfterTheHelloAreIgnored) {
  const std::string hello = CaptureClientHello({}, "x.test");
  ClientHelloPeek p = Parse(hello + "\x14\x03\x03\x00\x01\x01 and more");
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "x.test");
}

TEST(ClientHelloTest, PlainHttpIsNotTlsFromTheFirstByte) {
  for (std::string text : {"G", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n"}) {
    ClientHelloPeek p = Parse(text);
    EXPECT_EQ(p.status, PeekStatus::kNotTls) << text;
    EXPECT_THAT(p.error, HasSubstr("is not a TLS handshake record"));
  }
  EXPECT_THAT(Parse("G").error, HasSubstr("0x47"));
}

TEST(ClientHelloTest, OtherTlsLookalikesAreNotClientHellos) {
  const std::pair<std::string, std::string> cases[] = {
      {std::string("\x15\x03\x03\x00\x02\x02\x28", 7), "not a TLS handshake record"},  // alert
      {std::string("\x16\x04", 2), "record version major 0x04"},
      {std::string("\x80\x2e\x01\x00\x02", 5), "0x80"},  // SSLv2-style hello
      {std::string("\x16\x03\x03\x00\x00", 5), "TLS record length 0"},
      {std::string("\x16\x03\x03\x40\x01", 5), "TLS record length 16385"},
      {std::string("\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9), "type 2 is not ClientHello"},
      {std::string("\x16\x03\x03\x00\x04\x01\x01\x00\x00", 9), "ClientHello of 65536 bytes"},
  };
  for (const auto& [bytes, want] : cases) {
    ClientHelloPeek p = Parse(bytes);
    EXPECT_EQ(p.status, PeekStatus::kNotTls) << want;
    EXPECT_THAT(p.error, HasSubstr(want));
  }
}

TEST(ClientHelloTest, NonHandshakeRecordInsideAHelloIsRefused) {
  const std::string framed = Refragment(CaptureClientHello({}, "a.test"), 100);
  std::string broken = framed;
  broken[105] = 0x17;  // second record claims to be application data
  ClientHelloPeek p = Parse(broken);
  EXPECT_EQ(p.status, PeekStatus::kNotTls);
  EXPECT_THAT(p.error, HasSubstr("record 2 has type 0x17"));
}

TEST(ClientHelloTest, HandBuiltHellos) {
  // No extensions at all (legal before TLS 1.3).
  ClientHelloPeek p = Parse(BuildHello(nullptr));
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "");

  const std::string alpn = Ext(16, U16(7) + "\x02h2\x03" "abc");
  const std::string good = SniExt({"Host.Test"}) + alpn;
  p = Parse(BuildHello(&good));
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "host.test");
  EXPECT_THAT(p.hello.alpn, ElementsAre("h2", "abc"));

  const std::pair<std::string, std::string> bad[] = {
      {SniExt({"a.test"}) + SniExt({"b.test"}), "repeats extension 0"},
      {SniExt({"a.test", "b.test"}), "two host names"},
      {SniExt({std::string("a\0b", 3)}), "has byte 0x00"},
      {SniExt({"has space"}), "has byte 0x20"},
      {SniExt({""}), "host name of 0 bytes"},
      {SniExt({std::string(256, 'a')}), "host name of 256 bytes"},
      {Ext(0, U16(50) + "short"), "malformed server_name"},
      {Ext(16, U16(3) + std::string("\x00\x01" "a", 3)), "malformed ALPN"},  // empty protocol
      {Ext(16, U16(9) + "\x02h2"), "malformed ALPN"},        // list longer than data
      {Ext(16, U16(0)), "malformed ALPN"},
      {Ext(43, "\x03\x03\x04\x03"), "malformed supported_versions"},
      {U16(0) + U16(500) + "x", "malformed ClientHello extensions"},  // ext overruns
  };
  for (const auto& [exts, want] : bad) {
    p = Parse(BuildHello(&exts));
    EXPECT_EQ(p.status, PeekStatus::kNotTls) << want;
    EXPECT_THAT(p.error, HasSubstr(want));
  }

  // Bytes after the extensions block, inside the message, are malformed.
  std::string trailing = BuildHello(&good);
  trailing.insert(trailing.size(), "zz");
  trailing[3] = static_cast<char>((trailing.size() - 5) >> 8);  // fix record length
  trailing[4] = static_cast<char>((trailing.size() - 5) & 0xff);
  trailing[8] = static_cast<char>(trailing[8] + 2);  // and message length
  p = Parse(trailing);
  EXPECT_EQ(p.status, PeekStatus::kNotTls);
  EXPECT_THAT(p.error, HasSubstr("malformed ClientHello extensions"));
}

TEST(ClientHelloTest, MutatedHellosNeverCrash) {
  // Random corruption of real hellos: whatever comes out, nothing is read
  // out of bounds (ASan), and a kOk result is well-formed.
  const std::string base = CaptureClientHello({"h2", "http/1.1"}, "fuzz.test");
  const std::string fragmented = Refragment(base, 37);
  std::mt19937 rng(1234);
  int ok = 0, not_tls = 0, need_more = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = (i % 2) ? base : fragmented;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) s[rng() % s.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) s.resize(rng() % s.size());
    ClientHelloPeek p = Parse(s);
    switch (p.status) {
      case PeekStatus::kOk:
        ++ok;
        EXPECT_LE(p.hello.sni.size(), 255u);
        for (const auto& proto : p.hello.alpn) EXPECT_FALSE(proto.empty());
        break;
      case PeekStatus::kNotTls:
        ++not_tls;
        EXPECT_FALSE(p.error.empty());
        break;
      case PeekStatus::kNeedMore:
        ++need_more;
        EXPECT_GT(p.needed, s.size());
        break;
    }
  }
  // The corpus really exercised all three outcomes.
  EXPECT_GT(ok, 100);
  EXPECT_GT(not_tls, 100);
  EXPECT_GT(need_more, 100);
}

TEST(ClientHelloTest, PeekOnARealSocketLeavesTheHandshakeIntact) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  TlsServerConfig sc;
  sc.certs = {{certs->server.cert, certs->server.key}};
  TlsClientConfig cc;
  cc.ca_file = certs->ca.cert;
  cc.sni = "localhost";
  cc.alpn = {"h2"};
  auto server_ctx = BuildServerContext(sc);
  auto client_ctx = BuildClientContext(cc);
  ASSERT_TRUE(server_ctx.ok() && client_ctx.ok());

  testing::TcpPair fds = testing::MakeTcpPair();
  TlsStream client(NewClientSsl(*client_ctx, fds.client.get()));
  ASSERT_TRUE(client.Handshake().would_block());

  // SNI routing: peek until the ClientHello is complete, consuming nothing.
  char buf[kMaxClientHello + 64];
  ClientHelloPeek p;
  for (int tries = 0; tries < 50 && p.status == PeekStatus::kNeedMore; ++tries) {
    pollfd pfd{fds.server.get(), POLLIN, 0};
    poll(&pfd, 1, 100);
    const ssize_t n = recv(fds.server.get(), buf, sizeof buf, MSG_PEEK);
    if (n > 0) p = ParseClientHello(std::string_view(buf, n));
  }
  ASSERT_EQ(p.status, PeekStatus::kOk) << p.error;
  EXPECT_EQ(p.hello.sni, "localhost");
  EXPECT_THAT(p.hello.alpn, ElementsAre("h2"));

  // The bytes are still queued: a terminating server can take over.
  TlsStream server(NewServerSsl(*server_ctx, fds.server.get()));
  auto hs = testing::Handshake(client, fds.client.get(), server, fds.server.get());
  EXPECT_TRUE(hs.ok()) << testing::Describe(hs.client) << " / " << testing::Describe(hs.server);
  EXPECT_EQ(server.sni(), "localhost");
  testing::RemoveTestCerts(*certs);
}

}  // namespace
}  // namespace zrelay
