// Connection TLS: STARTTLS as the server with the ClientHello in the same
// segment as the STARTTLS line, STARTTLS as the client, implicit TLS through
// ListenOptions::tls + on_accept (and a client that is not TLS), and a
// STARTTLS client piped to a plain backend. The peers are OpenSSL on
// blocking sockets in the test thread.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "engine/socket.h"
#include "relay/connection.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/connection_test_util.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/tls_contexts_fixture.h"

namespace zrelay {
namespace {

using testing::Describe;
using testing::EventLog;
using testing::RecvExactly;

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

std::string SslReadLine(SSL* ssl) {
  std::string out;
  char ch;
  while (out.size() < 4096 && SSL_read(ssl, &ch, 1) == 1) {
    out += ch;
    if (ch == '\n') break;
  }
  return out;
}

bool SslWriteAll(SSL* ssl, const std::string& data) {
  return SSL_write(ssl, data.data(), static_cast<int>(data.size())) ==
         static_cast<int>(data.size());
}

class ConnectionTlsTest : public testing::TlsContextsTest {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // OpenSSL in this thread writes with write(2)
    TlsContextsTest::SetUp();
    if (HasFatalFailure()) return;
    auto engine = testing::StartEngine({.workers = 1});
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine).value();
  }
  void TearDown() override { engine_.reset(); }

  UniqueFd AdoptNew(OnConnection ready) {
    auto legs = testing::MakeLegPair(AF_INET);
    EXPECT_TRUE(legs.ok());
    if (!legs.ok()) return UniqueFd();
    testing::SetReadDeadline(legs->app.get(), seconds(10));
    engine_->Adopt(std::move(legs->leg), std::move(ready));
    return std::move(legs->app);
  }

  // The worker's side of "a1 STARTTLS": answers, starts TLS, then calls `then`.
  void ServeStartTls(ConnectionPtr c, UniqueFunction<void(ConnectionPtr)> then) {
    Connection& conn = *c;
    conn.ReadLine(
        [this, c = std::move(c), then = std::move(then)](Result<std::string> line) mutable {
          log_.Add(Describe(line));
          if (!line.ok()) return;
          Connection& cc = *c;
          cc.Write("a1 OK begin TLS\r\n");
          cc.StartTls(server_ctx_.get(), TlsRole::kServer,
                      [this, c = std::move(c), then = std::move(then)](Status s) mutable {
                        log_.Add("tls " + Describe(s) + " " + std::string(c->tls_version()) +
                                 " sni=" + std::string(c->sni()));
                        if (s.ok()) then(std::move(c));
                      });
        });
  }

  // The client's side: "a1 STARTTLS" and the ClientHello in one send(),
  // then the handshake on the socket. Returns the SSL (null on failure).
  SslPtr ClientStartTls(int fd) {
    SslPtr ssl(NewClientSsl(client_ctx_, fd, "localhost"));
    if (!ssl) return nullptr;
    // The ClientHello, made into memory first.
    SSL_set_bio(ssl.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    if (SSL_do_handshake(ssl.get()) != -1) return nullptr;
    std::string request = "a1 STARTTLS\r\n";
    char buf[4096];
    for (int n; (n = BIO_read(SSL_get_wbio(ssl.get()), buf, sizeof buf)) > 0;) {
      request.append(buf, static_cast<size_t>(n));
    }
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return nullptr;
    }
    const std::string ok = "a1 OK begin TLS\r\n";
    EXPECT_EQ(RecvExactly(fd, ok.size()), ok);
    SSL_set_fd(ssl.get(), fd);  // the rest of the handshake on the socket
    if (SSL_do_handshake(ssl.get()) != 1) return nullptr;
    return ssl;
  }

  std::unique_ptr<Engine> engine_;
  EventLog log_;
};

TEST_F(ConnectionTlsTest, StartTlsServerWithClientHelloBehindTheLine) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    ServeStartTls(std::move(c), [this](ConnectionPtr c) {
      Connection& conn = *c;
      conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
        log_.Add(Describe(line));
        Connection& w = *c;
        w.Write("echo:" + (line.ok() ? line.value() : "?") + "\n", [c = std::move(c)](Status) {});
      });
    });
  });
  SslPtr ssl = ClientStartTls(app.get());
  ASSERT_TRUE(ssl) << "client handshake failed";
  EXPECT_TRUE(SslWriteAll(ssl.get(), "hello over tls\r\n"));
  EXPECT_EQ(SslReadLine(ssl.get()), "echo:hello over tls\n");
  auto events = log_.WaitFor(3);
  ASSERT_EQ(events.size(), 3u) << ::testing::PrintToString(events);
  EXPECT_EQ(events[0], "data:a1 STARTTLS");
  EXPECT_EQ(events[1], "tls ok TLSv1.3 sni=localhost");
  EXPECT_EQ(events[2], "data:hello over tls");
}

TEST_F(ConnectionTlsTest, StartTlsClient) {
  UniqueFd app = AdoptNew([this](ConnectionPtr c) {
    Connection& conn = *c;
    conn.Write("STARTTLS\r\n");
    conn.ReadLine([this, c = std::move(c)](Result<std::string> ok) mutable {
      log_.Add(Describe(ok));
      Connection& cc = *c;
      cc.StartTls(
          client_ctx_.get(), TlsRole::kClient,
          [this, c = std::move(c)](Status s) mutable {
            log_.Add("tls " + Describe(s) + " " + std::string(c->tls_version()) + " sni='" +
                     std::string(c->sni()) + "'");
            Connection& t = *c;
            t.Write("ping\n");
            t.ReadLine([this, c = std::move(c)](Result<std::string> pong) mutable {
              log_.Add(Describe(pong));
            });
          },
          "localhost");
    });
  });
  EXPECT_EQ(RecvExactly(app.get(), 10), "STARTTLS\r\n");
  ASSERT_TRUE(testing::WriteAll(app.get(), "OK\r\n"));
  SslPtr ssl(NewServerSsl(server_ctx_, app.get()));
  ASSERT_TRUE(ssl);
  ASSERT_EQ(SSL_accept(ssl.get()), 1);
  EXPECT_EQ(SslReadLine(ssl.get()), "ping\n");
  ASSERT_TRUE(SslWriteAll(ssl.get(), "pong\n"));
  EXPECT_EQ(log_.WaitFor(3),
            (std::vector<std::string>{"data:OK", "tls ok TLSv1.3 sni=''", "data:pong"}));
}

TEST_F(ConnectionTlsTest, ImplicitTlsListenerHandshakesBeforeOnAccept) {
  ListenOptions listen;
  listen.address = testing::Loopback();
  listen.tls = server_ctx_.get();
  listen.handshake_timeout = seconds(5);
  listen.on_accept = [this](ConnectionPtr c) {
    log_.Add("accepted " + std::string(c->tls_version()) + " sni=" + std::string(c->sni()));
    Connection& conn = *c;
    conn.ReadLine([this, c = std::move(c)](Result<std::string> line) mutable {
      Connection& w = *c;
      w.Write("echo:" + (line.ok() ? line.value() : "?") + "\n", [c = std::move(c)](Status) {});
    });
  };
  auto id = engine_->Listen(listen);
  ASSERT_TRUE(id.ok()) << id.error().message();
  auto address = engine_->ListenAddress(*id);
  ASSERT_TRUE(address.ok());

  {  // A TLS client: served.
    auto fd = testing::BlockingConnect(*address);
    ASSERT_TRUE(fd.ok());
    testing::SetReadDeadline(fd->get(), seconds(10));
    SslPtr ssl(NewClientSsl(client_ctx_, fd->get(), "localhost"));
    ASSERT_EQ(SSL_connect(ssl.get()), 1);
    ASSERT_TRUE(SslWriteAll(ssl.get(), "hi\n"));
    EXPECT_EQ(SslReadLine(ssl.get()), "echo:hi\n");
  }
  {  // Not TLS: closed without reaching on_accept.
    auto fd = testing::BlockingConnect(*address);
    ASSERT_TRUE(fd.ok());
    testing::SetReadDeadline(fd->get(), seconds(10));
    ASSERT_TRUE(testing::WriteAll(fd->get(), "GET / HTTP/1.0\r\n\r\n"));
    char buf[256];
    while (::recv(fd->get(), buf, sizeof buf, 0) > 0) {
    }
  }
  EXPECT_TRUE(testing::WaitFor([&] {
    const MetricsSnapshot m = engine_->Metrics();
    return m.listeners.size() == 1 && m.listeners[0].client_tls_handshake_failures_total == 1 &&
           m.listeners[0].open == 0;
  }));
  const ListenerMetrics m = engine_->Metrics().listeners.at(0);
  EXPECT_EQ(m.accepted_total, 2u);
  EXPECT_EQ(m.client_tls_handshakes_total, 1u);
  EXPECT_EQ(log_.events(), std::vector<std::string>{"accepted TLSv1.3 sni=localhost"});
}

TEST_F(ConnectionTlsTest, StartTlsClientPipedToAPlainBackend) {
  auto listening = ListenOn(testing::Loopback());
  ASSERT_TRUE(listening.ok());
  auto bound = LocalAddress(listening->get());
  ASSERT_TRUE(bound.ok());
  const Address backend_address = *bound;
  testing::CloseRecorder closed;
  UniqueFd app = AdoptNew([this, backend_address, &closed](ConnectionPtr c) {
    ServeStartTls(std::move(c), [this, backend_address, &closed](ConnectionPtr client) {
      Connection& conn = *client;
      conn.Connect(
          backend_address, seconds(5),
          [this, &closed, client = std::move(client)](Result<ConnectionPtr> server) mutable {
            if (!server.ok()) return log_.Add("connect " + server.error().message());
            Connection::Pipe(std::move(client), std::move(*server), closed.Callback());
          });
    });
  });
  SslPtr ssl = ClientStartTls(app.get());
  ASSERT_TRUE(ssl);
  // Sent before the pipe may even exist: it must reach the backend in order.
  ASSERT_TRUE(SslWriteAll(ssl.get(), "over tls to the backend\n"));
  struct pollfd pfd {
    listening->get(), POLLIN, 0
  };
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
  UniqueFd backend(::accept4(listening->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(backend.valid());
  testing::SetBlocking(backend.get(), true);
  testing::SetReadDeadline(backend.get(), seconds(10));
  EXPECT_EQ(RecvExactly(backend.get(), 24), "over tls to the backend\n");
  ASSERT_TRUE(testing::WriteAll(backend.get(), "plain to the tls client\n"));
  EXPECT_EQ(SslReadLine(ssl.get()), "plain to the tls client\n");
  ASSERT_EQ(::shutdown(backend.get(), SHUT_WR), 0);
  char byte;
  EXPECT_EQ(SSL_read(ssl.get(), &byte, 1), 0);  // close_notify from the relay
  ASSERT_GE(SSL_shutdown(ssl.get()), 0);
  ASSERT_EQ(::shutdown(app.get(), SHUT_WR), 0);
  EXPECT_EQ(testing::RecvToEof(backend.get()), "");
  auto stats = closed.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].cause, CloseCause::kDone) << stats[0].detail;
  EXPECT_EQ(stats[0].a_to_b, 24u);
  EXPECT_EQ(stats[0].b_to_a, 24u);
  EXPECT_EQ(stats[0].tls_version, "TLSv1.3");
}

}  // namespace
}  // namespace zrelay
