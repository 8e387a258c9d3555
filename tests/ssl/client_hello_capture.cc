#include "tests/ssl/client_hello_capture.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ssl/tls_context.h"

namespace zrelay::testing {

std::string CaptureClientHello(const std::vector<std::string>& alpn, std::string_view sni,
                               int max_version) {
  TlsClientConfig config;
  config.verify = false;
  config.alpn = alpn;
  auto ctx = BuildClientContext(config);
  EXPECT_TRUE(ctx.ok()) << ctx.error().message();
  SSL* ssl = NewClientSsl(*ctx, -1, sni);
  EXPECT_NE(ssl, nullptr);
  if (ssl == nullptr) return "";
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);  // replaces the fd BIO; the SSL owns both
  if (max_version != 0) SSL_set_max_proto_version(ssl, max_version);
  const int ret = SSL_connect(ssl);
  EXPECT_EQ(SSL_get_error(ssl, ret), SSL_ERROR_WANT_READ);
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio, &data);
  std::string hello(data, n > 0 ? n : 0);
  SSL_free(ssl);
  ERR_clear_error();
  return hello;
}

}  // namespace zrelay::testing
