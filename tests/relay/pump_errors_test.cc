// Pump() on a real loop (see pump_harness.h) when a syscall fails, on every
// path and socket family: EAGAIN on the source read waits for the next edge;
// EINTR out of the seam and EPIPE (injected, or from a peer that is really
// gone) end the direction, blamed on the right side; and the seam's own
// contract: its real implementation retries EINTR.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <tuple>

#include "engine/syscalls.h"
#include "engine/unique_fd.h"
#include "relay/pump.h"
#include "tests/relay/pump_harness.h"

namespace zrelay {
namespace {

using testing::AllPathsAndFamilies;
using testing::Family;
using testing::Op;
using testing::PathAndFamilyName;
using testing::PumpHarness;
using testing::PumpTest;
using testing::Queued;
using testing::ReadOp;
using testing::WriteOp;

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

INSTANTIATE_TEST_SUITE_P(PathsAndFamilies, PumpTest, AllPathsAndFamilies(), PathAndFamilyName);

// The seam's EINTR contract.

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
