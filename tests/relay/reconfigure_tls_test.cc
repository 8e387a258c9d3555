// A TLS listener's contexts outlive the caller's: the engine holds its own
// SSL_CTX references, so zrelayd may free the contexts it passed to Listen
// or Reconfigure as soon as the call returned (under ASan, a context freed
// too early is a use after free here).
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>

#include <optional>
#include <string>

#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/relay_test_util.h"
#include "tests/relay/reload_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::kClientBytes;
using testing::kNewSeed;
using testing::kOldSeed;
using testing::kUpSeed;
using testing::SeededBackend;

// The test's own TLS client writes to sockets the relay may close.
const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

class ReconfigureTlsTest : public testing::CertsTest {
 protected:
  TlsContext ServerContext() {
    TlsServerConfig config;
    config.certs = {{certs_->server.cert, certs_->server.key}};
    auto ctx = BuildServerContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return ctx.ok() ? std::move(ctx).value() : TlsContext();
  }

  // A TLS client, verified against the test CA: kClientBytes of kUpSeed up,
  // close_notify, then the answer; the seed it is, or 0.
  uint64_t TlsClient(const Address& front) {
    TlsClientConfig config;
    config.ca_file = certs_->ca.cert;
    auto ctx = BuildClientContext(config);
    if (!ctx.ok()) return 0;
    auto fd = testing::BlockingConnect(front);
    if (!fd.ok()) return 0;
    SSL* ssl = NewClientSsl(*ctx, fd->get(), "localhost");
    if (ssl == nullptr) return 0;
    std::string got;
    std::string up(kClientBytes, '\0');
    testing::FillPattern(kUpSeed, 0, up.data(), up.size());
    // The context allows partial writes (zrelay's own sockets are
    // non-blocking): write until all is out.
    size_t sent = 0;
    if (SSL_connect(ssl) == 1) {
      for (int n; sent < up.size(); sent += static_cast<size_t>(n)) {
        n = SSL_write(ssl, up.data() + sent, static_cast<int>(up.size() - sent));
        if (n <= 0) break;
      }
    }
    if (sent == up.size()) {
      SSL_shutdown(ssl);
      char buf[16 << 10];
      for (int n; (n = SSL_read(ssl, buf, sizeof(buf))) > 0;) got.append(buf, n);
    }
    SSL_free(ssl);
    for (uint64_t seed : {kOldSeed, kNewSeed}) {
      std::string want(kClientBytes, '\0');
      testing::FillPattern(seed, 0, want.data(), want.size());
      if (got == want) return seed;
    }
    return 0;
  }
};

TEST_F(ReconfigureTlsTest, ContextsFreedByTheCallerStayUsable) {
  ASSERT_TRUE(kSigpipeIgnored);
  SeededBackend old_backend(kOldSeed), new_backend(kNewSeed);
  auto engine = testing::StartEngine({.workers = 2});
  ASSERT_TRUE(engine.ok()) << engine.error().message();

  std::optional<TlsContext> first = ServerContext();
  ListenOptions options;
  options.address = testing::Loopback();
  options.backends.push_back(BackendOptions{old_backend.address(), nullptr, {}});
  options.tls = first->get();
  auto id = (*engine)->Listen(options);
  ASSERT_TRUE(id.ok()) << id.error().message();
  first.reset();
  const Address front = (*engine)->ListenAddress(*id).value();
  EXPECT_EQ(TlsClient(front), kOldSeed);

  std::optional<TlsContext> second = ServerContext();
  options.backends = {BackendOptions{new_backend.address(), nullptr, {}}};
  options.tls = second->get();
  Status st = (*engine)->Reconfigure(*id, options);
  ASSERT_TRUE(st.ok()) << st.error().message();
  second.reset();
  EXPECT_EQ(TlsClient(front), kNewSeed);
}

}  // namespace
}  // namespace zrelay
