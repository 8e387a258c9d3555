// PairOptions' watermarks, at the pump: a direction reads until its
// in-flight bytes reach the high watermark, never beyond, and reads again
// only once the destination took enough to leave the low watermark or
// fewer. The copy path is driven against a destination that takes exactly
// what the test allows (so every step is deterministic); the splice path
// against a real socket the test filled first.
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "engine/event_loop.h"
#include "relay/buffer_pool.h"
#include "relay/direction.h"
#include "relay/pipe_pool.h"
#include "relay/plain_transport.h"
#include "relay/pump.h"
#include "tests/relay/pair_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

constexpr size_t kRing = 16 << 10;
constexpr size_t kBudget = 1 << 20;
constexpr uint64_t kSeed = 21;

// A destination that takes exactly the bytes the test allows, no more.
class MeteredDestination final : public Transport {
 public:
  void Allow(size_t bytes) { allowed_ += bytes; }
  const std::string& got() const { return got_; }
  bool fin() const { return fin_; }

  IoResult Handshake() override { return {}; }
  IoResult Read(RingBuffer& /*ring*/, size_t /*max*/) override { return {IoStatus::kWouldBlock}; }
  IoResult Write(RingBuffer& ring) override {
    const struct iovec span = ring.DataSpan();
    const size_t n = std::min(span.iov_len, allowed_);
    if (n == 0) return {IoStatus::kWouldBlock};
    got_.append(static_cast<const char*>(span.iov_base), n);
    ring.Consume(n);
    allowed_ -= n;
    return {IoStatus::kOk, n, 0};
  }
  IoResult ShutdownWrite() override {
    fin_ = true;
    return {};
  }
  bool ReadReady() const override { return false; }
  bool WriteReady() const override { return allowed_ > 0; }
  bool can_splice() const override { return false; }

 private:
  size_t allowed_ = 0;
  std::string got_;
  bool fin_ = false;
};

// One direction from a real loopback socket; the test pumps it itself.
class WatermarkHarness : public FdHandler {
 public:
  WatermarkHarness()
      : pipes_(64 << 10, 4), buffers_(kRing, 4), scratch_(kRing),
        env_{Syscalls::Real(), pipes_, buffers_, stats_, scratch_} {
    auto loop = EventLoop::Create();
    EXPECT_TRUE(loop.ok());
    loop_ = std::move(loop.value());
    for (auto* pair : {&src_, &dst_}) {
      auto p = testing::TcpPair(AF_INET);
      EXPECT_TRUE(p.ok()) << p.error().message();
      *pair = std::move(p.value());
    }
    src_io_ = std::make_unique<PlainTransport>(src_watch_, loop_->sys());
    dst_io_ = std::make_unique<PlainTransport>(dst_watch_, loop_->sys());
    EXPECT_TRUE(src_watch_.Register(*loop_, src_.server.get(), this).ok());
  }
  ~WatermarkHarness() override {
    src_watch_.Unregister();
    dst_watch_.Unregister();
    ReleaseDirection(dir_, env_);
  }
  void OnFdEvent(FdWatch& /*watch*/, uint32_t /*events*/) override {}  // the test pumps

  // Sends more of the pattern while the source socket takes it (at most
  // 8 MiB in all), so the relay always finds more to read.
  void TopUp() {
    while (sent_ < (8 << 20)) {
      const std::string chunk = testing::Pattern(kSeed, sent_, 16 << 10);
      const ssize_t n = ::send(src_.client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      sent_ += static_cast<uint64_t>(n);
    }
  }
  size_t Held() const { return dir_.pipe ? dir_.pipe->bytes : dir_.ring ? dir_.ring->size() : 0; }

  PipePool pipes_;
  BufferPool buffers_;
  WorkerCounters stats_;
  RingBuffer scratch_;
  PumpEnv env_;
  std::unique_ptr<EventLoop> loop_;
  testing::SocketPair src_, dst_;  // client: the test's end; server: the relay's
  FdWatch src_watch_, dst_watch_;
  std::unique_ptr<PlainTransport> src_io_, dst_io_;
  Direction dir_;
  uint64_t sent_ = 0;
};

struct Marks {
  size_t high, low;                    // PairOptions
  size_t expect_high, expect_low;      // what they mean for a kRing ring
};

class CopyWatermarkTest : public ::testing::TestWithParam<Marks> {};

TEST_P(CopyWatermarkTest, PausesAtHighResumesAtLow) {
  const Marks m = GetParam();
  WatermarkHarness h;
  h.dir_.path = Path::kCopy;
  h.dir_.high_watermark = m.high;
  h.dir_.low_watermark = m.low;
  MeteredDestination dst;
  auto pump = [&] {
    PumpResult r = Pump(h.dir_, *h.src_io_, dst, h.env_, kBudget);
    EXPECT_NE(r.outcome, PumpOutcome::kError);
    EXPECT_LE(h.Held(), m.expect_high) << "never beyond the high watermark";
  };

  // The destination takes nothing: reading stops at exactly the high mark.
  ASSERT_TRUE(testing::RunUntil(*h.loop_, [&] {
    h.TopUp();
    pump();
    return h.Held() == m.expect_high;
  }));
  EXPECT_TRUE(h.dir_.watermark_paused);
  pump();
  EXPECT_EQ(h.Held(), m.expect_high);

  // It takes all but the low mark and one byte: still paused, nothing read.
  dst.Allow(m.expect_high - m.expect_low - 1);
  pump();
  EXPECT_EQ(h.Held(), m.expect_low + 1);
  EXPECT_EQ(dst.got().size(), m.expect_high - m.expect_low - 1);

  // One more byte reaches the low mark: reading resumes, up to the high one.
  dst.Allow(1);
  pump();
  EXPECT_GT(h.Held(), m.expect_low) << "reading resumed at the low watermark";
  ASSERT_TRUE(testing::RunUntil(*h.loop_, [&] {
    h.TopUp();
    pump();
    return h.Held() == m.expect_high;
  }));

  // Then everything, byte for byte, and the FIN after it.
  ::shutdown(h.src_.client.get(), SHUT_WR);
  dst.Allow(h.sent_);
  ASSERT_TRUE(testing::RunUntil(*h.loop_, [&] {
    pump();
    return h.dir_.state == DirectionState::kDone;
  }));
  EXPECT_EQ(dst.got().size(), h.sent_);
  EXPECT_TRUE(dst.got() == testing::Pattern(kSeed, 0, h.sent_));
  EXPECT_TRUE(dst.fin());
  EXPECT_EQ(h.dir_.bytes, h.sent_);
}

INSTANTIATE_TEST_SUITE_P(
    Marks, CopyWatermarkTest,
    ::testing::Values(Marks{0, 0, kRing, kRing / 2},     // the defaults: full ring, half
                      Marks{4096, 1024, 4096, 1024},     // both set
                      Marks{4096, 0, 4096, 2048},        // low: half the high
                      Marks{4096, 4096, 4096, 4096 - 1}  // low == high: no hysteresis
                      ),
    [](const ::testing::TestParamInfo<Marks>& info) {
      return "High" + std::to_string(info.param.high) + "Low" + std::to_string(info.param.low);
    });

// The splice path pauses at the pair's high watermark, below the pipe's
// capacity, while the destination socket is full.
TEST(SpliceWatermarkTest, PipeHoldsNoMoreThanTheHighWatermark) {
  constexpr size_t kHigh = 4096;
  WatermarkHarness h;
  h.dir_.path = Path::kSplice;
  h.dir_.high_watermark = kHigh;
  h.dir_.low_watermark = 1024;
  // Fill the destination socket first (with bytes of another pattern), so
  // the relay cannot flush until the test reads.
  uint64_t filler = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::string chunk = testing::Pattern(99, filler, 64 << 10);
    const ssize_t n = ::send(h.dst_.server.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    filler += static_cast<uint64_t>(n);
  }
  ASSERT_GT(filler, 0u);
  ASSERT_TRUE(h.dst_watch_.Register(*h.loop_, h.dst_.server.get(), &h).ok());
  auto pump = [&] {
    PumpResult r = Pump(h.dir_, *h.src_io_, *h.dst_io_, h.env_,
                        kBudget);
    EXPECT_NE(r.outcome, PumpOutcome::kError);
    EXPECT_LE(h.Held(), kHigh);
  };
  ASSERT_TRUE(testing::RunUntil(*h.loop_, [&] {
    h.TopUp();
    pump();
    return h.Held() == kHigh;
  }));
  ASSERT_NE(h.dir_.pipe, nullptr) << "the splice path";
  for (int i = 0; i < 5; ++i) {
    h.loop_->RunOnce(milliseconds(1));
    h.TopUp();
    pump();
    EXPECT_EQ(h.Held(), kHigh);
  }

  // Drain: the test reads the filler and everything relayed after it.
  ::shutdown(h.src_.client.get(), SHUT_WR);
  std::string got;
  uint64_t filler_read = 0;
  bool eof = false;
  ASSERT_TRUE(testing::RunUntil(
      *h.loop_,
      [&] {
        pump();
        char buf[64 << 10];
        for (;;) {
          const ssize_t n = ::recv(h.dst_.client.get(), buf, sizeof buf, MSG_DONTWAIT);
          if (n == 0) eof = true;
          if (n <= 0) break;
          size_t skip = static_cast<size_t>(std::min<uint64_t>(filler - filler_read, n));
          filler_read += skip;
          got.append(buf + skip, static_cast<size_t>(n) - skip);
        }
        return eof;
      },
      seconds(20)));
  EXPECT_EQ(got.size(), h.sent_);
  EXPECT_TRUE(got == testing::Pattern(kSeed, 0, h.sent_));
  EXPECT_EQ(h.dir_.state, DirectionState::kDone);
}

}  // namespace
}  // namespace zrelay
