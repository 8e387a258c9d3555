// A host backend with TLS: each of the name's addresses is reached with the
// host name as SNI and as the name verified, never the IP.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/pool_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::kDownSeed;
using testing::kUpSeed;

// A TLS server for one connection at a time, serving certificate `cert`:
// reads the pattern kUpSeed to close_notify, checks it, answers as many
// bytes of kDownSeed, and records the SNI each client sent.
class TlsEchoBackend {
 public:
  explicit TlsEchoBackend(const testing::CertFiles& cert) {
    TlsServerConfig config;
    config.certs = {{cert.cert, cert.key}};
    auto ctx = BuildServerContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    if (ctx.ok()) ctx_ = std::move(ctx.value());
    auto fd = ListenOn(testing::Loopback());
    EXPECT_TRUE(fd.ok());
    fd_ = std::move(fd.value());
    testing::SetBlocking(fd_.get(), true);
    address_ = LocalAddress(fd_.get()).value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsEchoBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  const Address& address() const { return address_; }
  int served() const { return served_.load(); }
  bool ok() const { return ok_.load(); }
  std::vector<std::string> names() {
    std::lock_guard<std::mutex> lock(mu_);
    return names_;
  }

 private:
  void Serve() {
    for (;;) {
      int c = ::accept(fd_.get(), nullptr, nullptr);
      if (c < 0) return;
      SSL* ssl = NewServerSsl(ctx_, c);
      if (SSL_accept(ssl) == 1) {
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        {
          std::lock_guard<std::mutex> lock(mu_);
          names_.push_back(name ? name : "");
        }
        Echo(ssl);
      }
      SSL_free(ssl);
      ::close(c);
    }
  }

  void Echo(SSL* ssl) {
    char buf[16384];
    uint64_t got = 0;
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) {
        if (static_cast<uint8_t>(buf[i]) != testing::PatternByte(kUpSeed, got + i)) ok_ = false;
      }
      got += static_cast<uint64_t>(n);
    }
    for (uint64_t sent = 0; sent < got;) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(sizeof buf, got - sent));
      testing::FillPattern(kDownSeed, sent, buf, len);
      if (SSL_write(ssl, buf, static_cast<int>(len)) <= 0) {
        ok_ = false;
        return;
      }
      sent += len;
    }
    // Counted before close_notify: the relay may close the pair, and the
    // test read served(), as soon as close_notify reaches it.
    ++served_;
    SSL_shutdown(ssl);
  }

  TlsContext ctx_;
  UniqueFd fd_;
  Address address_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> names_;
  std::atomic<int> served_{0};
  std::atomic<bool> ok_{true};
};

class ResolveTlsTest : public testing::CertsTest {};

TEST_F(ResolveTlsTest, AddressesOfANameAreVerifiedAgainstTheName) {
  // other.test's certificate has no IP in it: verifying the IP would fail.
  TlsEchoBackend backend(certs_->second);
  TlsClientConfig client;
  client.ca_file = certs_->ca.cert;
  auto client_ctx = BuildClientContext(client);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.error().message();

  auto engine = testing::StartEngine({.workers = 2});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  testing::CloseRecorder closes;
  ListenOptions o;
  o.address = testing::Loopback();
  BackendOptions b;
  b.host = "other.test";
  b.port = backend.address().port();
  b.tls = client_ctx->get();
  o.backends.push_back(b);
  const Address target = backend.address();
  o.resolve = [target](const std::string& host, int port) -> Result<std::vector<Address>> {
    if (host != "other.test" || port != target.port()) return Error::Invalid("unexpected lookup");
    return std::vector<Address>{target};
  };
  o.on_close = closes.Callback();
  auto id = (*engine)->Listen(o);
  ASSERT_TRUE(id.ok()) << id.error().message();
  const Address front = (*engine)->ListenAddress(*id).value();

  for (int i = 0; i < 3; ++i) EXPECT_TRUE(testing::RoundTrip(front, 100000)) << "client " << i;
  auto closed = closes.WaitFor(3);
  ASSERT_EQ(closed.size(), 3u);
  for (const PairStats& s : closed) {
    EXPECT_NE(s.cause, CloseCause::kError) << s.detail;
    EXPECT_EQ(s.backend.ToString(), target.ToString());
  }
  EXPECT_EQ(backend.served(), 3);
  EXPECT_TRUE(backend.ok());
  EXPECT_EQ(backend.names(), std::vector<std::string>(3, "other.test"));
}

}  // namespace
}  // namespace zrelay
