// Connection lifetimes and time: per-operation timeouts, After timers and
// their cancellation with the connection, dropping a connection inside its
// own handler, Connect (done, refused, timed out), Adopt from a worker,
// and Drain: it waits for Connections, and closes those left at its deadline.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "relay/connection.h"
#include "relay/relay.h"
#include "tests/relay/connection_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::Describe;
using testing::EventLog;
using testing::LoggedErrno;
using testing::MakeLegPair;
using testing::RecvExactly;
using testing::RecvToEof;

class ConnectionLifetimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto engine = testing::StartEngine({.workers = 2});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
  }
  void TearDown() override { engine_.reset(); }

  // A loopback socket pair; adopts the relay's end, returns the test's.
  UniqueFd AdoptNew(OnConnection ready) {
    auto legs = MakeLegPair(AF_INET);
    EXPECT_TRUE(legs.ok());
    if (!legs.ok()) return UniqueFd();
    testing::SetReadDeadline(legs->app.get(), seconds(10));
    engine_->Adopt(std::move(legs->leg), std::move(ready));
    return std::move(legs->app);
  }

  std::unique_ptr<Engine> engine_;
  EventLog log_;
};

TEST_F(ConnectionLifetimeTest, ReadTimeoutIsEtimedoutAndBreaks) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.SetTimeout(milliseconds(50));
    const TimePoint start = Clock::now();
    conn.ReadLine([this, start, c = std::move(c)](Result<std::string> line) mutable {
      log_.Add(Describe(line));
      log_.Add(Clock::now() - start >= milliseconds(50) ? "not early" : "early");
      Connection& w = *c;
      w.Write("late\n", [this, c = std::move(c)](Status s) { log_.Add(Describe(s)); });
    });
  });
  auto events = log_.WaitFor(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(LoggedErrno(events[0]), ETIMEDOUT) << events[0];
  EXPECT_EQ(events[1], "not early");
  EXPECT_EQ(LoggedErrno(events[2]), ETIMEDOUT) << events[2];
  EXPECT_EQ(RecvToEof(app.get()), "");  // nothing written after the break
}

TEST_F(ConnectionLifetimeTest, TimeoutAppliesToOperationsStartedAfterIt) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine(
        [this, c = std::move(c)](Result<std::string> line) mutable { log_.Add(Describe(line)); });
    conn.SetTimeout(milliseconds(20));  // the read above is not touched
  });
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(log_.events().empty());
  ASSERT_TRUE(testing::WriteAll(app.get(), "in time\n"));
  EXPECT_EQ(log_.WaitFor(1), std::vector<std::string>{"data:in time"});
}

TEST_F(ConnectionLifetimeTest, AfterTimersFireAndDieWithTheConnection) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.After(milliseconds(10), [this] { log_.Add("10 ms"); });
    conn.After(milliseconds(300), [this] { log_.Add("300 ms: must not fire"); });
    // This one owns the connection and drops it, cancelling the 300 ms one.
    conn.After(milliseconds(40), [this, c = std::move(c)]() mutable {
      log_.Add("40 ms: dropping");
      c.reset();
    });
  });
  EXPECT_EQ(log_.WaitFor(2), (std::vector<std::string>{"10 ms", "40 ms: dropping"}));
  EXPECT_EQ(RecvToEof(app.get()), "");  // closed
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(log_.events().size(), 2u);
}

TEST_F(ConnectionLifetimeTest, DroppedInsideItsOwnHandlerCallsNothingMore) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
      log_.Add(Describe(line));
      Connection& self = *c;
      self.Write("queued, never sent\n", [this](Status s) { log_.Add("write " + Describe(s)); });
      self.After(milliseconds(1), [this] { log_.Add("timer fired"); });
      c.reset();  // inside its own read handler
      log_.Add("dropped");
    });
  });
  ASSERT_TRUE(testing::WriteAll(app.get(), "bye\n"));
  EXPECT_EQ(log_.WaitFor(2), (std::vector<std::string>{"data:bye", "dropped"}));
  EXPECT_EQ(RecvToEof(app.get()), "");
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(log_.events().size(), 2u);
}

TEST_F(ConnectionLifetimeTest, ConnectGivesAConnectionOnTheSameWorker) {
  auto listening = ListenOn(testing::Loopback());
  ASSERT_TRUE(listening.ok()) << listening.error().message();
  auto bound = LocalAddress(listening->get());
  ASSERT_TRUE(bound.ok());
  const Address target = *bound;
  UniqueFd app = AdoptNew([this, target](ConnectionPtr c) {
    Connection& conn = *c;
    const size_t worker = conn.worker();
    conn.Connect(target, seconds(5),
                 [this, worker, target, c = std::move(c)](Result<ConnectionPtr> server) mutable {
                   if (!server.ok()) return log_.Add("connect " + server.error().message());
                   ConnectionPtr s = std::move(*server);
                   log_.Add(s->worker() == worker ? "same worker" : "other worker");
                   log_.Add(s->peer().ToString() == target.ToString() ? "peer ok" : "peer?");
                   Connection& sc = *s;
                   sc.Write("to backend\n", [this, s = std::move(s)](Status st) mutable {
                     log_.Add(Describe(st));
                   });
                 });
  });
  struct pollfd pfd {
    listening->get(), POLLIN, 0
  };
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
  const int backend = ::accept4(listening->get(), nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(backend, 0);
  UniqueFd backend_fd(backend);
  testing::SetReadDeadline(backend, seconds(10));
  EXPECT_EQ(RecvExactly(backend, 11), "to backend\n");
  EXPECT_EQ(log_.WaitFor(3), (std::vector<std::string>{"same worker", "peer ok", "ok"}));
}

TEST_F(ConnectionLifetimeTest, ConnectRefusedNamesTheAddress) {
  Address closed_port;
  {
    auto listening = ListenOn(testing::Loopback());
    ASSERT_TRUE(listening.ok());
    auto bound = LocalAddress(listening->get());
    ASSERT_TRUE(bound.ok());
    closed_port = *bound;
  }  // closed: connects are refused
  UniqueFd app = AdoptNew([this, closed_port](ConnectionPtr c) {
    Connection& conn = *c;
    conn.Connect(closed_port, seconds(5),
                 [this, c = std::move(c)](Result<ConnectionPtr> server) mutable {
                   log_.Add(server.ok() ? "connected?" : Describe(Status(server.error())));
                 });
  });
  auto events = log_.WaitFor(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(LoggedErrno(events[0]), ECONNREFUSED) << events[0];
  EXPECT_NE(events[0].find(closed_port.ToString()), std::string::npos) << events[0];
}

// A listening socket whose accept queue is full drops new SYNs: a connect
// to it stays in progress until its timeout.
TEST_F(ConnectionLifetimeTest, ConnectTimesOutUnderTheConnectionTimeout) {
  auto listening = ListenOn(testing::Loopback(), ListenSocketOptions{.backlog = 0});
  ASSERT_TRUE(listening.ok()) << listening.error().message();
  auto bound = LocalAddress(listening->get());
  ASSERT_TRUE(bound.ok());
  const Address full = *bound;
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 4; ++i) {
    auto started = StartConnect(full);  // non-blocking; never accepted
    ASSERT_TRUE(started.ok());
    fillers.push_back(std::move(started).value());
  }
  std::this_thread::sleep_for(milliseconds(50));  // the queue fills
  UniqueFd app = AdoptNew([this, full](ConnectionPtr c) {
    Connection& conn = *c;
    conn.SetTimeout(milliseconds(100));  // shorter than Connect's own 5 s
    const TimePoint start = Clock::now();
    conn.Connect(full, seconds(5),
                 [this, start, c = std::move(c)](Result<ConnectionPtr> server) mutable {
                   log_.Add(server.ok() ? "connected?" : Describe(Status(server.error())));
                   log_.Add(Clock::now() - start < seconds(4) ? "within its timeout" : "late");
                 });
  });
  auto events = log_.WaitFor(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(LoggedErrno(events[0]), ETIMEDOUT) << events[0];
  EXPECT_NE(events[0].find(full.ToString()), std::string::npos) << events[0];
  EXPECT_EQ(events[1], "within its timeout");
}

TEST_F(ConnectionLifetimeTest, AdoptFromAWorkerStaysOnThatWorker) {
  Engine* engine = engine_.get();
  for (int round = 0; round < 2; ++round) {  // from worker 0, then worker 1
    UniqueFd app = AdoptNew([this, engine, round](ConnectionPtr first) {
      const size_t worker = first->worker();
      auto pair = MakeLegPair(AF_INET);
      if (!pair.ok()) return log_.Add("no socket pair");
      engine->Adopt(std::move(pair->leg), [this, worker, round](ConnectionPtr other) {
        log_.Add("round " + std::to_string(round) +
                 (other->worker() == worker ? ": same worker" : ": other worker"));
      });
    });
    auto events = log_.WaitFor(static_cast<size_t>(round) + 1);
    ASSERT_EQ(events.size(), static_cast<size_t>(round) + 1);
    EXPECT_EQ(events.back(), "round " + std::to_string(round) + ": same worker");
  }
}

size_t OpenConnections(const Engine& engine) { return engine.Stats().total.connections_open; }

TEST_F(ConnectionLifetimeTest, DrainWaitsForAConnectionUntilItCloses) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
      log_.Add(Describe(line));
      c.reset();  // the protocol phase ends: the connection closes
    });
  });
  ASSERT_TRUE(testing::WaitFor([&] { return OpenConnections(*engine_) == 1; }));
  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    engine_->Drain(seconds(20));
    drained = true;
  });
  // Drain has stopped the listeners and waits: the connection is still open.
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(drained.load()) << "Drain returned with a Connection open";
  ASSERT_EQ(::send(app.get(), "hello\r\n", 7, MSG_NOSIGNAL), 7);
  drainer.join();
  EXPECT_EQ(log_.events(), std::vector<std::string>{"data:hello"});
  EXPECT_EQ(OpenConnections(*engine_), 0u);
  EXPECT_EQ(testing::RecvToEof(app.get()), "");
}

TEST_F(ConnectionLifetimeTest, DrainClosesAConnectionStillOpenAtItsDeadline) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
      log_.Add("handler ran: " + Describe(line));
    });
  });
  ASSERT_TRUE(testing::WaitFor([&] { return OpenConnections(*engine_) == 1; }));
  engine_->Drain(milliseconds(50));
  EXPECT_EQ(OpenConnections(*engine_), 0u);
  EXPECT_EQ(testing::RecvToEof(app.get()), "") << "the socket is closed";
  std::this_thread::sleep_for(milliseconds(50));  // a handler would run on the worker
  EXPECT_TRUE(log_.events().empty()) << log_.events().front();
}

}  // namespace
}  // namespace zrelay
