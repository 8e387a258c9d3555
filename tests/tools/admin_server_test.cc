// tools/admin/admin_server: the admin endpoint over real loopback (and
// unix) sockets, fed hand-built snapshots: the routes, the answers to
// broken requests, and the bounds that keep one admin client from holding
// up another (timeout, head size, connection cap).
#include "tools/admin/admin_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/unique_fd.h"
#include "tests/support/loop_test_util.h"
#include "tests/tools/admin_http_client.h"
#include "tools/admin/prometheus_text.h"

namespace zrelay {
namespace {

using testing::HttpExchange;
using testing::HttpGet;
using testing::HttpReply;

MetricsSnapshot OneListener(uint64_t accepted) {
  MetricsSnapshot snapshot;
  snapshot.listeners.resize(1);
  snapshot.listeners[0].name = "web";
  snapshot.listeners[0].accepted_total = accepted;
  snapshot.workers.resize(1);
  return snapshot;
}

class AdminServerTest : public ::testing::Test {
 protected:
  // Starts a server on 127.0.0.1 (a port of the kernel's) with `options`
  // filled in; its snapshots say `draining_`.
  std::unique_ptr<AdminServer> Start(AdminServerOptions options = {}) {
    if (options.address.length() == 0) options.address = testing::Loopback(AF_INET);
    options.metrics = [this] {
      MetricsSnapshot snapshot = OneListener(7);
      snapshot.draining = draining_.load();
      return snapshot;
    };
    auto server = AdminServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.error().message();
    return server.ok() ? std::move(server.value()) : nullptr;
  }

  // A connected client that has sent nothing (yet).
  static UniqueFd Connect(const Address& address) {
    Result<UniqueFd> fd = testing::BlockingConnect(address);
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    return fd.ok() ? std::move(fd.value()) : UniqueFd();
  }

  std::atomic<bool> draining_{false};
};

TEST_F(AdminServerTest, MetricsIsPrometheusText) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  Result<HttpReply> reply = HttpGet(server->address(), "/metrics");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(reply->headers["content-length"], std::to_string(reply->body.size()));
  EXPECT_EQ(reply->headers["connection"], "close");
  EXPECT_NE(reply->body.find("\nzrelay_listener_connections_accepted_total{listener=\"web\"} 7\n"),
            std::string::npos)
      << reply->body;
  // The body is the renderer's, apart from the start time the server sets.
  const std::string rendered = PrometheusText(OneListener(7), 0);
  const std::string tail = rendered.substr(rendered.find("# HELP zrelay_draining"));
  EXPECT_TRUE(reply->body.ends_with(tail));
  EXPECT_NE(reply->body.find("\nzrelay_start_time_seconds 1"), std::string::npos);
}

TEST_F(AdminServerTest, QueryStringAndAbsoluteFormReachTheRoute) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  Result<HttpReply> query = HttpGet(server->address(), "/metrics?name[]=zrelay_draining");
  ASSERT_TRUE(query.ok()) << query.error().message();
  EXPECT_EQ(query->status, 200);
  Result<HttpReply> absolute = HttpExchange(
      server->address(), "GET http://admin:9901/healthz HTTP/1.1\r\nHost: admin:9901\r\n\r\n");
  ASSERT_TRUE(absolute.ok()) << absolute.error().message();
  EXPECT_EQ(absolute->status, 200);
  EXPECT_EQ(absolute->body, "ok\n");
}

TEST_F(AdminServerTest, HealthzSaysDrainingOnceTheSnapshotDoes) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  Result<HttpReply> serving = HttpGet(server->address(), "/healthz");
  ASSERT_TRUE(serving.ok()) << serving.error().message();
  EXPECT_EQ(serving->status, 200);
  EXPECT_EQ(serving->body, "ok\n");

  draining_ = true;
  Result<HttpReply> draining = HttpGet(server->address(), "/healthz");
  ASSERT_TRUE(draining.ok()) << draining.error().message();
  EXPECT_EQ(draining->status, 503);
  EXPECT_EQ(draining->body, "draining\n");
  Result<HttpReply> metrics = HttpGet(server->address(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.error().message();
  EXPECT_NE(metrics->body.find("\nzrelay_draining 1\n"), std::string::npos);
}

TEST_F(AdminServerTest, HeadIsGetWithoutTheBody) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  Result<HttpReply> reply =
      HttpExchange(server->address(), "HEAD /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "");
  EXPECT_GT(std::stoul(reply->headers["content-length"]), 1000u);
}

TEST_F(AdminServerTest, UnknownPathIs404AndOtherMethods405) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  Result<HttpReply> missing = HttpGet(server->address(), "/metricz");
  ASSERT_TRUE(missing.ok()) << missing.error().message();
  EXPECT_EQ(missing->status, 404);

  Result<HttpReply> post = HttpExchange(
      server->address(), "POST /metrics HTTP/1.1\r\nHost: admin\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(post.ok()) << post.error().message();
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->headers["allow"], "GET, HEAD");
  Result<HttpReply> del = HttpExchange(server->address(), "DELETE /healthz HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(del.ok()) << del.error().message();
  EXPECT_EQ(del->status, 405);
}

TEST_F(AdminServerTest, GarbageIs400ThenClose) {
  auto server = Start();
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
      "GET /metrics HTTP/2.0\r\n\r\n",
      "GET /metrics\r\n\r\n",
      "GET  /metrics HTTP/1.1\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
      "GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n",
      "GET /metrics HTTP/1.1\n\n",
      "hello world\r\n\r\n",
  };
  for (const std::string& request : garbage) {
    // Nothing but the bytes above: the 400 comes without the client closing.
    Result<HttpReply> reply = HttpExchange(server->address(), request);
    ASSERT_TRUE(reply.ok()) << reply.error().message() << " for " << request;
    EXPECT_EQ(reply->status, 400) << request;
    EXPECT_EQ(reply->body, "bad request\n");
  }
}

TEST_F(AdminServerTest, HeadOverTheLimitIs431) {
  AdminServerOptions options;
  options.max_head_bytes = 8 << 10;
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  const std::string big =
      "GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Pad: " + std::string(9000, 'a') + "\r\n\r\n";
  Result<HttpReply> reply = HttpExchange(server->address(), big);
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 431);

  // Just under the limit is served.
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Pad: \r\n\r\n";
  const std::string fits = "GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Pad: " +
                           std::string((8 << 10) - head.size(), 'a') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), 8u << 10);
  Result<HttpReply> served = HttpExchange(server->address(), fits);
  ASSERT_TRUE(served.ok()) << served.error().message();
  EXPECT_EQ(served->status, 200);
}

TEST_F(AdminServerTest, SilentClientDoesNotHoldUpAScrape) {
  AdminServerOptions options;
  options.timeout = seconds(60);  // the silent client stays for the whole test
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  UniqueFd silent = Connect(server->address());
  UniqueFd half = Connect(server->address());
  ASSERT_TRUE(testing::WriteAll(half.get(), "GET /metr"));
  for (int i = 0; i < 3; ++i) {
    Result<HttpReply> reply = HttpGet(server->address(), "/metrics");
    ASSERT_TRUE(reply.ok()) << reply.error().message();
    EXPECT_EQ(reply->status, 200);
  }
}

TEST_F(AdminServerTest, TricklingClientIsClosedAtTheTimeout) {
  AdminServerOptions options;
  options.timeout = seconds(1);
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  UniqueFd client = Connect(server->address());
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
  // One byte per 100 ms: the whole request would take 25 s, the server
  // gives it 1 s. Bounded at 20 s (200 bytes) in case it never closes.
  bool closed = false;
  std::string answered;
  for (size_t i = 0; i < request.size() && !closed; ++i) {
    if (::send(client.get(), &request[i], 1, MSG_NOSIGNAL) != 1) {
      closed = true;  // EPIPE or ECONNRESET: the server is gone
      break;
    }
    pollfd p{client.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) == 1) {
      char buffer[512];
      ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        answered.append(buffer, static_cast<size_t>(n));  // it should not answer at all
      } else if (n == 0 || errno != EAGAIN) {
        closed = true;  // EOF or a reset
      }
    }
  }
  EXPECT_TRUE(closed) << "the trickling client was still connected after " << request.size()
                      << " bytes";
  EXPECT_EQ(answered, "");

  // Meanwhile and after, others are served.
  Result<HttpReply> reply = HttpGet(server->address(), "/healthz");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 200);
}

TEST_F(AdminServerTest, ClientsPastTheCapGet503AtOnce) {
  AdminServerOptions options;
  options.max_connections = 4;
  options.timeout = seconds(60);
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  std::vector<UniqueFd> holding;
  for (int i = 0; i < 4; ++i) holding.push_back(Connect(server->address()));

  // Accepted in order, after the four: each is told and closed, without
  // having sent a byte.
  for (int i = 0; i < 3; ++i) {
    UniqueFd extra = Connect(server->address());
    Result<std::string> raw = testing::ReadToEof(extra.get());
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    Result<HttpReply> reply = testing::ParseReply(raw.value());
    ASSERT_TRUE(reply.ok()) << reply.error().message();
    EXPECT_EQ(reply->status, 503);
    EXPECT_EQ(reply->body, "too many admin connections\n");
  }

  // One of the four leaves: its place is free again.
  holding.pop_back();
  bool served = testing::WaitFor(
      [&] {
        Result<HttpReply> reply = HttpGet(server->address(), "/healthz");
        return reply.ok() && reply->status == 200;
      },
      seconds(10), milliseconds(20));
  EXPECT_TRUE(served);
}

TEST_F(AdminServerTest, ManyConcurrentScrapesAreEachAnsweredWhole) {
  AdminServerOptions options;
  options.max_connections = 4;
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 24;
  std::vector<int> statuses(kClients, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      Result<HttpReply> reply = HttpGet(server->address(), "/metrics");
      if (!reply.ok()) return;
      const bool whole = reply->headers["content-length"] == std::to_string(reply->body.size());
      statuses[i] = whole ? reply->status : -1;
    });
  }
  for (std::thread& t : clients) t.join();
  int served = 0;
  for (int status : statuses) {
    EXPECT_TRUE(status == 200 || status == 503) << status;
    served += status == 200;
  }
  EXPECT_GE(served, 1);
}

TEST_F(AdminServerTest, LargeExpositionArrivesWhole) {
  MetricsSnapshot big = OneListener(1);
  for (int i = 0; i < 3000; ++i) {
    BackendMetrics backend;
    backend.address = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":9000";
    backend.connect_seconds.bounds_seconds.assign(kConnectSecondsBounds.begin(),
                                                  kConnectSecondsBounds.end());
    backend.connect_seconds.counts.assign(kConnectSecondsBounds.size() + 1, uint64_t(i));
    big.listeners[0].backends.push_back(backend);
  }
  AdminServerOptions options;
  options.address = testing::Loopback(AF_INET);
  options.metrics = [&big] { return big; };
  auto server = AdminServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.error().message();
  Result<HttpReply> reply = HttpGet(server.value()->address(), "/metrics");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  ASSERT_EQ(reply->status, 200);
  EXPECT_GT(reply->body.size(), 2u << 20);  // far more than a socket buffer
  EXPECT_EQ(reply->headers["content-length"], std::to_string(reply->body.size()));
  const std::string rendered = PrometheusText(big, 0);
  const std::string tail = rendered.substr(rendered.find("# HELP zrelay_draining"));
  EXPECT_TRUE(reply->body.ends_with(tail));
}

TEST_F(AdminServerTest, ServesAUnixSocket) {
  // Abstract: no file to clean up, and no path too long for sun_path.
  const std::string name = "unix:@zrelay-admin-test-" + std::to_string(::getpid());
  AdminServerOptions options;
  options.address = Address::Parse(name).value();
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->address().ToString(), name);
  Result<HttpReply> reply = HttpGet(server->address(), "/healthz");
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->body, "ok\n");
}

TEST_F(AdminServerTest, BindFailureNamesTheAddress) {
  auto first = Start();
  ASSERT_NE(first, nullptr);
  AdminServerOptions options;
  options.address = first->address();
  options.metrics = [] { return MetricsSnapshot{}; };
  auto second = AdminServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find(first->address().ToString()), std::string::npos)
      << second.error().message();
}

TEST_F(AdminServerTest, StopClosesClientsAndJoins) {
  AdminServerOptions options;
  options.timeout = seconds(60);
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  const Address address = server->address();
  UniqueFd silent = Connect(address);
  ASSERT_TRUE(testing::WaitFor([&] { return HttpGet(address, "/healthz").ok(); }));
  server->Stop();
  server->Stop();  // again: nothing left to do
  Result<std::string> rest = testing::ReadToEof(silent.get());
  ASSERT_TRUE(rest.ok()) << rest.error().message();
  EXPECT_EQ(rest.value(), "");
  EXPECT_FALSE(testing::BlockingConnect(address).ok());  // nothing listens any more
}

}  // namespace
}  // namespace zrelay
