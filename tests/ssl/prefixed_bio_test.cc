// PrependReadBytes: a server that read the first bytes of a ClientHello
// itself (as a STARTTLS server's line reader does) hands them to OpenSSL,
// which reads them before the rest from the non-blocking socket.
#include "ssl/prefixed_bio.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>

#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/ssl/tls_test_util.h"
#include "tests/support/tls_contexts_fixture.h"

namespace zrelay {
namespace {

class PrefixedBioTest : public testing::TlsContextsTest {
 protected:
  // Reads exactly `n` bytes from a non-blocking fd (polling), within 5 s.
  static std::string ReadRaw(int fd, size_t n) {
    std::string out;
    while (out.size() < n) {
      struct pollfd pfd {
        fd, POLLIN, 0
      };
      if (::poll(&pfd, 1, 5000) != 1) break;
      char buf[512];
      const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
      if (r <= 0) break;
      out.append(buf, static_cast<size_t>(r));
    }
    return out;
  }
};

TEST_F(PrefixedBioTest, HandshakeStartsFromThePrefixThenTheSocket) {
  testing::TcpPair p = testing::MakeTcpPair();
  TlsStream client(NewClientSsl(client_ctx_, p.client.get(), "localhost"));
  ASSERT_EQ(client.Handshake().status, TlsIo::kWantRead);  // the ClientHello is out
  // The first bytes of the record (its header and a little more), taken by
  // the server itself; the rest stays in the socket.
  const std::string taken = ReadRaw(p.server.get(), 9);
  ASSERT_EQ(taken.size(), 9u);
  ASSERT_EQ(taken[0], 0x16) << "not a TLS handshake record";

  SSL* ssl = NewServerSsl(server_ctx_, p.server.get());
  ASSERT_NE(ssl, nullptr);
  ASSERT_TRUE(PrependReadBytes(ssl, taken));
  EXPECT_EQ(SSL_get_fd(ssl), p.server.get());  // the socket is still found
  TlsStream server(ssl);
  testing::HandshakeResults hs = testing::Handshake(client, p.client.get(), server, p.server.get());
  ASSERT_TRUE(hs.ok()) << testing::Describe(hs.client) << " / " << testing::Describe(hs.server);
  EXPECT_EQ(server.sni(), "localhost");

  std::string up(200000, '\0'), down(300000, '\0');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>(i * 7);
  for (size_t i = 0; i < down.size(); ++i) down[i] = static_cast<char>(i * 13);
  testing::TransferResult t =
      testing::Transfer(client, p.client.get(), server, p.server.get(), up, down);
  ASSERT_TRUE(t.error.empty()) << t.error;
  EXPECT_TRUE(t.received_by_b == up);
  EXPECT_TRUE(t.received_by_a == down);
}

TEST_F(PrefixedBioTest, NoBytesLeavesTheSslAsItWas) {
  testing::TcpPair p = testing::MakeTcpPair();
  SSL* ssl = NewServerSsl(server_ctx_, p.server.get());
  ASSERT_NE(ssl, nullptr);
  BIO* before = SSL_get_rbio(ssl);
  EXPECT_TRUE(PrependReadBytes(ssl, std::string()));
  EXPECT_EQ(SSL_get_rbio(ssl), before);
  SSL_free(ssl);
}

}  // namespace
}  // namespace zrelay
