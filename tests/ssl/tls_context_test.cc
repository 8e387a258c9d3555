// BuildServerContext / BuildClientContext: every bad input is an error that
// names it, and a failed build leaves no OpenSSL error behind.
#include "ssl/tls_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>
#include <string>

#include "tests/support/certs_fixture.h"
#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

using ::testing::HasSubstr;

class TlsContextTest : public testing::CertsTest {
 protected:
  void TearDown() override {
    // Every path, failed or not, must leave this thread's queue empty.
    EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL error queue not cleared";
  }

  TlsServerConfig GoodServer() const {
    TlsServerConfig c;
    c.certs = {{certs_->server.cert, certs_->server.key}};
    return c;
  }
  TlsClientConfig GoodClient() const {
    TlsClientConfig c;
    c.ca_file = certs_->ca.cert;
    c.sni = "localhost";
    return c;
  }
  std::string WriteFile(const std::string& name, const std::string& text) const {
    const std::string path = certs_->dir + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

};

std::string ServerError(const TlsServerConfig& c) {
  auto ctx = BuildServerContext(c);
  EXPECT_FALSE(ctx.ok());
  return ctx.ok() ? "" : ctx.error().message();
}

std::string ClientError(const TlsClientConfig& c) {
  auto ctx = BuildClientContext(c);
  EXPECT_FALSE(ctx.ok());
  return ctx.ok() ? "" : ctx.error().message();
}

TEST_F(TlsContextTest, GoodServerAndClientBuild) {
  auto server = BuildServerContext(GoodServer());
  ASSERT_TRUE(server.ok()) << server.error().message();
  EXPECT_TRUE(*server);
  EXPECT_EQ(server->server_cert_count(), 1u);
  auto client = BuildClientContext(GoodClient());
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(client->server_cert_count(), 0u);
}

TEST_F(TlsContextTest, ModesAndOptions) {
  auto ctx = BuildServerContext(GoodServer());
  ASSERT_TRUE(ctx.ok());
  const long mode = SSL_CTX_get_mode(ctx->get());
  EXPECT_TRUE(mode & SSL_MODE_ENABLE_PARTIAL_WRITE);
  EXPECT_TRUE(mode & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  EXPECT_TRUE(mode & SSL_MODE_RELEASE_BUFFERS);
  const uint64_t options = SSL_CTX_get_options(ctx->get());
  EXPECT_TRUE(options & SSL_OP_NO_RENEGOTIATION);
  // Truncation must stay visible (see tls_stream.h, kTruncated).
  EXPECT_FALSE(options & SSL_OP_IGNORE_UNEXPECTED_EOF);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->get()), TLS1_2_VERSION);

  TlsClientConfig c = GoodClient();
  c.min_version = "TLS1.3";
  auto client = BuildClientContext(c);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(SSL_CTX_get_min_proto_version(client->get()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(client->get()), SSL_VERIFY_PEER);
}

TEST_F(TlsContextTest, MissingCertificateFileIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].cert_file = "/nonexistent/x/y.pem";
  EXPECT_EQ(ServerError(c), "certificate file '/nonexistent/x/y.pem': No such file or directory");
}

TEST_F(TlsContextTest, MissingKeyFileIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].key_file = "/nonexistent/k.pem";
  EXPECT_EQ(ServerError(c), "key file '/nonexistent/k.pem': No such file or directory");
}

TEST_F(TlsContextTest, DirectoryAsCertificateIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].cert_file = certs_->dir;
  EXPECT_EQ(ServerError(c), "certificate file '" + certs_->dir + "': not a regular file");
}

TEST_F(TlsContextTest, NotPemCertificateIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].cert_file = WriteFile("garbage.pem", "this is not a certificate\n");
  const std::string msg = ServerError(c);
  EXPECT_THAT(msg, HasSubstr("certificate file '" + c.certs[0].cert_file + "'"));
  EXPECT_THAT(msg, HasSubstr("no start line"));  // OpenSSL's reason is kept
}

TEST_F(TlsContextTest, NotPemKeyIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].key_file = WriteFile("garbage.key", "not a key\n");
  EXPECT_THAT(ServerError(c), HasSubstr("key file '" + c.certs[0].key_file + "'"));
}

TEST_F(TlsContextTest, KeyNotMatchingCertificateIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs[0].key_file = certs_->second.key;
  EXPECT_EQ(ServerError(c), "key '" + certs_->second.key + "' does not match certificate '" +
                                certs_->server.cert + "'");
}

TEST_F(TlsContextTest, MismatchInAnSniCertificateIsNamed) {
  TlsServerConfig c = GoodServer();
  c.certs.push_back({certs_->second.cert, certs_->client.key});
  EXPECT_EQ(ServerError(c), "key '" + certs_->client.key + "' does not match certificate '" +
                                certs_->second.cert + "'");
}

TEST_F(TlsContextTest, UnknownCipherListIsNamed) {
  TlsServerConfig c = GoodServer();
  c.ciphers = "NO-SUCH-CIPHER";
  EXPECT_THAT(ServerError(c), HasSubstr("unknown cipher list 'NO-SUCH-CIPHER'"));
  TlsClientConfig cc = GoodClient();
  cc.ciphers = "ALSO-BOGUS";
  EXPECT_THAT(ClientError(cc), HasSubstr("'ALSO-BOGUS'"));
}

TEST_F(TlsContextTest, UnknownCiphersuiteIsNamed) {
  TlsServerConfig c = GoodServer();
  c.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_NOPE_SHA999";
  EXPECT_EQ(ServerError(c),
            "unknown TLS 1.3 ciphersuite 'TLS_NOPE_SHA999' in "
            "'TLS_AES_128_GCM_SHA256:TLS_NOPE_SHA999'");
}

TEST_F(TlsContextTest, GoodCipherSettingsBuild) {
  TlsServerConfig c = GoodServer();
  c.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
  c.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
  auto ctx = BuildServerContext(c);
  EXPECT_TRUE(ctx.ok()) << ctx.error().message();
}

TEST_F(TlsContextTest, BadAlpnIsNamed) {
  TlsServerConfig c = GoodServer();
  c.alpn = {"h2", ""};
  EXPECT_EQ(ServerError(c), "ALPN protocol #2 is empty");
  c.alpn = {std::string(256, 'x')};
  EXPECT_THAT(ServerError(c), HasSubstr("ALPN protocol #1 'xxxx"));
  EXPECT_THAT(ServerError(c), HasSubstr("is 256 bytes (at most 255)"));
  TlsClientConfig cc = GoodClient();
  cc.alpn = {""};
  EXPECT_EQ(ClientError(cc), "ALPN protocol #1 is empty");
  c.alpn = {std::string(255, 'x')};  // the limit itself is fine
  EXPECT_TRUE(BuildServerContext(c).ok());
}

TEST_F(TlsContextTest, BadMinVersionIsNamed) {
  TlsServerConfig c = GoodServer();
  c.min_version = "TLS1.9";
  EXPECT_EQ(ServerError(c), "unknown TLS version 'TLS1.9' (use TLS1.2 or TLS1.3)");
  TlsClientConfig cc = GoodClient();
  cc.min_version = "SSLv3";
  EXPECT_EQ(ClientError(cc), "unknown TLS version 'SSLv3' (use TLS1.2 or TLS1.3)");
  EXPECT_EQ(ParseTlsVersion("TLSv1.3").value(), TLS1_3_VERSION);
}

TEST_F(TlsContextTest, NoCertificateIsAnError) {
  EXPECT_EQ(ServerError(TlsServerConfig{}), "TLS server: no certificate configured");
  TlsServerConfig c = GoodServer();
  c.certs[0].key_file.clear();
  EXPECT_EQ(ServerError(c), "TLS server: certificate #1 needs both cert_file and key_file");
}

TEST_F(TlsContextTest, MissingClientCaFileIsNamed) {
  TlsServerConfig c = GoodServer();
  c.client_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(ServerError(c), "client CA file '/nonexistent/ca.pem': No such file or directory");
  c.client_ca_file = WriteFile("empty_ca.pem", "");
  EXPECT_THAT(ServerError(c), HasSubstr("client CA file '" + c.client_ca_file + "'"));
}

TEST_F(TlsContextTest, ClientCaErrorsAreNamed) {
  TlsClientConfig c = GoodClient();
  c.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(ClientError(c), "CA file '/nonexistent/ca.pem': No such file or directory");
  c.ca_file.clear();
  c.ca_dir = "/nonexistent/certs";
  EXPECT_EQ(ClientError(c), "CA directory '/nonexistent/certs': No such file or directory");
  c.ca_dir = certs_->ca.cert;
  EXPECT_EQ(ClientError(c), "CA directory '" + certs_->ca.cert + "': not a directory");
  c.ca_dir = certs_->dir;  // a directory without hashed names still loads
  EXPECT_TRUE(BuildClientContext(c).ok());
}

TEST_F(TlsContextTest, ClientCertificateNeedsBothFiles) {
  TlsClientConfig c = GoodClient();
  c.cert_file = certs_->client.cert;
  EXPECT_THAT(ClientError(c), HasSubstr("needs both cert_file and key_file"));
  c.key_file = certs_->server.key;
  EXPECT_EQ(ClientError(c), "key '" + certs_->server.key + "' does not match certificate '" +
                                certs_->client.cert + "'");
  c.key_file = certs_->client.key;
  EXPECT_TRUE(BuildClientContext(c).ok());
}

TEST_F(TlsContextTest, VerifyDepthOutOfRange) {
  TlsClientConfig c = GoodClient();
  c.verify_depth = -1;
  EXPECT_EQ(ClientError(c), "verify_depth -1 out of range (0..100)");
}

TEST_F(TlsContextTest, LongSniIsRejected) {
  TlsClientConfig c = GoodClient();
  c.sni = std::string(300, 'a');
  EXPECT_THAT(ClientError(c), HasSubstr("longer than 255 bytes"));
}

TEST_F(TlsContextTest, SniCertificatesAreCounted) {
  TlsServerConfig c = GoodServer();
  c.certs.push_back({certs_->second.cert, certs_->second.key});
  c.certs.push_back({certs_->wrong_name.cert, certs_->wrong_name.key});
  auto ctx = BuildServerContext(c);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message();
  EXPECT_EQ(ctx->server_cert_count(), 3u);
}

TEST_F(TlsContextTest, MoveTransfersOwnership) {
  auto built = BuildServerContext(GoodServer());
  ASSERT_TRUE(built.ok());
  TlsContext a = std::move(built.value());
  SSL_CTX* raw = a.get();
  TlsContext b(std::move(a));
  EXPECT_EQ(a.get(), nullptr);  // NOLINT: checking the moved-from state
  EXPECT_EQ(b.get(), raw);
  TlsContext c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
}

TEST_F(TlsContextTest, NewSslHelpers) {
  auto server = BuildServerContext(GoodServer());
  auto client = BuildClientContext(GoodClient());
  ASSERT_TRUE(server.ok() && client.ok());
  SSL* s = NewServerSsl(*server, 0);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(SSL_is_server(s));
  EXPECT_EQ(SSL_get_fd(s), 0);
  SSL_free(s);

  SSL* c = NewClientSsl(*client, 0);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(SSL_is_server(c));
  EXPECT_STREQ(SSL_get_servername(c, TLSEXT_NAMETYPE_host_name), "localhost");
  EXPECT_STREQ(SSL_get0_peername(c), nullptr);  // set only after verification
  SSL_free(c);

  c = NewClientSsl(*client, 0, "override.test");
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(SSL_get_servername(c, TLSEXT_NAMETYPE_host_name), "override.test");
  SSL_free(c);

  // IP literals are verified but never sent as SNI (RFC 6066).
  c = NewClientSsl(*client, 0, "127.0.0.1");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(SSL_get_servername(c, TLSEXT_NAMETYPE_host_name), nullptr);
  SSL_free(c);

  EXPECT_EQ(NewClientSsl(*client, 0, std::string(256, 'a')), nullptr);
  EXPECT_EQ(NewClientSsl(*client, 0, std::string("a\0b", 3)), nullptr);
}

}  // namespace
}  // namespace zrelay
