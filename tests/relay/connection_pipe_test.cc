// Listeners with on_accept and Connection::Pipe: leftover bytes on both
// legs reach the other side first and count in PairStats and the
// listener's metrics; a client holds its max_connections slot until its
// pair closes; Pipe refuses legs of two workers or with an operation
// pending; Listen's checks of on_accept.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/socket.h"
#include "relay/connection.h"
#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/connection_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::EventLog;
using testing::RecvExactly;

// A plain TCP backend on loopback that the test accepts from by hand.
struct ManualBackend {
  ManualBackend() {
    auto l = ListenOn(testing::Loopback());
    EXPECT_TRUE(l.ok());
    if (!l.ok()) return;
    listening = std::move(l).value();
    address = LocalAddress(listening.get()).value();
  }
  UniqueFd Accept() {
    struct pollfd pfd {
      listening.get(), POLLIN, 0
    };
    if (::poll(&pfd, 1, 10000) != 1) return UniqueFd();
    UniqueFd fd(::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.valid()) {
      testing::SetBlocking(fd.get(), true);
      testing::SetReadDeadline(fd.get(), seconds(10));
    }
    return fd;
  }
  UniqueFd listening;
  Address address;
};

class ConnectionPipeTest : public ::testing::Test {
 protected:
  void Start(int workers) {
    auto engine = testing::StartEngine({.workers = workers});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
  }
  void TearDown() override { engine_.reset(); }

  // A listener whose clients send "LOGIN\r\n", get a backend connected,
  // read its greeting line, and are piped to it.
  Result<Address> ListenGateway(const Address& backend, size_t max_connections = 0) {
    ListenOptions listen;
    listen.address = testing::Loopback();
    listen.max_connections = max_connections;
    listen.on_accept = [this, backend](ConnectionPtr client) {
      log_.Add("accepted");
      Connection& c = *client;
      c.ReadLine([this, backend, client = std::move(client)](Result<std::string> login) mutable {
        if (!login.ok()) return log_.Add("login failed");
        Connection& cc = *client;
        cc.Connect(backend, seconds(5),
                   [this, client = std::move(client)](Result<ConnectionPtr> server) mutable {
                     if (!server.ok()) return log_.Add("connect failed");
                     ConnectionPtr s = std::move(*server);
                     Connection& sc = *s;
                     sc.ReadLine([this, client = std::move(client),
                                  s = std::move(s)](Result<std::string> greeting) mutable {
                       log_.Add("greeting " + testing::Describe(greeting));
                       Connection::Pipe(std::move(client), std::move(s), closed_.Callback());
                     });
                   });
      });
    };
    auto id = engine_->Listen(listen);
    if (!id.ok()) return id.error();
    listener_ = *id;
    return engine_->ListenAddress(*id);
  }

  std::unique_ptr<Engine> engine_;
  ListenerId listener_ = 0;
  EventLog log_;
  CloseRecorder closed_;
};

TEST_F(ConnectionPipeTest, LeftoverBytesOfBothLegsGoFirstAndCount) {
  Start(1);
  ManualBackend backend;
  auto address = ListenGateway(backend.address);
  ASSERT_TRUE(address.ok()) << address.error().message();
  auto client = testing::BlockingConnect(*address);
  ASSERT_TRUE(client.ok());
  testing::SetReadDeadline(client->get(), seconds(10));
  // Each side's first segment holds a line and the bytes behind it.
  const std::string client_extra = "client bytes behind the line";
  ASSERT_TRUE(testing::WriteAll(client->get(), "LOGIN\r\n" + client_extra));
  UniqueFd server = backend.Accept();
  ASSERT_TRUE(server.valid());
  const std::string backend_extra = "backend bytes behind its greeting";
  ASSERT_TRUE(testing::WriteAll(server.get(), "* OK greeting\r\n" + backend_extra));

  EXPECT_EQ(RecvExactly(server.get(), client_extra.size()), client_extra);
  EXPECT_EQ(RecvExactly(client->get(), backend_extra.size()), backend_extra);
  // Then the relay proper, both ways, byte for byte.
  constexpr uint64_t kUp = 300000, kDown = 500000;
  std::thread up([&] { testing::SendPattern(client->get(), 11, kUp); });
  std::thread down([&] { testing::SendPattern(server.get(), 12, kDown); });
  const testing::Received at_backend = testing::ReceivePattern(server.get(), 11);
  const testing::Received at_client = testing::ReceivePattern(client->get(), 12);
  up.join();
  down.join();
  EXPECT_EQ(at_backend.bytes, kUp);
  EXPECT_EQ(at_backend.first_mismatch, -1);
  EXPECT_EQ(at_client.bytes, kDown);
  EXPECT_EQ(at_client.first_mismatch, -1);

  auto stats = closed_.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].cause, CloseCause::kDone) << stats[0].detail;
  EXPECT_EQ(stats[0].a_to_b, client_extra.size() + kUp);
  EXPECT_EQ(stats[0].b_to_a, backend_extra.size() + kDown);
  // The stats name the client and the backend, as a listener pair's do.
  auto client_address = LocalAddress(client->get());
  ASSERT_TRUE(client_address.ok());
  EXPECT_EQ(stats[0].client.ToString(), client_address->ToString());
  EXPECT_EQ(stats[0].backend.ToString(), backend.address.ToString());
  EXPECT_EQ(log_.events(), (std::vector<std::string>{"accepted", "greeting data:* OK greeting"}));
  ASSERT_TRUE(testing::WaitFor([&] { return engine_->Metrics().listeners.at(0).open == 0; }));
  const ListenerMetrics m = engine_->Metrics().listeners.at(0);
  EXPECT_EQ(m.accepted_total, 1u);
  EXPECT_EQ(m.closed_total[static_cast<size_t>(CloseCause::kDone)], 1u);
  EXPECT_EQ(m.bytes_client_to_backend_total, client_extra.size() + kUp);
  EXPECT_EQ(m.bytes_backend_to_client_total, backend_extra.size() + kDown);
}

TEST_F(ConnectionPipeTest, ClientHoldsItsSlotUntilItsPairCloses) {
  Start(2);
  ManualBackend backend;
  auto address = ListenGateway(backend.address, /*max_connections=*/1);
  ASSERT_TRUE(address.ok()) << address.error().message();

  auto first = testing::BlockingConnect(*address);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(testing::WriteAll(first->get(), "LOGIN\r\n"));
  UniqueFd first_server = backend.Accept();
  ASSERT_TRUE(first_server.valid());
  ASSERT_TRUE(testing::WriteAll(first_server.get(), "* OK\r\n"));
  ASSERT_EQ(log_.WaitFor(2).size(), 2u);  // accepted, greeting: now a pair

  // The second client waits in the backlog while the first pair is open.
  auto second = testing::BlockingConnect(*address);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(testing::WriteAll(second->get(), "LOGIN\r\n"));
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(log_.events().size(), 2u) << "a second client was accepted";
  EXPECT_EQ(engine_->Metrics().listeners.at(0).accepted_total, 1u);

  // The first pair ends: the slot frees and the second client is accepted.
  ASSERT_EQ(::shutdown(first->get(), SHUT_WR), 0);
  ASSERT_EQ(::shutdown(first_server.get(), SHUT_WR), 0);
  ASSERT_EQ(closed_.WaitFor(1).size(), 1u);
  const auto events = log_.WaitFor(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2], "accepted");
  UniqueFd second_server = backend.Accept();
  EXPECT_TRUE(second_server.valid());
}

TEST_F(ConnectionPipeTest, PipeRefusesLegsOfTwoWorkers) {
  Start(2);
  auto a = testing::MakeLegPair(AF_INET);
  auto b = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  testing::SetReadDeadline(a->app.get(), seconds(10));
  testing::SetReadDeadline(b->app.get(), seconds(10));
  // Round-robin from a non-worker thread: B on worker 0, A on worker 1.
  std::mutex mu;
  ConnectionPtr parked;
  engine_->Adopt(std::move(b->leg), [&](ConnectionPtr c) {
    std::lock_guard<std::mutex> lock(mu);
    parked = std::move(c);
  });
  ASSERT_TRUE(testing::WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return parked != nullptr;
  }));
  engine_->Adopt(std::move(a->leg), [&](ConnectionPtr c) {
    ConnectionPtr other;
    {
      std::lock_guard<std::mutex> lock(mu);
      other = std::move(parked);
    }
    Connection::Pipe(std::move(c), std::move(other), closed_.Callback());
  });
  auto stats = closed_.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].cause, CloseCause::kError);
  EXPECT_NE(stats[0].detail.find("leg A is on worker 1, leg B on worker 0"), std::string::npos)
      << stats[0].detail;
  EXPECT_EQ(testing::RecvToEof(a->app.get()), "");  // both closed
  EXPECT_EQ(testing::RecvToEof(b->app.get()), "");
}

TEST_F(ConnectionPipeTest, PipeRefusesALegWithAReadPending) {
  Start(1);
  auto a = testing::MakeLegPair(AF_INET);
  auto b = testing::MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  testing::SetReadDeadline(a->app.get(), seconds(10));
  testing::SetReadDeadline(b->app.get(), seconds(10));
  auto b_leg = std::make_shared<UniqueFd>(std::move(b->leg));
  Engine* engine = engine_.get();
  engine_->Adopt(std::move(a->leg), [this, engine, b_leg](ConnectionPtr first) {
    auto held = std::make_shared<ConnectionPtr>(std::move(first));
    engine->Adopt(std::move(*b_leg), [this, held](ConnectionPtr second) {
      second->ReadLine([](Result<std::string>) {});  // still pending at Pipe
      Connection::Pipe(std::move(*held), std::move(second), closed_.Callback());
    });
  });
  auto stats = closed_.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].cause, CloseCause::kError);
  EXPECT_NE(stats[0].detail.find("leg B"), std::string::npos) << stats[0].detail;
  EXPECT_NE(stats[0].detail.find("a read is pending"), std::string::npos) << stats[0].detail;
  EXPECT_EQ(testing::RecvToEof(a->app.get()), "");
  EXPECT_EQ(testing::RecvToEof(b->app.get()), "");
}

TEST_F(ConnectionPipeTest, ListenChecksOnAccept) {
  Start(1);
  auto expect_error = [&](ListenOptions o, const std::string& want) {
    auto id = engine_->Listen(o);
    ASSERT_FALSE(id.ok()) << "accepted: " << want;
    EXPECT_NE(id.error().message().find(want), std::string::npos) << id.error().message();
  };
  ListenOptions base;
  base.address = testing::Loopback();
  base.name = "gw";
  base.on_accept = [](ConnectionPtr) {};

  ListenOptions with_backends = base;
  with_backends.backends = {BackendOptions{testing::Loopback(AF_INET, 9), nullptr, ""}};
  expect_error(with_backends, "listener gw: on_accept hands every client to the embedder");
  ListenOptions with_proxy = base;
  with_proxy.proxy_protocol = true;
  expect_error(with_proxy, "listener gw: on_accept is not for a proxy_protocol listener");
  ListenOptions with_route = base;
  with_route.route_by = RouteBy::kSni;
  expect_error(with_route, "listener gw: on_accept is not for a listener with route_by");
  ListenOptions neither = base;
  neither.on_accept = nullptr;
  expect_error(neither, "listener gw: no backend given");

  auto ok = engine_->Listen(base);
  EXPECT_TRUE(ok.ok()) << ok.error().message();
}

}  // namespace
}  // namespace zrelay
