// Pump() driven directly on a real EventLoop: one direction, src -> dst, over
// loopback TCP or unix socketpairs registered through FdWatch, with real
// pipe and buffer pools and a Syscalls seam that injects errors on chosen
// calls (EAGAIN, EINTR, EPIPE, ENOSYS, EINVAL, short transfers).
//
//   src app (test) ==> src relay fd --Pump--> dst relay fd ==> dst app (test)
//
// The app ends are non-blocking and driven from RunUntil's predicate, so the
// whole test runs on one thread and every wait has a deadline.
#include "relay/pump.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "relay/buffer_pool.h"
#include "relay/direction.h"
#include "relay/pipe_pool.h"
#include "relay/plain_transport.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::FillPattern;
using testing::RunUntil;

// ---- The injecting seam -----------------------------------------------------

enum class Op { kReadv, kWritev, kSpliceIn, kSpliceOut, kShutdown };

// Pass-through Syscalls that can make the n-th call of an operation fail
// with an errno (without reaching the kernel) or move fewer bytes.
class FaultySyscalls final : public Syscalls {
 public:
  // Call number `nth` (1-based, counting that op's calls since construction)
  // fails with `err`.
  void FailNth(Op op, int nth, int err) { rules_[{op, nth}] = Rule{err, 0}; }
  // Call number `nth` goes to the kernel with its length clamped to `max`.
  void ShortNth(Op op, int nth, size_t max) { rules_[{op, nth}] = Rule{0, max}; }
  // Every call of `op` from now on fails with `err` (0: stop failing).
  void FailAll(Op op, int err) { fail_all_[op] = err; }

  int calls(Op op) const {
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }
  int injected() const { return injected_; }

  SysResult Readv(int fd, const struct iovec* iov, int iovcnt) override {
    Rule r = Next(Op::kReadv);
    if (r.err) return Inject(r.err);
    if (r.max == 0) return Syscalls::Readv(fd, iov, iovcnt);
    struct iovec one = {iov[0].iov_base, std::min(iov[0].iov_len, r.max)};
    return Syscalls::Readv(fd, &one, 1);
  }
  SysResult Writev(int fd, const struct iovec* iov, int iovcnt) override {
    Rule r = Next(Op::kWritev);
    if (r.err) return Inject(r.err);
    if (r.max == 0) return Syscalls::Writev(fd, iov, iovcnt);
    struct iovec one = {iov[0].iov_base, std::min(iov[0].iov_len, r.max)};
    return Syscalls::Writev(fd, &one, 1);
  }
  SysResult Splice(int fd_in, int fd_out, size_t len, unsigned int flags) override {
    // A splice whose source is a socket fills the pipe; else it empties it.
    struct stat st {};
    bool in = ::fstat(fd_in, &st) == 0 && S_ISSOCK(st.st_mode);
    Rule r = Next(in ? Op::kSpliceIn : Op::kSpliceOut);
    if (r.err) return Inject(r.err);
    return Syscalls::Splice(fd_in, fd_out, r.max ? std::min(len, r.max) : len, flags);
  }
  SysResult Shutdown(int fd, int how) override {
    Rule r = Next(Op::kShutdown);
    if (r.err) return Inject(r.err);
    return Syscalls::Shutdown(fd, how);
  }

 private:
  struct Rule {
    int err = 0;
    size_t max = 0;
  };
  Rule Next(Op op) {
    int n = ++calls_[op];
    auto all = fail_all_.find(op);
    if (all != fail_all_.end() && all->second != 0) return Rule{all->second, 0};
    auto it = rules_.find({op, n});
    return it == rules_.end() ? Rule{} : it->second;
  }
  SysResult Inject(int err) {
    ++injected_;
    return SysResult{-1, err};
  }

  std::map<std::pair<Op, int>, Rule> rules_;
  std::map<Op, int> fail_all_;
  std::map<Op, int> calls_;
  int injected_ = 0;
};

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
int Queued(int fd) {
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// ---- The harness ------------------------------------------------------------

enum class Family { kTcp, kUnix };

struct Config {
  Family family = Family::kUnix;
  Path path = Path::kSplice;
  bool auto_splice = false;
  size_t pipe_size = 65536;
  size_t pipe_cap = 4;
  size_t buffer_size = 65536;
  size_t buffer_cap = 4;
  size_t budget = 256 << 10;
};

// One direction and its world. OnFdEvent pumps (as Pair does) unless
// `auto_pump` is off; kMore goes on the ready list; kError/kDone stop it.
class PumpHarness final : public FdHandler, public ReadyHandler {
 public:
  explicit PumpHarness(const Config& c)
      : config_(c),
        pipes_(c.pipe_size, c.pipe_cap),
        buffers_(c.buffer_size, c.buffer_cap),
        env_{sys_, pipes_, buffers_, stats_, c.buffer_size / 2} {
    auto loop = EventLoop::Create();
    EXPECT_TRUE(loop.ok());
    loop_ = std::move(loop.value());
    loop_->set_syscalls(&sys_);
    for (auto* conn : {&src_, &dst_}) {
      auto p = c.family == Family::kTcp ? testing::TcpPair(AF_INET) : testing::UnixPair();
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
    PumpResult r = Pump(dir_, {src_watch_, *src_io_}, {dst_watch_, *dst_io_}, env_,
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

  Config config_;
  FaultySyscalls sys_;
  PipePool pipes_;
  BufferPool buffers_;
  WorkerCounters stats_;
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

std::string FamilyName(Family f) { return f == Family::kTcp ? "Tcp" : "Unix"; }
std::string PathName(Path p) { return p == Path::kSplice ? "Splice" : "Copy"; }
// The syscall that fills / empties the direction's vehicle on `path`.
Op ReadOp(Path p) { return p == Path::kSplice ? Op::kSpliceIn : Op::kReadv; }
Op WriteOp(Path p) { return p == Path::kSplice ? Op::kSpliceOut : Op::kWritev; }

// ---- Per path and family ----------------------------------------------------

class PumpTest : public ::testing::TestWithParam<std::tuple<Path, Family>> {
 protected:
  Config MakeConfig() {
    Config c;
    c.path = std::get<0>(GetParam());
    c.family = std::get<1>(GetParam());
    return c;
  }
};

// The baseline the injection tests build on: 4 MiB and a FIN, byte-exact,
// counted on the right path, and nothing borrowed afterwards.
TEST_P(PumpTest, TransfersByteExactAndFinishes) {
  PumpHarness h(MakeConfig());
  h.Register();
  ASSERT_TRUE(h.Transfer(4 << 20, true));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.receiver_.payload(), 4u << 20);
  EXPECT_TRUE(h.receiver_.eof);
  ASSERT_FALSE(h.results_.empty());
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.state, DirectionState::kDone);
  EXPECT_EQ(h.dir_.bytes, 4u << 20);
  if (h.config_.path == Path::kSplice) {
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 4u << 20);
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 0u);
  } else {
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 4u << 20);
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
    EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  }
  h.ExpectNothingHeld();
}

// The shutdown() for FIN is made only when the socket stays open afterwards:
// for the pair's last direction, close() sends the FIN.
TEST_P(PumpTest, LastDirectionLeavesTheFinToClose) {
  PumpHarness h(MakeConfig());
  h.close_follows_ = true;
  h.Register();
  // Without a shutdown() no FIN reaches the app until the pair closes the
  // socket, so wait for the bytes and the pump's kDone, then close as it would.
  h.sender_.fin = true;
  h.sender_.allowed += 100000;
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.payload() == 100000 && h.stopped_; },
                       seconds(20)));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.sys_.calls(Op::kShutdown), 0);
  h.dst_watch_.Unregister();
  h.dst_.relay.Reset();
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.eof; }, seconds(5)))
      << "close() must deliver the FIN";
  EXPECT_EQ(h.receiver_.first_mismatch, -1);

  PumpHarness g(MakeConfig());
  g.Register();
  ASSERT_TRUE(g.Transfer(100000, true));
  EXPECT_EQ(g.sys_.calls(Op::kShutdown), 1) << "a direction that is not last sends its FIN";
}

// EAGAIN from the source read: the pump clears the readable flag, gives its
// pipe/ring back, and waits for the next edge; when more data comes, it
// carries on with the bytes that were already queued, in order.
TEST_P(PumpTest, EagainOnReadWaitsForTheNextEdgeThenContinuesByteExact) {
  PumpHarness h(MakeConfig());
  const Op read_op = ReadOp(h.config_.path);
  h.sys_.FailNth(read_op, 1, EAGAIN);
  h.Preload(100000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.sys_.calls(read_op) >= 1; }, seconds(5)));
  EXPECT_FALSE(h.src_watch_.readable()) << "EAGAIN must clear the readable flag";
  EXPECT_EQ(h.dir_.bytes, 0u);
  h.ExpectNothingHeld();
  // It really waits: no edge, no read, however long we turn the loop.
  h.RunFor([] { return false; }, milliseconds(100));
  EXPECT_EQ(h.sys_.calls(read_op), 1) << "no read without an edge";
  EXPECT_EQ(h.receiver_.got, 0u);
  EXPECT_EQ(Queued(h.src_.relay.get()), 100000);
  // New bytes bring an edge: everything, old and new, arrives in order.
  ASSERT_TRUE(h.Transfer(300000, true));
  EXPECT_EQ(h.receiver_.payload(), 400000u);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.sys_.injected(), 1);
  h.ExpectNothingHeld();
}

// The contract on EINTR: Syscalls::Real() retries EINTR itself (see the
// SyscallsContract test below), so the pump does not: an EINTR that comes
// out of the seam is treated like any other errno, a failed source.
TEST_P(PumpTest, EintrOutOfTheSeamIsASourceError) {
  PumpHarness h(MakeConfig());
  h.sys_.FailNth(ReadOp(h.config_.path), 1, EINTR);
  h.Preload(1000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kError);
  EXPECT_EQ(h.results_.back().err, EINTR);
  EXPECT_TRUE(h.results_.back().on_source);
  EXPECT_EQ(h.dir_.bytes, 0u);
}

TEST_P(PumpTest, EintrOnWriteIsADestinationError) {
  PumpHarness h(MakeConfig());
  h.sys_.FailNth(WriteOp(h.config_.path), 1, EINTR);
  h.Preload(1000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kError);
  EXPECT_EQ(h.results_.back().err, EINTR);
  EXPECT_FALSE(h.results_.back().on_source);
}

// EPIPE from the destination (injected): kError, blamed on the destination.
TEST_P(PumpTest, EpipeOnWriteIsADestinationError) {
  PumpHarness h(MakeConfig());
  h.sys_.FailNth(WriteOp(h.config_.path), 1, EPIPE);
  h.Preload(50000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
  PumpResult r = h.results_.back();
  EXPECT_EQ(r.outcome, PumpOutcome::kError);
  EXPECT_EQ(r.err, EPIPE);
  EXPECT_FALSE(r.on_source);
  EXPECT_EQ(h.dir_.bytes, 0u);
  EXPECT_EQ(h.receiver_.got, 0u);
}

// The destination's peer is gone for real: a unix peer that closed gives
// EPIPE, a TCP peer that reset (SO_LINGER {1, 0}) gives ECONNRESET or EPIPE.
// splice() and writev() also raise SIGPIPE for that (no MSG_NOSIGNAL);
// engine workers block it, and so does this thread for the test.
TEST_P(PumpTest, RealWriteErrorWhenTheDestinationPeerIsGone) {
  const bool tcp = std::get<1>(GetParam()) == Family::kTcp;
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_set, &old), 0);
  {
    PumpHarness h(MakeConfig());
    h.Preload(50000);
    if (tcp) {
      struct linger reset = {1, 0};
      ASSERT_EQ(::setsockopt(h.dst_.app.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)), 0);
    }
    h.dst_.app.Reset();  // the destination's peer goes away
    h.Register();
    ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
    PumpResult r = h.results_.back();
    EXPECT_EQ(r.outcome, PumpOutcome::kError);
    if (tcp) {
      EXPECT_TRUE(r.err == ECONNRESET || r.err == EPIPE) << std::strerror(r.err);
    } else {
      EXPECT_EQ(r.err, EPIPE) << std::strerror(r.err);
    }
    EXPECT_FALSE(r.on_source);
    EXPECT_EQ(h.sys_.injected(), 0);
  }
  // Swallow the SIGPIPE a write may have raised, then restore the mask.
  struct timespec zero {};
  while (sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
}

// The fairness budget: a small budget stops the pump with kMore while the
// source still has data; the next call carries on where it stopped.
TEST_P(PumpTest, SmallBudgetReturnsMoreAndTheNextCallContinues) {
  Config c = MakeConfig();
  c.budget = 16 << 10;
  PumpHarness h(c);
  h.auto_pump_ = false;
  // A short first splice: the turn must top up to exactly the budget, not
  // read another full budget on top.
  h.sys_.ShortNth(Op::kSpliceIn, 1, 5000);
  const uint64_t total = 100000;  // fits the relay socket's receive queue
  h.Preload(total);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.src_watch_.readable() && h.dst_watch_.writable(); },
                       seconds(5)));
  PumpResult first = h.PumpNow();
  EXPECT_EQ(first.outcome, PumpOutcome::kMore);
  uint64_t after_first = h.dir_.bytes;
  EXPECT_GT(after_first, 0u);
  // Splice reads at most the budget; copy reads at most one ring, and a read
  // that reaches the budget ends the turn.
  EXPECT_LE(after_first, c.path == Path::kSplice ? c.budget : c.buffer_size);
  EXPECT_LT(after_first, total);
  EXPECT_TRUE(h.src_watch_.readable());

  PumpResult second = h.PumpNow();
  EXPECT_GT(h.dir_.bytes, after_first) << "the second call must continue";
  // kMore while bytes are left. A copy read that empties the socket is short,
  // and a short read counts as drained, so that turn ends idle.
  EXPECT_EQ(second.outcome, h.dir_.bytes < total ? PumpOutcome::kMore : PumpOutcome::kIdle);

  // Keep calling (as the ready list would): each call moves more until the
  // source is drained, then the pump goes idle.
  int more = 2;  // calls that returned kMore
  while (h.PumpNow().outcome == PumpOutcome::kMore && more < 1000) ++more;
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kIdle);
  EXPECT_EQ(h.dir_.bytes, total);
  if (c.path == Path::kSplice) {
    // splice() is asked for exactly what is left of the budget, so every
    // kMore turn moved exactly one budget (the first in two splices: 5000
    // bytes, then the rest), and the last turn the remainder.
    EXPECT_EQ(after_first, c.budget);
    EXPECT_GE(h.sys_.calls(Op::kSpliceIn), 2);
    EXPECT_EQ(static_cast<uint64_t>(more), total / c.budget);
  } else {
    EXPECT_GE(static_cast<uint64_t>(more), total / c.buffer_size);
  }
  h.auto_pump_ = true;
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.receiver_.payload(), total);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
}

// The buffer pool is dry (another direction holds the only ring): the pump
// reads nothing and says kNoBuffer; once a ring comes back it proceeds.
TEST_P(PumpTest, BufferPoolDryReturnsNoBufferThenResumes) {
  Config c = MakeConfig();
  c.buffer_cap = 1;
  if (c.path == Path::kSplice) c.pipe_cap = 0;  // splice falls back to copy, which is dry too
  PumpHarness h(c);
  std::unique_ptr<RingBuffer> held = h.buffers_.Take();
  ASSERT_NE(held, nullptr);
  h.Preload(100000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return !h.results_.empty() && h.src_watch_.readable(); }, seconds(5)));
  PumpResult r = h.PumpNow();
  EXPECT_EQ(r.outcome, PumpOutcome::kNoBuffer);
  EXPECT_EQ(h.dir_.bytes, 0u);
  EXPECT_TRUE(h.src_watch_.readable()) << "nothing was read, the data is still there";
  EXPECT_GE(h.buffers_.stats().exhausted, 1u);
  EXPECT_EQ(h.sys_.calls(Op::kReadv) + h.sys_.calls(Op::kSpliceIn), 0);
  if (c.path == Path::kSplice) {
    EXPECT_GE(h.stats_.pipe_pool_exhausted.Get(), 1u);
  }

  h.buffers_.Return(std::move(held));
  r = h.PumpNow();
  EXPECT_NE(r.outcome, PumpOutcome::kNoBuffer);
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.receiver_.payload(), 100000u);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), 100000u);
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(
    PathsAndFamilies, PumpTest,
    ::testing::Combine(::testing::Values(Path::kSplice, Path::kCopy),
                       ::testing::Values(Family::kTcp, Family::kUnix)),
    [](const ::testing::TestParamInfo<std::tuple<Path, Family>>& info) {
      return PathName(std::get<0>(info.param)) + FamilyName(std::get<1>(info.param));
    });

// ---- Splice only ------------------------------------------------------------

class SplicePumpTest : public ::testing::TestWithParam<Family> {
 protected:
  Config MakeConfig() {
    Config c;
    c.family = GetParam();
    c.path = Path::kSplice;
    return c;
  }
};

// HAProxy's raw_sock.c rule: ENOSYS or EINVAL from the first splice means
// this fd cannot splice; the direction moves to copy for good and the
// transfer completes byte-exact.
TEST_P(SplicePumpTest, EnosysOrEinvalFromTheFirstSpliceFallsBackToCopy) {
  for (int err : {ENOSYS, EINVAL}) {
    SCOPED_TRACE(std::strerror(err));
    PumpHarness h(MakeConfig());
    h.sys_.FailNth(Op::kSpliceIn, 1, err);
    h.Register();
    ASSERT_TRUE(h.Transfer(1 << 20, true));
    EXPECT_EQ(h.receiver_.payload(), 1u << 20);
    EXPECT_EQ(h.receiver_.first_mismatch, -1);
    EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
    EXPECT_EQ(h.dir_.path, Path::kCopy);
    EXPECT_FALSE(h.dir_.auto_splice);
    EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 1) << "no second splice attempt";
    EXPECT_EQ(h.sys_.calls(Op::kSpliceOut), 0);
    EXPECT_GT(h.sys_.calls(Op::kReadv), 0);
    EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
    EXPECT_EQ(h.stats_.bytes_copied.Get(), 1u << 20);
    // The pipe it borrowed for the failed splice went back to the pool.
    EXPECT_EQ(h.pipes_.stats().created, 1u);
    EXPECT_EQ(h.pipes_.stats().pooled, 1u);
    EXPECT_EQ(h.pipes_.stats().discarded_full, 0u);
    h.ExpectNothingHeld();
  }
}

// ENOSYS while the pipe holds bytes is not a fallback but an error: copying
// from the socket then would let new bytes overtake the ones in the pipe.
TEST_P(SplicePumpTest, EnosysWithBytesInThePipeIsAnError) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the pipe cannot be flushed, so its bytes stay
  h.sys_.ShortNth(Op::kSpliceIn, 1, 1000);
  h.sys_.FailNth(Op::kSpliceIn, 2, ENOSYS);
  h.Preload(10000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.stopped_; }, seconds(5)));
  PumpResult r = h.results_.back();
  EXPECT_EQ(r.outcome, PumpOutcome::kError);
  EXPECT_EQ(r.err, ENOSYS);
  EXPECT_TRUE(r.on_source);
  EXPECT_EQ(h.dir_.path, Path::kSplice);
}

// Regression for the pitfall pump.cc guards (ARCHITECTURE.md, "Pitfalls"; HAProxy
// raw_sock.c): "EAGAIN from splice(socket -> pipe) with bytes in the pipe
// does not mean drained" -- it may mean the pipe is full. If SpliceIn cleared
// the source's readable flag on that EAGAIN, the bytes still queued in the
// socket would never be read: edge-triggered epoll sends no new edge for
// data that is already there, and the sender here sends nothing more.
TEST_P(SplicePumpTest, EagainFromSpliceInWithBytesInThePipeDoesNotMeanDrained) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the first pump call cannot flush
  h.sys_.ShortNth(Op::kSpliceIn, 1, 1000);   // 1000 bytes land in the pipe
  h.sys_.FailNth(Op::kSpliceIn, 2, EAGAIN);  // then "EAGAIN": the pipe is full
  const uint64_t total = GetParam() == Family::kTcp ? 48 << 10 : 128 << 10;
  h.Preload(total);  // all of it queued in the relay's socket before the edge
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.sys_.calls(Op::kSpliceIn) >= 2; }, seconds(5)));
  ASSERT_NE(h.dir_.pipe, nullptr);
  EXPECT_EQ(h.dir_.pipe->bytes, 1000u);
  EXPECT_TRUE(h.dir_.pipe_may_be_full);
  EXPECT_TRUE(h.src_watch_.readable())
      << "EAGAIN with bytes in the pipe must not clear the source's readable flag";
  EXPECT_FALSE(h.dst_watch_.writable());
  EXPECT_EQ(Queued(h.src_.relay.get()), static_cast<int>(total - 1000));

  // The app drains the destination; everything arrives without the sender
  // sending another byte (no FIN either: that would bring a fresh edge).
  h.receiver_.reading = true;
  ASSERT_TRUE(h.RunFor([&] { return h.receiver_.payload() == total || h.failed(); },
                       seconds(10)))
      << "stuck at " << h.receiver_.payload() << " of " << total << " bytes";
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.sender_.sent, total);
  EXPECT_FALSE(h.sender_.shut);
  EXPECT_FALSE(h.dir_.pipe_may_be_full);
  EXPECT_GT(h.sys_.calls(Op::kSpliceIn), 2) << "reading resumed after the pipe drained";
  // Once truly drained, a real EAGAIN with an empty pipe does clear the flag.
  ASSERT_TRUE(h.RunFor([&] { return !h.src_watch_.readable(); }, seconds(5)));
  h.ExpectNothingHeld();
  ASSERT_TRUE(h.Transfer(0, true));
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
}

// The pipe pool is at its cap (0 here): a splice direction copies through a
// ring instead, counts the exhaustion, and still delivers every byte.
TEST_P(SplicePumpTest, PipePoolCapZeroFallsBackToCopy) {
  Config c = MakeConfig();
  c.pipe_cap = 0;
  PumpHarness h(c);
  h.Register();
  ASSERT_TRUE(h.Transfer(1 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), 1u << 20);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_GT(h.stats_.pipe_pool_exhausted.Get(), 0u);
  EXPECT_EQ(h.stats_.pipe_pool_exhausted.Get(), h.pipes_.stats().exhausted);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), 1u << 20);
  EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  // The direction stays a splice direction: it asks again next time.
  EXPECT_EQ(h.dir_.path, Path::kSplice);
  h.ExpectNothingHeld();
}

// The pool refuses at first and has a pipe later: the direction copies while
// dry and splices again once a pipe is free, with the order of bytes intact.
TEST_P(SplicePumpTest, PipeFreedLaterIsUsedAgain) {
  Config c = MakeConfig();
  c.pipe_cap = 1;
  PumpHarness h(c);
  std::unique_ptr<KernelPipe> held = h.pipes_.Take();
  ASSERT_NE(held, nullptr);
  h.Register();
  ASSERT_TRUE(h.Transfer(300000, false));
  EXPECT_GT(h.stats_.pipe_pool_exhausted.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  h.pipes_.Return(std::move(held));
  ASSERT_TRUE(h.Transfer(700000, true));
  EXPECT_EQ(h.receiver_.payload(), 1000000u);
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get() + h.stats_.bytes_copied.Get(), 1000000u);
  h.ExpectNothingHeld();
}

INSTANTIATE_TEST_SUITE_P(Families, SplicePumpTest,
                         ::testing::Values(Family::kTcp, Family::kUnix),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return FamilyName(info.param);
                         });

// ---- Auto mode ----------------------------------------------------------------

class AutoPumpTest : public ::testing::TestWithParam<Family> {
 protected:
  Config MakeConfig() {
    Config c;
    c.family = GetParam();
    c.path = Path::kCopy;
    c.auto_splice = true;
    return c;
  }
};

// A read that fills the ring marks the direction for splice; the switch
// waits until the ring has drained (no byte may overtake another), then the
// rest goes through a pipe.
TEST_P(AutoPumpTest, AReadThatFillsTheRingSwitchesToSpliceOnceDrained) {
  PumpHarness h(MakeConfig());
  h.FillDestination();  // the ring cannot drain until the app reads
  h.Preload(GetParam() == Family::kTcp ? 100000 : 150000);
  h.Register();
  ASSERT_TRUE(h.RunFor([&] { return h.sys_.calls(Op::kReadv) >= 1; }, seconds(5)));
  ASSERT_NE(h.dir_.ring, nullptr);
  EXPECT_TRUE(h.dir_.ring->full());
  EXPECT_TRUE(h.dir_.want_splice) << "a read that filled the ring is bulk";
  EXPECT_EQ(h.dir_.path, Path::kCopy) << "no switch while bytes are in the ring";
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.dir_.pipe, nullptr);

  const uint64_t preloaded = h.sender_.allowed;
  h.receiver_.reading = true;
  ASSERT_TRUE(h.Transfer(2 << 20, true));
  EXPECT_EQ(h.receiver_.payload(), preloaded + (2u << 20));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.path, Path::kSplice);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 1u);
  EXPECT_GE(h.stats_.bytes_copied.Get(), 65536u);
  EXPECT_GT(h.stats_.bytes_spliced.Get(), 1u << 20);
  EXPECT_EQ(h.stats_.bytes_copied.Get() + h.stats_.bytes_spliced.Get(), preloaded + (2u << 20));
  EXPECT_GT(h.sys_.calls(Op::kSpliceIn), 0);
  h.ExpectNothingHeld();
}

// Request/response-sized messages never fill the ring: the direction stays
// on copy.
TEST_P(AutoPumpTest, SmallReadsNeverSwitch) {
  PumpHarness h(MakeConfig());
  h.Register();
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(h.Transfer(100 + i % 7, i == 199)) << "message " << i;
    ASSERT_FALSE(h.dir_.want_splice) << "message " << i;
  }
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.results_.back().outcome, PumpOutcome::kDone);
  EXPECT_EQ(h.dir_.path, Path::kCopy);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
  EXPECT_EQ(h.sys_.calls(Op::kSpliceIn), 0);
  EXPECT_EQ(h.stats_.bytes_copied.Get(), h.receiver_.payload());
  h.ExpectNothingHeld();
}

// Without auto_splice (copy mode), even bulk stays on copy.
TEST_P(AutoPumpTest, CopyModeNeverSwitches) {
  Config c = MakeConfig();
  c.auto_splice = false;
  PumpHarness h(c);
  h.Register();
  ASSERT_TRUE(h.Transfer(2 << 20, true));
  EXPECT_EQ(h.receiver_.first_mismatch, -1);
  EXPECT_EQ(h.dir_.path, Path::kCopy);
  EXPECT_FALSE(h.dir_.want_splice);
  EXPECT_EQ(h.stats_.splice_switches.Get(), 0u);
  EXPECT_EQ(h.stats_.bytes_spliced.Get(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, AutoPumpTest,
                         ::testing::Values(Family::kTcp, Family::kUnix),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           return FamilyName(info.param);
                         });

// ---- The seam's EINTR contract ------------------------------------------------

std::atomic<int> g_usr1{0};
void OnUsr1(int) { g_usr1.fetch_add(1); }

// Blocks in `read` on a pipe while another thread signals it (a handler
// without SA_RESTART, so the kernel returns EINTR), then writes one byte.
SysResult ReadUnderSignals(const std::function<SysResult(int, char*)>& read) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  std::atomic<bool> started{false};
  SysResult result;
  pthread_t reader_id{};
  std::thread reader([&] {
    reader_id = pthread_self();
    started = true;  // publishes reader_id
    char c;
    result = read(r.get(), &c);
  });
  while (!started) std::this_thread::sleep_for(milliseconds(1));
  std::this_thread::sleep_for(milliseconds(30));  // let it block in read()
  int before = g_usr1.load();
  for (int i = 0; i < 10; ++i) {
    pthread_kill(reader_id, SIGUSR1);
    std::this_thread::sleep_for(milliseconds(3));
  }
  EXPECT_GT(g_usr1.load(), before);
  EXPECT_EQ(::write(w.get(), "x", 1), 1);
  reader.join();
  return result;
}

TEST(SyscallsContract, RealWrappersRetryEintr) {
  struct sigaction sa {}, old {};
  sa.sa_handler = OnUsr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns EINTR
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  // Control: the raw syscall does see EINTR under these signals...
  SysResult raw = ReadUnderSignals([](int fd, char* c) {
    ssize_t n = ::read(fd, c, 1);
    return SysResult{n, n < 0 ? errno : 0};
  });
  EXPECT_EQ(raw.rc, -1);
  EXPECT_EQ(raw.err, EINTR);
  // ...and the seam's real implementation retries it and returns the byte.
  SysResult seam = ReadUnderSignals(
      [](int fd, char* c) { return Syscalls::Real().Read(fd, c, 1); });
  EXPECT_EQ(seam.rc, 1);
  EXPECT_EQ(seam.err, 0);

  ASSERT_EQ(sigaction(SIGUSR1, &old, nullptr), 0);
}

}  // namespace
}  // namespace zrelay
