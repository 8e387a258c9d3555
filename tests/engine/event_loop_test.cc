// EventLoop on real fds: flags, tasks, ready list, deferred deletion, timers.
#include "engine/event_loop.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::RunUntil;

// Every test runs on both backends: their readiness must be the same.
class EventLoopTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  std::unique_ptr<EventLoop> NewLoop() {
    auto loop = EventLoop::Create({GetParam()});
    EXPECT_TRUE(loop.ok()) << loop.error().message();
    EXPECT_EQ(loop.value()->io(), GetParam());
    return std::move(loop).value();
  }
};

// Records every event; can clear the flags like an owner draining to EAGAIN.
struct Recorder : FdHandler {
  void OnFdEvent(FdWatch& w, uint32_t ev) override {
    ++events;
    last_events = ev;
    if (on_event) on_event(w);
  }
  int events = 0;
  uint32_t last_events = 0;
  std::function<void(FdWatch&)> on_event;
};

// Reads until EAGAIN (clearing readable) or EOF; returns bytes read.
size_t Drain(FdWatch& w, bool* eof = nullptr) {
  char buf[4096];
  size_t total = 0;
  while (true) {
    ssize_t n = ::read(w.fd(), buf, sizeof(buf));
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      if (eof != nullptr) *eof = true;
      return total;
    }
    if (errno == EAGAIN) w.clear_readable();
    return total;
  }
}

TEST_P(EventLoopTest, TaskPostedFromAnotherThreadRunsOnTheLoopThread) {
  auto loop = NewLoop();
  std::thread::id loop_thread;
  std::atomic<bool> ran{false};
  bool in_loop_thread = false;
  // Bind the loop to this thread first, so InLoopThread() is meaningful.
  loop->RunOnce(Duration::zero());
  std::thread poster([&] {
    EXPECT_FALSE(loop->InLoopThread());
    loop->Post([&] {
      loop_thread = std::this_thread::get_id();
      in_loop_thread = loop->InLoopThread();
      ran = true;
    });
  });
  ASSERT_TRUE(RunUntil(*loop, [&] { return ran.load(); }));
  poster.join();
  EXPECT_EQ(loop_thread, std::this_thread::get_id());
  EXPECT_TRUE(in_loop_thread);
}

TEST_P(EventLoopTest, TenThousandPostsFromTwoThreadsRunInPerThreadOrder) {
  auto loop = NewLoop();
  loop->RunOnce(Duration::zero());  // bind to this thread
  constexpr int kPerThread = 5000;
  std::vector<int> seen[2];
  std::atomic<int> done{0};
  auto producer = [&](int id) {
    for (int i = 0; i < kPerThread; ++i) {
      loop->Post([&, id, i] {
        EXPECT_TRUE(loop->InLoopThread());
        seen[id].push_back(i);
      });
    }
    ++done;
  };
  std::thread a(producer, 0), b(producer, 1);
  ASSERT_TRUE(RunUntil(*loop, [&] {
    return done == 2 && seen[0].size() == kPerThread && seen[1].size() == kPerThread;
  }));
  a.join();
  b.join();
  for (int id = 0; id < 2; ++id) {
    for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(seen[id][i], i) << "thread " << id;
  }
  EXPECT_EQ(loop->stats().tasks_run, 2u * kPerThread);
}

TEST_P(EventLoopTest, PostWakesABlockedLoop) {
  auto loop = NewLoop();
  std::atomic<bool> ran{false};
  std::thread runner([&] { loop->Run(); });
  const TimePoint start = Clock::now();
  loop->Post([&] { ran = true; });
  ASSERT_TRUE(testing::WaitFor([&] { return ran.load(); }));
  // Run() has no timers, so it blocks in epoll_wait(-1): only the eventfd
  // can have woken it. A generous bound that a missed wake-up (hang) breaks.
  EXPECT_LT(Clock::now() - start, seconds(2));
  loop->Stop();
  runner.join();
}

TEST_P(EventLoopTest, StopBeforeRunStillReturns) {
  auto loop = NewLoop();
  loop->Stop();
  loop->Run();  // must not block
  SUCCEED();
}

TEST_P(EventLoopTest, ReadableSetOnDataClearedByOwner) {
  auto loop = NewLoop();
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  EXPECT_TRUE(watch.registered());
  EXPECT_EQ(watch.fd(), pair->server.get());
  // Registration reports the current state: writable, not readable.
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.writable(); }));
  EXPECT_FALSE(watch.readable());

  ASSERT_EQ(::write(pair->client.get(), "hello", 5), 5);
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.readable(); }));
  EXPECT_TRUE(rec.last_events & EPOLLIN);
  EXPECT_FALSE(watch.read_hup());
  EXPECT_FALSE(watch.error());
  EXPECT_EQ(Drain(watch), 5u);
  EXPECT_FALSE(watch.readable());  // cleared by the owner on EAGAIN

  // Edge-triggered: without new data, no new event and the flag stays clear.
  const int events = rec.events;
  loop->RunOnce(milliseconds(20));
  EXPECT_EQ(rec.events, events);
  EXPECT_FALSE(watch.readable());
  // New data is a new edge.
  ASSERT_EQ(::write(pair->client.get(), "x", 1), 1);
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.readable(); }));
  EXPECT_GT(rec.events, events);
  watch.Unregister();
  EXPECT_FALSE(watch.registered());
}

TEST_P(EventLoopTest, FinGivesReadHupAndReadable) {
  auto loop = NewLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok()) << pair.error().message();
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  ASSERT_EQ(::shutdown(pair->client.get(), SHUT_WR), 0);
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.read_hup(); }));
  EXPECT_TRUE(watch.readable());
  EXPECT_FALSE(watch.error());
  EXPECT_TRUE(rec.last_events & EPOLLRDHUP);
  bool eof = false;
  Drain(watch, &eof);
  EXPECT_TRUE(eof);
}

TEST_P(EventLoopTest, PeerResetGivesError) {
  auto loop = NewLoop();
  auto pair = testing::TcpPair();
  ASSERT_TRUE(pair.ok()) << pair.error().message();
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.writable(); }));
  watch.clear_writable();
  ASSERT_TRUE(SetLingerZero(pair->client.get()).ok());
  pair->client.Reset();  // close with SO_LINGER {1,0}: RST
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.error(); }));
  // Both directions flagged so the owner tries them and learns the error.
  EXPECT_TRUE(watch.readable());
  EXPECT_TRUE(watch.writable());
  EXPECT_EQ(SocketError(watch.fd()), ECONNRESET);
}

TEST_P(EventLoopTest, UnregisteredWatchGetsNoMoreEventsInTheSameBatch) {
  auto loop = NewLoop();
  auto p1 = testing::UnixPair();
  auto p2 = testing::UnixPair();
  ASSERT_TRUE(p1.ok() && p2.ok());
  Recorder r1, r2;
  FdWatch w1, w2;
  ASSERT_TRUE(w1.Register(*loop, p1->server.get(), &r1).ok());
  ASSERT_TRUE(w2.Register(*loop, p2->server.get(), &r2).ok());
  // Both become ready in the same epoll batch (registration reports
  // writable); whichever runs first unregisters the other.
  r1.on_event = [&](FdWatch&) { w2.Unregister(); };
  r2.on_event = [&](FdWatch&) { w1.Unregister(); };
  loop->RunOnce(milliseconds(100));
  EXPECT_EQ(r1.events + r2.events, 1);
}

// UnregisterForClose skips EPOLL_CTL_DEL: in-batch events are still dropped,
// and closing the (unshared) fd takes it out of epoll for good.
TEST_P(EventLoopTest, UnregisterForCloseThenCloseStopsEvents) {
  auto loop = NewLoop();
  auto p1 = testing::UnixPair();
  auto p2 = testing::UnixPair();
  ASSERT_TRUE(p1.ok() && p2.ok());
  Recorder r1, r2;
  FdWatch w1, w2;
  ASSERT_TRUE(w1.Register(*loop, p1->server.get(), &r1).ok());
  ASSERT_TRUE(w2.Register(*loop, p2->server.get(), &r2).ok());
  r1.on_event = [&](FdWatch&) {
    w2.UnregisterForClose();
    p2->server.Reset();
  };
  r2.on_event = [&](FdWatch&) {
    w1.UnregisterForClose();
    p1->server.Reset();
  };
  loop->RunOnce(milliseconds(100));
  EXPECT_EQ(r1.events + r2.events, 1);
  EXPECT_FALSE(w1.registered() && w2.registered());
  // The survivor still works; the closed one left epoll with its last
  // reference (a stale registration would fire for its peer's FIN below).
  int events_before = r1.events + r2.events;
  auto& survivor_peer = w1.registered() ? p1->client : p2->client;
  auto& closed_peer = w1.registered() ? p2->client : p1->client;
  r1.on_event = r2.on_event = nullptr;
  ASSERT_TRUE(testing::WriteAll(survivor_peer.get(), "x"));
  closed_peer.Reset();
  loop->RunOnce(milliseconds(50));
  EXPECT_EQ(r1.events + r2.events, events_before + 1);
}

// A closed fd whose file lives on elsewhere (here a dup; in zrelayd a child
// between fork and exec held every socket) keeps firing in epoll after its
// watch is gone. Those events must reach nobody: the watch was freed (ASan
// would see the read), and a new watch in its place gets only its own.
TEST_P(EventLoopTest, EventsOfAFileStillOpenElsewhereNeverReachAGoneWatch) {
  auto loop = NewLoop();
  auto gone_pair = testing::UnixPair();
  auto next_pair = testing::UnixPair();
  ASSERT_TRUE(gone_pair.ok() && next_pair.ok());
  Recorder gone_rec, next_rec;
  auto gone = std::make_unique<FdWatch>();
  ASSERT_TRUE(gone->Register(*loop, gone_pair->server.get(), &gone_rec).ok());
  loop->RunOnce(milliseconds(50));  // the registration's own event (writable)
  const int events_before = gone_rec.events;
  UniqueFd elsewhere(::dup(gone_pair->server.get()));
  ASSERT_TRUE(elsewhere);
  gone->UnregisterForClose();
  gone_pair->server.Reset();
  gone.reset();
  auto next = std::make_unique<FdWatch>();  // may take the gone watch's slot
  ASSERT_TRUE(next->Register(*loop, next_pair->server.get(), &next_rec).ok());
  ASSERT_TRUE(testing::WriteAll(gone_pair->client.get(), "to the file kept open"));
  loop->RunOnce(milliseconds(50));
  loop->RunOnce(milliseconds(50));
  EXPECT_EQ(gone_rec.events, events_before);
  const int next_events = next_rec.events;
  EXPECT_GE(next_events, 1);  // its writable edge
  ASSERT_TRUE(testing::WriteAll(next_pair->client.get(), "x"));
  ASSERT_TRUE(RunUntil(*loop, [&] { return next_rec.events > next_events; }));
  EXPECT_TRUE(next->readable());
  EXPECT_EQ(gone_rec.events, events_before);
}

// epoll refuses a bad fd at once; io_uring learns it from the poll's
// completion and reports an error event, so the owner's own call fails.
TEST_P(EventLoopTest, RegisterOfABadFdFailsOrReportsAnError) {
  auto loop = NewLoop();
  if (GetParam() == IoBackend::kUring) {
    Recorder rec;
    FdWatch watch;
    ASSERT_TRUE(watch.Register(*loop, 9999, &rec).ok());
    loop->RunOnce(milliseconds(100));
    EXPECT_EQ(rec.events, 1);
    EXPECT_TRUE(rec.last_events & EPOLLERR);
    EXPECT_TRUE(watch.error());
    watch.Unregister();
    return;
  }
  Recorder rec;
  FdWatch watch;
  Status s = watch.Register(*loop, 9999, &rec);  // not an open fd
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("9999"), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().code().value(), EBADF);
  EXPECT_FALSE(watch.registered());
}

struct CountingReady : ReadyHandler {
  void OnReady() override {
    ++runs;
    if (fn) fn();
  }
  int runs = 0;
  std::function<void()> fn;
};

TEST_P(EventLoopTest, ScheduledHandlerRunsNextTurnOnce) {
  auto loop = NewLoop();
  CountingReady h;
  loop->ScheduleReady(&h);
  loop->ScheduleReady(&h);  // idempotent
  loop->RunOnce(seconds(5));  // must not block: the ready list is non-empty
  EXPECT_EQ(h.runs, 1);
  loop->RunOnce(Duration::zero());
  EXPECT_EQ(h.runs, 1);  // not scheduled again
}

TEST_P(EventLoopTest, ReschedulingRunsNextTurnNotInAnEndlessLoop) {
  auto loop = NewLoop();
  CountingReady h;
  h.fn = [&] { loop->ScheduleReady(&h); };
  loop->ScheduleReady(&h);
  for (int turn = 1; turn <= 5; ++turn) {
    loop->RunOnce(seconds(5));
    EXPECT_EQ(h.runs, turn);
  }
  loop->UnscheduleReady(&h);
  loop->RunOnce(Duration::zero());
  EXPECT_EQ(h.runs, 5);
}

TEST_P(EventLoopTest, ReadyHandlerDoesNotStarveFdEvents) {
  auto loop = NewLoop();
  CountingReady busy;
  busy.fn = [&] { loop->ScheduleReady(&busy); };  // always has more work
  loop->ScheduleReady(&busy);
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  Recorder rec;
  FdWatch watch;
  ASSERT_TRUE(watch.Register(*loop, pair->server.get(), &rec).ok());
  loop->RunOnce(Duration::zero());
  ASSERT_EQ(::write(pair->client.get(), "x", 1), 1);
  const int runs_before = busy.runs;
  ASSERT_TRUE(RunUntil(*loop, [&] { return watch.readable(); }, seconds(2)));
  // The event arrived within a couple of turns, while busy kept running.
  EXPECT_LE(busy.runs - runs_before, 3);
  loop->UnscheduleReady(&busy);
}

TEST_P(EventLoopTest, UnscheduleFromAnotherReadyHandlerInTheSameBatch) {
  auto loop = NewLoop();
  CountingReady a, b, c;
  a.fn = [&] { loop->UnscheduleReady(&b); };
  loop->ScheduleReady(&a);
  loop->ScheduleReady(&b);
  loop->ScheduleReady(&c);
  loop->RunOnce(Duration::zero());
  EXPECT_EQ(a.runs, 1);
  EXPECT_EQ(b.runs, 0);
  EXPECT_EQ(c.runs, 1);
}

TEST_P(EventLoopTest, DestroyedReadyHandlerLeavesTheList) {
  auto loop = NewLoop();
  CountingReady a;
  {
    CountingReady gone;
    loop->ScheduleReady(&gone);
    loop->ScheduleReady(&a);
  }
  loop->RunOnce(Duration::zero());
  EXPECT_EQ(a.runs, 1);
}

struct Tracked : Deferrable {
  explicit Tracked(bool* alive) : alive(alive) { *alive = true; }
  ~Tracked() override { *alive = false; }
  bool* alive;
};

TEST_P(EventLoopTest, DeferDeleteRunsAtTheEndOfTheTurn) {
  auto loop = NewLoop();
  bool alive = false;
  bool alive_in_later_task = false;
  Tracked* raw = new Tracked(&alive);  // std::function needs copyable captures
  loop->Post([&, raw] {
    loop->DeferDelete(std::unique_ptr<Deferrable>(raw));
    // Still usable for the rest of the callback...
    EXPECT_TRUE(raw->alive != nullptr && *raw->alive);
  });
  // ...and for the rest of the turn: a task posted earlier runs after it.
  loop->Post([&] { alive_in_later_task = alive; });
  loop->RunOnce(Duration::zero());
  EXPECT_TRUE(alive_in_later_task);
  EXPECT_FALSE(alive);  // gone once the turn ended
}

struct LoopTimer : TimerHandler {
  explicit LoopTimer(EventLoop& loop) : loop(loop), timer(this) {}
  void OnTimer(Timer&) override {
    fired_at = Clock::now();
    ++fired;
    if (fn) fn();
  }
  EventLoop& loop;
  Timer timer;
  TimePoint fired_at;
  int fired = 0;
  std::function<void()> fn;
};

// Wall clock: one check that a real loop honours timers. The lower bound is
// strict (a timer must never fire early). The upper bound is asked + 50 ms:
// the wheel itself adds at most one 1 ms tick plus epoll's ms rounding, so
// the rest is slack for scheduler delays on a loaded 2-core CI box.
TEST_P(EventLoopTest, TimersFireOnTimeOnARealLoop) {
  auto loop = NewLoop();
  LoopTimer t30(*loop), t10(*loop), cancelled(*loop);
  loop->UpdateNow();
  const TimePoint start = loop->now();
  loop->ArmTimer(t30.timer, milliseconds(30));
  loop->ArmTimer(t10.timer, milliseconds(10));
  loop->ArmTimer(cancelled.timer, milliseconds(20));
  t10.fn = [&] { loop->CancelTimer(cancelled.timer); };  // cancel from another timer's handler
  ASSERT_TRUE(RunUntil(*loop, [&] { return t30.fired == 1; }));
  EXPECT_EQ(t10.fired, 1);
  EXPECT_EQ(cancelled.fired, 0);
  EXPECT_GE(t10.fired_at - start, milliseconds(10));
  EXPECT_LE(t10.fired_at - start, milliseconds(10 + 50));
  EXPECT_GE(t30.fired_at - start, milliseconds(30));
  EXPECT_LE(t30.fired_at - start, milliseconds(30 + 50));
  EXPECT_LT(t10.fired_at, t30.fired_at);
  EXPECT_EQ(loop->stats().timers_fired, 2u);
}

TEST_P(EventLoopTest, RunBlocksUntilTheNextTimerThenFiresIt) {
  // Run() computes its epoll timeout from the wheel: with only a timer
  // pending it must wake for it (no event would ever wake it otherwise).
  auto loop = NewLoop();
  LoopTimer t(*loop);
  TimePoint start;
  t.fn = [&] { loop->Stop(); };
  std::thread runner([&] {
    loop->UpdateNow();
    start = loop->now();
    loop->ArmTimer(t.timer, milliseconds(40));
    loop->Run();
  });
  runner.join();
  EXPECT_EQ(t.fired, 1);
  EXPECT_GE(t.fired_at - start, milliseconds(40));
  EXPECT_LE(t.fired_at - start, milliseconds(40 + 50));
  // Few turns: it slept instead of spinning until the timer.
  EXPECT_LT(loop->stats().turns, 10u);
}

// A Syscalls that fails every read with an injected errno.
struct FailingSyscalls : Syscalls {
  explicit FailingSyscalls(int err) : err(err) {}
  SysResult Read(int, void*, size_t) override {
    ++calls;
    return SysResult{-1, err};
  }
  int err;
  int calls = 0;
};

TEST_P(EventLoopTest, InjectedSyscallsReturnTheInjectedError) {
  auto loop = NewLoop();
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  ASSERT_EQ(::write(pair->client.get(), "data", 4), 4);
  FailingSyscalls failing(ECONNRESET);
  loop->set_syscalls(&failing);
  char buf[16];
  SysResult r = loop->sys().Read(pair->server.get(), buf, sizeof(buf));
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, ECONNRESET);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(failing.calls, 1);
  // Restoring the real seam reads the real bytes.
  loop->set_syscalls(nullptr);
  r = loop->sys().Read(pair->server.get(), buf, sizeof(buf));
  EXPECT_EQ(r.rc, 4);
  EXPECT_EQ(r.err, 0);
}

TEST_P(EventLoopTest, RealSyscallsReportEagainAsWouldBlock) {
  auto pair = testing::UnixPair();
  ASSERT_TRUE(pair.ok());
  char buf[8];
  SysResult r = Syscalls::Real().Read(pair->server.get(), buf, sizeof(buf));
  EXPECT_TRUE(r.would_block());
  r = Syscalls::Real().Send(pair->client.get(), "ab", 2);
  EXPECT_EQ(r.rc, 2);
  r = Syscalls::Real().Read(pair->server.get(), buf, sizeof(buf));
  EXPECT_EQ(r.rc, 2);
  // A peer that is gone: EPIPE from Send (MSG_NOSIGNAL), never SIGPIPE.
  pair->server.Reset();
  r = Syscalls::Real().Send(pair->client.get(), "ab", 2);
  EXPECT_EQ(r.err, EPIPE);
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest,
                         ::testing::Values(IoBackend::kEpoll, IoBackend::kUring),
                         [](const ::testing::TestParamInfo<IoBackend>& info) {
                           return std::string(IoBackendName(info.param));
                         });

}  // namespace
}  // namespace zrelay
