// Pump() driven directly on a real EventLoop: one direction, src -> dst, over
// loopback TCP or unix socketpairs registered through FdWatch, with real
// pipe and buffer pools and a FaultySyscalls seam that injects errors on
// chosen calls (EAGAIN, EINTR, EPIPE, ENOSYS, EINVAL, short transfers).
//
//   src app (test) ==> src relay fd --Pump--> dst relay fd ==> dst app (test)
//
// The app ends are non-blocking and driven from RunUntil's predicate, so a
// test runs on one thread and every wait has a deadline.
#pragma once

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/event_loop.h"
#include "relay/buffer_pool.h"
#include "relay/direction.h"
#include "relay/pipe_pool.h"
#include "relay/plain_transport.h"
#include "relay/pump.h"
#include "tests/relay/faulty_syscalls.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay::testing {

// ---- App ends -----------------------------------------------------------------

// Sends pattern `seed` on a non-blocking fd, up to `allowed` bytes so far.
struct Sender {
  int fd = -1;
  uint64_t seed = 0;
  uint64_t sent = 0;
  uint64_t allowed = 0;  // raise it to send more
  bool fin = false;      // SHUT_WR once `allowed` bytes are out
  bool shut = false;

  void Step() {
    char buf[65536];
    while (sent < allowed) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(sizeof(buf), allowed - sent));
      FillPattern(seed, sent, buf, len);
      ssize_t n = ::send(fd, buf, len, MSG_NOSIGNAL);
      if (n <= 0) return;  // EAGAIN: the relay is behind; try next turn
      sent += static_cast<uint64_t>(n);
    }
    if (fin && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
  }
};

// Receives on a non-blocking fd: first `filler` bytes of pattern
// `filler_seed` (written by the test to fill the socket), then pattern
// `seed`, checking every byte.
struct Receiver {
  int fd = -1;
  uint64_t seed = 0;
  uint64_t filler = 0;
  uint64_t filler_seed = 0;
  uint64_t got = 0;  // including filler
  int64_t first_mismatch = -1;
  bool eof = false;
  int err = 0;
  bool reading = true;  // false: leave the bytes in the socket (keep it full)

  uint64_t payload() const { return got > filler ? got - filler : 0; }

  void Step() {
    char buf[65536], want[65536];
    while (reading && !eof && err == 0) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n == 0) {
        eof = true;
        return;
      }
      if (n < 0) {
        if (errno != EAGAIN) err = errno;
        return;
      }
      for (ssize_t done = 0; done < n;) {
        uint64_t at = got + static_cast<uint64_t>(done);
        size_t len = static_cast<size_t>(n - done);
        if (at < filler) {
          len = static_cast<size_t>(std::min<uint64_t>(len, filler - at));
          FillPattern(filler_seed, at, want, len);
        } else {
          FillPattern(seed, at - filler, want, len);
        }
        if (first_mismatch < 0 && std::memcmp(buf + done, want, len) != 0) {
          for (size_t i = 0; i < len; ++i) {
            if (buf[done + i] != want[i]) {
              first_mismatch = static_cast<int64_t>(at + i);
              break;
            }
          }
        }
        done += static_cast<ssize_t>(len);
      }
      got += static_cast<uint64_t>(n);
    }
  }
};

// Bytes waiting in a socket's receive queue.
inline int Queued(int fd) {
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// ---- The harness ------------------------------------------------------------

enum class Family { kTcp, kUnix };

struct PumpConfig {
  Family family = Family::kUnix;
  Path path = Path::kSplice;
  bool auto_splice = false;
  size_t pipe_size = 65536;
  size_t pipe_cap = 4;
  size_t buffer_size = 65536;
  size_t buffer_cap = 4;
  size_t budget = 256 << 10;
  // The loop's backend: on io_uring, copied reads and small writes go
  // through the ring (not the syscall seam).
  IoBackend io = IoBackend::kEpoll;
};

// One direction and its world. OnFdEvent pumps (as Pair does) unless
// `auto_pump` is off; kMore goes on the ready list; kError/kDone stop it.
class PumpHarness final : public FdHandler, public ReadyHandler {
 public:
  explicit PumpHarness(const PumpConfig& c)
      : config_(c),
        pipes_(c.pipe_size, c.pipe_cap),
        buffers_(c.buffer_size, c.buffer_cap),
        scratch_(c.buffer_size),
        env_{sys_, pipes_, buffers_, stats_, scratch_} {
    auto loop = EventLoop::Create({.io = c.io});
    EXPECT_TRUE(loop.ok()) << loop.error().message();
    loop_ = std::move(loop.value());
    loop_->set_syscalls(&sys_);
    for (auto* conn : {&src_, &dst_}) {
      auto p = c.family == Family::kTcp ? TcpPair(AF_INET) : UnixPair();
      EXPECT_TRUE(p.ok()) << p.error().message();
      conn->app = std::move(p->client);
      conn->relay = std::move(p->server);
    }
    // The transports go through the loop's seam, like Pair's legs.
    src_io_ = std::make_unique<PlainTransport>(src_watch_, loop_->sys());
    dst_io_ = std::make_unique<PlainTransport>(dst_watch_, loop_->sys());
    dir_.path = c.path;
    dir_.auto_splice = c.auto_splice;
    sender_.fd = src_.app.get();
    sender_.seed = 11;
    receiver_.fd = dst_.app.get();
    receiver_.seed = 11;
    receiver_.filler_seed = 99;
  }

  ~PumpHarness() override {
    loop_->UnscheduleReady(this);
    src_watch_.Unregister();
    dst_watch_.Unregister();
    ReleaseDirection(dir_, env_);
  }

  // Fills dst's socket (relay side -> app) until it takes no more, so the
  // pump cannot flush until the app reads (receiver_.reading = true). Call
  // before Register().
  void FillDestination() {
    receiver_.reading = false;
    char buf[65536];
    for (int i = 0; i < 100000; ++i) {
      size_t len = sizeof(buf);
      FillPattern(receiver_.filler_seed, receiver_.filler, buf, len);
      ssize_t n = ::send(dst_.relay.get(), buf, len, MSG_NOSIGNAL);
      if (n <= 0) break;
      receiver_.filler += static_cast<uint64_t>(n);
    }
    ASSERT_GT(receiver_.filler, 0u);
  }

  // Sends `bytes` more of the pattern before the relay side is registered and
  // waits until all of it sits in the relay's receive queue, so registration
  // brings one EPOLLIN edge and no later edge comes unless the test sends.
  void Preload(uint64_t bytes) {
    sender_.allowed += bytes;
    const TimePoint end = Clock::now() + seconds(5);
    while (Clock::now() < end && (sender_.sent < sender_.allowed ||
                                  static_cast<uint64_t>(Queued(src_.relay.get())) < sender_.sent)) {
      sender_.Step();
      std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_EQ(static_cast<uint64_t>(Queued(src_.relay.get())), bytes);
  }

  void Register() {
    ASSERT_TRUE(src_watch_.Register(*loop_, src_.relay.get(), this).ok());
    ASSERT_TRUE(dst_watch_.Register(*loop_, dst_.relay.get(), this).ok());
  }

  // Sends `bytes` more (and FIN if `fin`) and runs until the app at dst has
  // them all (and EOF if `fin`), or `deadline`.
  bool Transfer(uint64_t bytes, bool fin, Duration deadline = seconds(20)) {
    sender_.allowed += bytes;
    sender_.fin = fin;
    return RunUntil(*loop_, [&] {
      sender_.Step();
      receiver_.Step();
      // A failed pump ends the wait; a finished one (kDone) does not: its
      // last bytes and FIN may still be on their way to the app.
      if (receiver_.err != 0 || failed()) return true;
      return receiver_.payload() == sender_.allowed && (!fin || receiver_.eof);
    }, deadline);
  }

  // Turns the loop (driving the app ends) until `done()` or `deadline`.
  bool RunFor(const std::function<bool()>& done, Duration deadline) {
    return RunUntil(*loop_, [&] {
      sender_.Step();
      receiver_.Step();
      return done();
    }, deadline);
  }

  bool failed() const {
    return !results_.empty() && results_.back().outcome == PumpOutcome::kError;
  }

  PumpResult PumpNow() {
    PumpResult r = Pump(dir_, *src_io_, *dst_io_, env_,
                        config_.budget, close_follows_);
    results_.push_back(r);
    if (r.outcome == PumpOutcome::kError || r.outcome == PumpOutcome::kDone) stopped_ = true;
    if (r.outcome == PumpOutcome::kMore && auto_pump_) loop_->ScheduleReady(this);
    return r;
  }

  void OnFdEvent(FdWatch&, uint32_t) override {
    if (auto_pump_ && !stopped_) PumpNow();
  }
  void OnReady() override {
    if (auto_pump_ && !stopped_) PumpNow();
  }

  // Everything borrowed is back, and the pools' gauges say so.
  void ExpectNothingHeld() {
    EXPECT_EQ(dir_.pipe, nullptr);
    EXPECT_EQ(dir_.ring, nullptr);
    EXPECT_EQ(pipes_.stats().in_use, 0u);
    EXPECT_EQ(buffers_.stats().in_use, 0u);
  }

  PumpConfig config_;
  FaultySyscalls sys_;
  PipePool pipes_;
  BufferPool buffers_;
  WorkerCounters stats_;
  RingBuffer scratch_;
  PumpEnv env_;
  std::unique_ptr<EventLoop> loop_;
  struct Conn {
    UniqueFd app;
    UniqueFd relay;
  } src_, dst_;
  FdWatch src_watch_, dst_watch_;
  std::unique_ptr<PlainTransport> src_io_, dst_io_;
  Direction dir_;
  Sender sender_;
  Receiver receiver_;
  std::vector<PumpResult> results_;
  bool close_follows_ = false;  // Pump's last-direction hint
  bool auto_pump_ = true;
  bool stopped_ = false;
};

inline std::string FamilyName(Family f) { return f == Family::kTcp ? "Tcp" : "Unix"; }
inline std::string PathName(Path p) { return p == Path::kSplice ? "Splice" : "Copy"; }
// The syscall that fills / empties the direction's vehicle on `path`.
inline Op ReadOp(Path p) { return p == Path::kSplice ? Op::kSpliceIn : Op::kReadv; }
inline Op WriteOp(Path p) { return p == Path::kSplice ? Op::kSpliceOut : Op::kWritev; }

// Tests that run on every path and socket family.
class PumpTest : public ::testing::TestWithParam<std::tuple<Path, Family>> {
 protected:
  PumpConfig MakeConfig() {
    PumpConfig c;
    c.path = std::get<0>(GetParam());
    c.family = std::get<1>(GetParam());
    return c;
  }
};

// PumpTest's parameters, for INSTANTIATE_TEST_SUITE_P: both paths times
// both families, named like "SpliceTcp".
inline auto AllPathsAndFamilies() {
  return ::testing::Combine(::testing::Values(Path::kSplice, Path::kCopy),
                            ::testing::Values(Family::kTcp, Family::kUnix));
}
inline std::string PathAndFamilyName(
    const ::testing::TestParamInfo<std::tuple<Path, Family>>& info) {
  return PathName(std::get<0>(info.param)) + FamilyName(std::get<1>(info.param));
}

}  // namespace zrelay::testing
