// TlsContextsTest: CertsTest plus a server context (the suite's server
// certificate) and a client context that trusts the suite's CA, built
// before each test. A derived SetUp() calls TlsContextsTest::SetUp() first
// and returns if it failed (HasFatalFailure()).
#pragma once

#include <gtest/gtest.h>

#include "ssl/tls_context.h"
#include "tests/support/certs_fixture.h"

namespace zrelay::testing {

class TlsContextsTest : public CertsTest {
 protected:
  void SetUp() override {
    TlsServerConfig server;
    server.certs = {{certs_->server.cert, certs_->server.key}};
    auto server_ctx = BuildServerContext(server);
    ASSERT_TRUE(server_ctx.ok()) << server_ctx.error().message();
    server_ctx_ = std::move(server_ctx).value();
    TlsClientConfig client;
    client.ca_file = certs_->ca.cert;
    auto client_ctx = BuildClientContext(client);
    ASSERT_TRUE(client_ctx.ok()) << client_ctx.error().message();
    client_ctx_ = std::move(client_ctx).value();
  }

  TlsContext server_ctx_;
  TlsContext client_ctx_;
};

}  // namespace zrelay::testing
