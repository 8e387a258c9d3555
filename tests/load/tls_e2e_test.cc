// zrelay-load --tls against a TLS echo server on loopback: bulk (both ways,
// verified), rr and connect over TLS; certificate verification on by default
// (unknown CA and wrong name fail as counted errors), --tls-insecure, and
// setup errors naming the flag.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/load/load_test_util.h"
#include "tests/support/test_certs.h"
#include "tools/load/session.h"

namespace zrelay::load {
namespace {

using testing::RunClientAt;

constexpr int kOther = static_cast<int>(ErrorKind::kOther);

// A blocking TLS echo server: one thread accepts, one thread per connection
// echoes until the client's close_notify, answers with its own, and closes.
// Every blocking call is bounded (poll timeouts, SO_RCVTIMEO/SO_SNDTIMEO).
class TlsEchoServer {
 public:
  TlsEchoServer(TlsContext ctx, int family) : ctx_(std::move(ctx)) {
    auto at = Address::Parse(family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0");
    auto fd = ListenOn(*at, {.backlog = 128, .reuse_port = false});
    EXPECT_TRUE(fd.ok());
    if (!fd.ok()) return;
    listener_ = std::move(fd).value();
    address_ = LocalAddress(listener_.get()).value();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TlsEchoServer() {
    stop_ = true;
    if (accept_thread_.joinable()) accept_thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) t.join();
  }
  const Address& address() const { return address_; }
  int handshakes_failed() const { return handshakes_failed_.load(); }

 private:
  void AcceptLoop() {
    const TimePoint end = Clock::now() + seconds(60);
    while (!stop_ && Clock::now() < end) {
      struct pollfd p {
        listener_.get(), POLLIN, 0
      };
      if (::poll(&p, 1, 50) != 1) continue;
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      struct timeval tv {
        5, 0
      };
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      (void)SetNoDelay(fd);
      std::lock_guard<std::mutex> lock(mu_);
      conns_.emplace_back([this, fd] { Echo(UniqueFd(fd)); });
    }
  }

  void Echo(UniqueFd fd) {
    TlsStream tls(NewServerSsl(ctx_, fd.get()));
    if (!tls.Handshake().ok()) {
      handshakes_failed_.fetch_add(1);
      return;
    }
    std::vector<char> buf(64 << 10);
    for (;;) {
      TlsResult r = tls.Read(buf.data(), buf.size());
      if (r.status == TlsIo::kEof) break;
      if (!r.ok()) return;
      for (size_t off = 0; off < r.bytes;) {
        TlsResult w = tls.Write(buf.data() + off, r.bytes - off);
        if (!w.ok()) return;
        off += w.bytes;
      }
    }
    (void)tls.Shutdown();
    ::shutdown(fd.get(), SHUT_WR);
  }

  TlsContext ctx_;
  UniqueFd listener_;
  Address address_;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_failed_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

class LoadTlsTest : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() {
    auto certs = zrelay::testing::MakeTestCerts();
    ASSERT_TRUE(certs.ok()) << certs.error().message();
    certs_ = new zrelay::testing::TestCerts(std::move(certs).value());
  }
  static void TearDownTestSuite() {
    if (certs_) zrelay::testing::RemoveTestCerts(*certs_);
    delete certs_;
    certs_ = nullptr;
  }

  // A server with the certificate for localhost / 127.0.0.1 / ::1, or
  // `untrusted` (same names, issued by a CA nobody trusts).
  std::unique_ptr<TlsEchoServer> StartServer(bool untrusted = false) {
    TlsServerConfig config;
    const auto& cert = untrusted ? certs_->untrusted : certs_->server;
    config.certs = {{cert.cert, cert.key}};
    auto ctx = BuildServerContext(config);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message();
    return std::make_unique<TlsEchoServer>(std::move(ctx).value(), GetParam());
  }

  static Report Run(const Address& target, const std::vector<std::string>& args) {
    auto r = RunClientAt(target, args);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? std::move(r).value() : Report();
  }

  static zrelay::testing::TestCerts* certs_;
};

zrelay::testing::TestCerts* LoadTlsTest::certs_ = nullptr;

TEST_P(LoadTlsTest, BulkBothWaysVerifiedOverTls) {
  auto server = StartServer();
  Report r = Run(server->address(), {"bulk", "--tls", "--tls-ca", certs_->ca.cert, "--direction",
                                     "both", "--bytes", "8M", "--streams", "2", "--verify"});
  EXPECT_TRUE(r.complete) << r.incomplete_why;
  EXPECT_TRUE(r.tls);
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.bytes_up, 8u << 20);
  EXPECT_EQ(r.bytes_down, 8u << 20);
}

TEST_P(LoadTlsTest, RrOverTls) {
  auto server = StartServer();
  Report r = Run(server->address(), {"rr", "--tls", "--tls-ca", certs_->ca.cert, "--requests",
                                     "1000", "--conns", "4", "--req", "64", "--resp", "64"});
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 1000u);
  EXPECT_EQ(r.latency.count(), 1000u);
}

TEST_P(LoadTlsTest, ConnectOverTlsIncludesTheHandshake) {
  auto server = StartServer();
  Report r = Run(server->address(), {"connect", "--tls", "--tls-ca", certs_->ca.cert, "--count",
                                     "40", "--conns", "2", "--req", "32", "--resp", "32"});
  EXPECT_EQ(r.total_errors(), 0u) << r.first_error;
  EXPECT_EQ(r.requests, 40u);
}

TEST_P(LoadTlsTest, UnknownCaIsACountedErrorNotAHang) {
  auto server = StartServer(/*untrusted=*/true);
  TimePoint start = Clock::now();
  Report r = Run(server->address(),
                 {"connect", "--tls", "--tls-ca", certs_->ca.cert, "--count", "3", "--conns", "1"});
  EXPECT_EQ(r.errors[kOther], 3u) << r.first_error;
  EXPECT_EQ(r.requests, 0u);
  EXPECT_NE(r.first_error.find("certificate verify failed"), std::string::npos) << r.first_error;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 5.0);

  // --tls-insecure accepts it.
  Report insecure = Run(server->address(),
                        {"connect", "--tls", "--tls-insecure", "--count", "3", "--conns", "1"});
  EXPECT_EQ(insecure.total_errors(), 0u) << insecure.first_error;
  EXPECT_EQ(insecure.requests, 3u);
}

TEST_P(LoadTlsTest, WrongNameFailsVerification) {
  auto server = StartServer();
  Report r = Run(server->address(), {"connect", "--tls", "--tls-ca", certs_->ca.cert, "--sni",
                                     "wrong.test", "--count", "2", "--conns", "1"});
  EXPECT_EQ(r.errors[kOther], 2u) << r.first_error;
  // The right name, sent as SNI, passes.
  Report ok = Run(server->address(), {"connect", "--tls", "--tls-ca", certs_->ca.cert, "--sni",
                                      "localhost", "--count", "2", "--conns", "1"});
  EXPECT_EQ(ok.total_errors(), 0u) << ok.first_error;
}

TEST_P(LoadTlsTest, MissingCaFileIsASetupErrorNamingTheFlag) {
  auto r = RunClientAt(Address::Parse("127.0.0.1:1").value(),
                       {"rr", "--tls", "--tls-ca", "/nonexistent/ca.pem"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--tls-ca"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("/nonexistent/ca.pem"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Loopback, LoadTlsTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

}  // namespace
}  // namespace zrelay::load
