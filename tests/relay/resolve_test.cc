// Host backends: resolved at Listen() and again every resolve_interval,
// through ListenOptions::resolve (a table the test changes) and through
// getaddrinfo for "localhost".
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/pool_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::CountingBackend;
using testing::Loopback;
using testing::RoundTrip;

// A name service the test edits: host -> addresses (returned as they are,
// ports included). A host with no entry fails to resolve.
class FakeDns {
 public:
  void Set(const std::string& host, std::vector<Address> addresses) {
    std::lock_guard<std::mutex> lock(mu_);
    table_[host] = std::move(addresses);
  }
  void Remove(const std::string& host) {
    std::lock_guard<std::mutex> lock(mu_);
    table_.erase(host);
  }
  int lookups() const { return lookups_.load(); }
  ResolveFunction Function() {
    return [this](const std::string& host, int /*port*/) -> Result<std::vector<Address>> {
      ++lookups_;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = table_.find(host);
      if (it == table_.end()) return Error::Invalid("'" + host + "': no such name");
      return it->second;
    };
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<Address>> table_;
  std::atomic<int> lookups_{0};
};

class ResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
  }

  ListenOptions Options(const std::string& host, int port = 80) {
    ListenOptions o;
    o.name = "app";
    o.address = Loopback();
    BackendOptions b;
    b.host = host;
    b.port = port;
    o.backends.push_back(b);
    o.resolve = dns_.Function();
    o.resolve_interval = milliseconds(20);
    o.on_close = closes_.Callback();
    o.on_event = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(line);
    };
    return o;
  }

  Address Listen(const ListenOptions& o) { return testing::ListenOrFail(*engine_, o); }

  bool SawEvent(const std::string& part) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : events_) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }

  FakeDns dns_;
  CloseRecorder closes_;
  std::mutex mu_;
  std::vector<std::string> events_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ResolveTest, NewAddressesTakeNewClientsAndOpenPairsFinishUnharmed) {
  CountingBackend a(Loopback()), b(Loopback());
  dns_.Set("app.test", {a.address()});
  Address front = Listen(Options("app.test"));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(a.accepted(), 4);

  // A pair open to A while the name moves to B.
  auto open = testing::BlockingConnect(front);
  ASSERT_TRUE(open.ok());
  ASSERT_TRUE(testing::WaitFor([&] { return a.accepted() == 5; }));
  dns_.Set("app.test", {b.address()});
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return SawEvent("listener app: backend app.test:80 now resolves to " +
                        b.address().ToString() + " (was " + a.address().ToString() + ")");
      },
      seconds(10)));
  // The workers switch at their next loop turn: the first clients may still
  // be on A's generation.
  int clients = 5;
  for (int i = 0; i < 20 && b.accepted() == 0; ++i, ++clients) ASSERT_TRUE(RoundTrip(front));
  ASSERT_GT(b.accepted(), 0);
  const int on_a = a.accepted();
  for (int i = 0; i < 10; ++i, ++clients) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(a.accepted(), on_a) << "a client went to the old address";

  // The old pair still relays, byte for byte, to A.
  EXPECT_TRUE(testing::Exchange(open->get(), 200000));
  auto closed = closes_.WaitFor(static_cast<size_t>(clients));
  ASSERT_EQ(closed.size(), static_cast<size_t>(clients));
  size_t to_a = 0;
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
    if (s.backend.ToString() == a.address().ToString()) ++to_a;
  }
  EXPECT_EQ(to_a, static_cast<size_t>(on_a));
  EXPECT_TRUE(a.ok() && b.ok());
}

TEST_F(ResolveTest, EveryAddressIsAnEndpointAndRemovedOnesGetNoClients) {
  CountingBackend a(Loopback()), b(Loopback()), c(Loopback());
  dns_.Set("app.test", {a.address(), b.address()});
  Address front = Listen(Options("app.test"));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_GE(a.accepted(), 3);
  EXPECT_GE(b.accepted(), 3);

  dns_.Set("app.test", {b.address(), c.address()});
  ASSERT_TRUE(testing::WaitFor([&] { return SawEvent("now resolves to"); }, seconds(10)));
  for (int i = 0; i < 20 && c.accepted() == 0; ++i) ASSERT_TRUE(RoundTrip(front));
  ASSERT_GT(c.accepted(), 0);
  const int on_a = a.accepted();
  const int on_b = b.accepted(), on_c = c.accepted();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(a.accepted(), on_a);
  EXPECT_GE(b.accepted() - on_b, 3);
  EXPECT_GE(c.accepted() - on_c, 3);
}

TEST_F(ResolveTest, AFailedLookupKeepsTheAddressesItHad) {
  CountingBackend a(Loopback());
  dns_.Set("app.test", {a.address()});
  Address front = Listen(Options("app.test"));
  dns_.Remove("app.test");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return SawEvent("backend app.test:80: 'app.test': no such name; keeping " +
                        a.address().ToString());
      },
      seconds(10)));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(a.accepted(), 4);
}

TEST_F(ResolveTest, ANameWithNoAddressAtStartFailsListenNamingIt) {
  auto id = engine_->Listen(Options("missing.test", 8080));
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(),
            "listener app: backend missing.test:8080: 'missing.test': no such name");
  ListenOptions o = Options("app.test");
  o.backends[0].port = 0;
  id = engine_->Listen(o);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().message(),
            "listener app: backend app.test: port 0 is out of range (1..65535)");
}

TEST_F(ResolveTest, LocalhostThroughGetaddrinfo) {
  CountingBackend a(Loopback());
  ListenOptions o = Options("localhost", a.address().port());
  o.resolve = {};  // the engine's own getaddrinfo
  o.resolve_interval = seconds(30);
  // localhost may also be ::1, where nothing listens on this port: retried.
  o.retries = 1;
  Address front = Listen(o);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(RoundTrip(front));
  EXPECT_EQ(a.accepted(), 6);
  auto closed = closes_.WaitFor(6);
  ASSERT_EQ(closed.size(), 6u);
  for (const PairStats& s : closed) {
    EXPECT_EQ(s.cause, CloseCause::kDone) << s.detail;
    EXPECT_EQ(s.backend.ToString(), a.address().ToString());
  }
}

}  // namespace
}  // namespace zrelay
