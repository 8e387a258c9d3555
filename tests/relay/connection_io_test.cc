// Connection reads and writes on a real loopback socket: lines cut anywhere,
// CRLF, the line limit, exact reads across segments, EOF with data kept, the
// write queue's order behind a slow reader, misuse, Engine::Adopt.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "engine/socket.h"
#include "relay/connection.h"
#include "relay/relay.h"
#include "tests/relay/connection_test_util.h"
#include "tests/relay/relay_test_util.h"

namespace zrelay {
namespace {

using testing::Describe;
using testing::EventLog;
using testing::LegPair;
using testing::LoggedErrno;
using testing::MakeLegPair;
using testing::RecvExactly;
using testing::RecvToEof;

class ConnectionIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto engine = testing::StartEngine({.workers = 1});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
    auto legs = MakeLegPair(AF_INET);
    ASSERT_TRUE(legs.ok()) << legs.error().message();
    app_ = std::move(legs->app);
    leg_ = std::move(legs->leg);
    testing::SetReadDeadline(app_.get(), seconds(10));
  }
  void TearDown() override { engine_.reset(); }

  // Adopts the relay's end; `ready` runs on the worker.
  void Adopt(OnConnection ready) { engine_->Adopt(std::move(leg_), std::move(ready)); }
  void Send(const std::string& data) {
    ASSERT_EQ(::send(app_.get(), data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }

  std::unique_ptr<Engine> engine_;
  UniqueFd app_;
  UniqueFd leg_;
  EventLog log_;
};

// Reads `count` lines, logging each, keeping the connection in the chain.
void ReadLines(ConnectionPtr c, int count, EventLog* log, size_t max_line = 8192) {
  if (count == 0) return;
  Connection& conn = *c;
  conn.ReadLine(
      [c = std::move(c), count, log, max_line](Result<std::string> line) mutable {
        log->Add(Describe(line));
        if (line.ok()) ReadLines(std::move(c), count - 1, log, max_line);
      },
      max_line);
}

TEST_F(ConnectionIoTest, LineArrivingByteByByte) {
  Adopt([this](ConnectionPtr c) { ReadLines(std::move(c), 1, &log_); });
  const std::string line = "a1 LOGIN user secret\r\n";
  for (char ch : line) {
    Send(std::string(1, ch));
    std::this_thread::sleep_for(milliseconds(2));
    if (ch != '\n') {
      EXPECT_TRUE(log_.events().empty()) << "answered before the line end";
    }
  }
  EXPECT_EQ(log_.WaitFor(1), std::vector<std::string>{"data:a1 LOGIN user secret"});
}

TEST_F(ConnectionIoTest, CrlfAndBareLf) {
  Adopt([this](ConnectionPtr c) { ReadLines(std::move(c), 4, &log_); });
  // One segment, four lines: CRLF, bare LF, an empty line, a CR that is data.
  Send("one\r\ntwo\n\r\nthr\ree\r\r\n");
  EXPECT_EQ(log_.WaitFor(4),
            (std::vector<std::string>{"data:one", "data:two", "data:", "data:thr\ree\r"}));
}

TEST_F(ConnectionIoTest, LineLimitIsEmsgsizeAndBreaksTheConnection) {
  Adopt([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine(
        [this, c = std::move(c)](Result<std::string> first) mutable {
          log_.Add(Describe(first));  // 7 bytes and "\n": within 8
          Connection& again = *c;
          again.ReadLine(
              [this, c = std::move(c)](Result<std::string> second) mutable {
                log_.Add(Describe(second));
                // Broken: a write fails at once with the same error.
                Connection& w = *c;
                w.Write("never", [this, c = std::move(c)](Status s) { log_.Add(Describe(s)); });
              },
              8);
        },
        8);
  });
  Send("1234567\n123456789\n");
  auto events = log_.WaitFor(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "data:1234567");
  EXPECT_EQ(LoggedErrno(events[1]), EMSGSIZE) << events[1];
  EXPECT_NE(events[1].find("no line end within 8 bytes"), std::string::npos) << events[1];
  EXPECT_EQ(LoggedErrno(events[2]), EMSGSIZE) << events[2];
}

TEST_F(ConnectionIoTest, ReadExactlyAcrossSegments) {
  constexpr size_t kSize = 300000;
  Adopt([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadExactly(kSize, [this, c = std::move(c)](Result<std::string> data) mutable {
      if (!data.ok()) return log_.Add(Describe(data));
      std::string want(kSize, '\0');
      testing::FillPattern(7, 0, want.data(), kSize);
      log_.Add(data.value() == want ? "exact"
                                    : "mismatch, size " + std::to_string(data.value().size()));
      Connection& again = *c;
      again.ReadExactly(0, [this, c = std::move(c)](Result<std::string> none) mutable {
        log_.Add(Describe(none));
      });
    });
  });
  std::string all(kSize, '\0');
  testing::FillPattern(7, 0, all.data(), kSize);
  for (size_t off = 0; off < kSize; off += 30000) {
    Send(all.substr(off, 30000));
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(log_.WaitFor(2), (std::vector<std::string>{"exact", "data:"}));
}

TEST_F(ConnectionIoTest, EofIsEnodataAndKeepsTheData) {
  Adopt([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
      log_.Add(Describe(line));
      log_.Add("buffered " + std::to_string(c->buffered()));
      Connection& again = *c;
      again.ReadSome([this, c = std::move(c)](Result<std::string> rest) mutable {
        log_.Add(Describe(rest));
        Connection& third = *c;
        third.ReadSome([this, c = std::move(c)](Result<std::string> none) mutable {
          log_.Add(Describe(none));
          // ENODATA does not break it: writing still works.
          Connection& w = *c;
          w.Write("bye\r\n", [this, c = std::move(c)](Status s) { log_.Add(Describe(s)); });
        });
      });
    });
  });
  Send("partial");
  ASSERT_EQ(::shutdown(app_.get(), SHUT_WR), 0);
  auto events = log_.WaitFor(5);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(LoggedErrno(events[0]), ENODATA) << events[0];
  EXPECT_EQ(events[1], "buffered 7");
  EXPECT_EQ(events[2], "data:partial");
  EXPECT_EQ(LoggedErrno(events[3]), ENODATA) << events[3];
  EXPECT_EQ(events[4], "ok");
  EXPECT_EQ(RecvToEof(app_.get()), "bye\r\n");  // and the close after the last handler
}

TEST_F(ConnectionIoTest, WritesGoOutInOrderBehindASlowReader) {
  constexpr size_t kBig = 4 << 20;
  constexpr size_t kSecond = 1 << 20;
  Adopt([this](ConnectionPtr c) {
    std::string big(kBig, '\0');
    testing::FillPattern(1, 0, big.data(), kBig);
    std::string second(kSecond, '\0');
    testing::FillPattern(2, 0, second.data(), kSecond);
    Connection& conn = *c;
    conn.Write(std::move(big), [this](Status s) { log_.Add("big " + Describe(s)); });
    conn.Write("small\n", [this](Status s) { log_.Add("small " + Describe(s)); });
    conn.Write(std::move(second), [this, c = std::move(c)](Status s) mutable {
      log_.Add("second " + Describe(s));
      c.reset();  // closes: the reader sees EOF after the last byte
    });
  });
  // The first megabyte slowly, so the queue backs up behind the big write.
  std::string got;
  for (int i = 0; i < 64; ++i) {
    got += RecvExactly(app_.get(), 16 << 10);
    std::this_thread::sleep_for(milliseconds(2));
  }
  got += RecvToEof(app_.get(), 8 << 20);
  std::string want(kBig, '\0');
  testing::FillPattern(1, 0, want.data(), kBig);
  want += "small\n";
  std::string second(kSecond, '\0');
  testing::FillPattern(2, 0, second.data(), kSecond);
  want += second;
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "bytes differ";
  EXPECT_EQ(log_.WaitFor(3), (std::vector<std::string>{"big ok", "small ok", "second ok"}));
}

TEST_F(ConnectionIoTest, SecondReadWhilePendingIsEbusyAndHarmless) {
  Adopt([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> first) mutable {
      log_.Add("1st " + Describe(first));
    });
    conn.ReadLine([this](Result<std::string> second) { log_.Add("2nd " + Describe(second)); });
  });
  // The refusal comes first (from the loop); the first read still gets its line.
  auto refused = log_.WaitFor(1);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].rfind("2nd error " + std::to_string(EBUSY) + ": ", 0), 0u) << refused[0];
  Send("hello\n");
  auto events = log_.WaitFor(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1], "1st data:hello");
}

TEST_F(ConnectionIoTest, AdoptRunsReadyOnAWorkerAndKnowsThePeer) {
  Result<Address> app_local = LocalAddress(app_.get());
  ASSERT_TRUE(app_local.ok());
  const int leg_fd = leg_.get();
  Adopt([this, leg_fd](ConnectionPtr c) {
    log_.Add("fd " + std::string(c->fd() == leg_fd ? "same" : "other"));
    log_.Add("worker " + std::to_string(c->worker()));
    log_.Add("peer " + c->peer().ToString());
    log_.Add("tls '" + std::string(c->tls_version()) + "'");
  });
  EXPECT_EQ(log_.WaitFor(4), (std::vector<std::string>{"fd same", "worker 0",
                                                       "peer " + app_local->ToString(), "tls ''"}));
  // The ready handler dropped it: closed.
  EXPECT_EQ(RecvToEof(app_.get()), "");
}

}  // namespace
}  // namespace zrelay
