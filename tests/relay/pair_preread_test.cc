// Leg::preread: bytes a protocol phase read past what it consumed reach the
// other leg before anything read from that leg afterwards, byte for byte,
// both ways, in every relay mode and from a TLS leg, and PairStats counts
// them. A splice direction copies only its preread, then splices again.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/pair_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/certs_fixture.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::MakeLegPair;
using testing::Pattern;
using testing::SendPatternFrom;

constexpr Duration kIoTimeout = seconds(20);

std::string ModeName(const ::testing::TestParamInfo<RelayMode>& info) {
  return RelayModeName(info.param);
}

std::unique_ptr<Engine> StartEngine(RelayMode mode) {
  auto engine = testing::StartEngine({.workers = 1, .mode = mode});
  EXPECT_TRUE(engine.ok()) << engine.error().message();
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

// Reads pattern `seed` from a blocking fd on its own thread until EOF,
// checking every byte, and lets the test wait for a byte count.
class PatternReceiver {
 public:
  PatternReceiver(int fd, uint64_t seed) : thread_([this, fd, seed] { Run(fd, seed); }) {}
  ~PatternReceiver() {
    if (thread_.joinable()) thread_.join();
  }

  // Waits until `n` bytes came (true) or the stream ended or timed out.
  bool WaitFor(uint64_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kIoTimeout, [&] { return received_.bytes >= n || ended_; });
    return received_.bytes >= n;
  }
  // Waits for the end of the stream.
  testing::Received Finish() {
    thread_.join();
    return received_;
  }

 private:
  void Run(int fd, uint64_t seed) {
    char buf[64 << 10];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      std::lock_guard<std::mutex> lock(mu_);
      if (n <= 0) {
        received_.error = n < 0 ? errno : 0;
        ended_ = true;
        cv_.notify_all();
        return;
      }
      const std::string want = Pattern(seed, received_.bytes, static_cast<size_t>(n));
      if (received_.first_mismatch < 0 && want.compare(0, want.size(), buf, n) != 0) {
        for (ssize_t i = 0; i < n; ++i) {
          if (buf[i] != want[static_cast<size_t>(i)]) {
            received_.first_mismatch = static_cast<int64_t>(received_.bytes) + i;
            break;
          }
        }
      }
      received_.bytes += static_cast<uint64_t>(n);
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  testing::Received received_;
  bool ended_ = false;
  std::thread thread_;
};

class PrereadTest : public ::testing::TestWithParam<RelayMode> {};

// Each leg has bytes the relay must send on first; each peer sends the rest
// of its stream only once the other side got the preread, so every byte
// after it passes a direction whose staged bytes are gone: in splice mode
// those are spliced, the preread itself copied.
TEST_P(PrereadTest, GoesFirstBothWaysAndCounts) {
  std::unique_ptr<Engine> engine = StartEngine(GetParam());
  ASSERT_NE(engine, nullptr);
  constexpr uint64_t kPreA = 100000;  // more than one ring (64 KiB)
  constexpr uint64_t kPreB = 777;
  constexpr uint64_t kRestA = 3 << 20;
  constexpr uint64_t kRestB = 1 << 20;
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  CloseRecorder closes;
  Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
  la.preread = Pattern(1, 0, kPreA);
  lb.preread = Pattern(2, 0, kPreB);
  engine->Pipe(std::move(la), std::move(lb), closes.Callback());

  PatternReceiver at_b(b->app.get(), 1);
  PatternReceiver at_a(a->app.get(), 2);
  ASSERT_TRUE(at_b.WaitFor(kPreA));
  ASSERT_TRUE(at_a.WaitFor(kPreB));
  std::thread a_sends([&] {
    EXPECT_TRUE(SendPatternFrom(a->app.get(), 1, kPreA, kRestA));
    ::shutdown(a->app.get(), SHUT_WR);
  });
  EXPECT_TRUE(SendPatternFrom(b->app.get(), 2, kPreB, kRestB));
  ::shutdown(b->app.get(), SHUT_WR);
  a_sends.join();
  const testing::Received got_b = at_b.Finish();
  const testing::Received got_a = at_a.Finish();
  EXPECT_EQ(got_b.bytes, kPreA + kRestA);
  EXPECT_EQ(got_b.first_mismatch, -1);
  EXPECT_EQ(got_a.bytes, kPreB + kRestB);
  EXPECT_EQ(got_a.first_mismatch, -1);

  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, kPreA + kRestA);
  EXPECT_EQ(closed[0].b_to_a, kPreB + kRestB);

  const WorkerStats stats = engine->Stats().total;
  EXPECT_EQ(stats.bytes_a_to_b, kPreA + kRestA);
  EXPECT_EQ(stats.bytes_b_to_a, kPreB + kRestB);
  EXPECT_EQ(stats.bytes_spliced + stats.bytes_copied, kPreA + kRestA + kPreB + kRestB);
  if (GetParam() == RelayMode::kSplice) {
    EXPECT_EQ(stats.bytes_copied, kPreA + kPreB) << "only the preread is copied";
    EXPECT_EQ(stats.bytes_spliced, kRestA + kRestB) << "then both directions splice again";
  }
  if (GetParam() == RelayMode::kCopy) {
    EXPECT_EQ(stats.bytes_spliced, 0u);
  }
}

// A peer that ends at once: the other leg gets the preread, then the FIN.
TEST_P(PrereadTest, ThenFinAtOnce) {
  std::unique_ptr<Engine> engine = StartEngine(GetParam());
  ASSERT_NE(engine, nullptr);
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  ::shutdown(a->app.get(), SHUT_WR);
  CloseRecorder closes;
  Leg la{std::move(a->leg)};
  la.preread = Pattern(7, 0, 5000);
  engine->Pipe(std::move(la), Leg{std::move(b->leg)}, closes.Callback());
  const testing::Stream at_b = testing::ReadToEof(b->app.get());
  EXPECT_EQ(at_b.error, 0);
  EXPECT_EQ(at_b.data, Pattern(7, 0, 5000));
  ::shutdown(b->app.get(), SHUT_WR);
  const testing::Stream at_a = testing::ReadToEof(a->app.get());
  EXPECT_EQ(at_a.error, 0);
  EXPECT_EQ(at_a.data, "");
  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, 5000u);
  EXPECT_EQ(closed[0].b_to_a, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, PrereadTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         ModeName);

// Leg A is TLS (the relay is its server): its preread is plaintext already
// decrypted, which B gets first; B's preread reaches A's peer encrypted,
// ahead of what B sends.
class TlsPrereadTest : public testing::CertsTest,
                       public ::testing::WithParamInterface<RelayMode> {};

TEST_P(TlsPrereadTest, GoesFirstBothWaysThroughTheTlsLeg) {
  std::unique_ptr<Engine> engine = StartEngine(GetParam());
  ASSERT_NE(engine, nullptr);
  TlsServerConfig server_config;
  server_config.certs = {{certs_->server.cert, certs_->server.key}};
  auto server_ctx = BuildServerContext(server_config);
  ASSERT_TRUE(server_ctx.ok()) << server_ctx.error().message();
  TlsClientConfig client_config;
  client_config.ca_file = certs_->ca.cert;
  auto client_ctx = BuildClientContext(client_config);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.error().message();

  constexpr uint64_t kPreA = 70000, kRestA = 1 << 20;
  constexpr uint64_t kPreB = 3000, kRestB = 512 << 10;
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  CloseRecorder closes;
  Leg la{std::move(a->leg)}, lb{std::move(b->leg)};
  la.ssl = NewServerSsl(*server_ctx, la.fd.get());
  ASSERT_NE(la.ssl, nullptr);
  la.preread = Pattern(1, 0, kPreA);
  lb.preread = Pattern(2, 0, kPreB);
  engine->Pipe(std::move(la), std::move(lb), closes.Callback());

  // B's peer: plain, on its own thread.
  PatternReceiver at_b(b->app.get(), 1);
  std::thread b_sends([&] {
    EXPECT_TRUE(SendPatternFrom(b->app.get(), 2, kPreB, kRestB));
    ::shutdown(b->app.get(), SHUT_WR);
  });

  // A's peer: a TLS client, one operation at a time on this thread.
  SSL* ssl = NewClientSsl(*client_ctx, a->app.get(), "localhost");
  ASSERT_NE(ssl, nullptr);
  const int connected = SSL_connect(ssl);
  if (connected != 1) {
    char why[256];
    ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
    ADD_FAILURE() << "SSL_connect: SSL_get_error " << SSL_get_error(ssl, connected) << ", errno "
                  << errno << ", " << why;
    ::shutdown(b->app.get(), SHUT_RDWR);
    b_sends.join();
    SSL_free(ssl);
    return;
  }
  const std::string rest = Pattern(1, kPreA, kRestA);
  // NewClientSsl allows partial writes: write until all went.
  for (size_t off = 0, written = 0; off < rest.size(); off += written) {
    ASSERT_EQ(SSL_write_ex(ssl, rest.data() + off, rest.size() - off, &written), 1);
  }
  SSL_shutdown(ssl);  // close_notify: A's direction ends, we still read
  std::string got;
  char buf[16 << 10];
  for (size_t n = 0; got.size() <= kPreB + kRestB && SSL_read_ex(ssl, buf, sizeof buf, &n) == 1;) {
    got.append(buf, n);
  }
  EXPECT_EQ(SSL_get_error(ssl, 0), SSL_ERROR_ZERO_RETURN) << "the stream ends with close_notify";
  ERR_clear_error();
  SSL_free(ssl);
  b_sends.join();
  EXPECT_TRUE(got == Pattern(2, 0, kPreB + kRestB)) << "got " << got.size() << " bytes";
  const testing::Received got_b = at_b.Finish();
  EXPECT_EQ(got_b.bytes, kPreA + kRestA);
  EXPECT_EQ(got_b.first_mismatch, -1);

  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, kPreA + kRestA);
  EXPECT_EQ(closed[0].b_to_a, kPreB + kRestB);
}

INSTANTIATE_TEST_SUITE_P(Modes, TlsPrereadTest,
                         ::testing::Values(RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto),
                         ModeName);

}  // namespace
}  // namespace zrelay
