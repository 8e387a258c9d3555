// Interop with the real OpenSSL command line tools on loopback: our client
// against `openssl s_server`, and `openssl s_client` against our server. The
// children are killed by PID at the end; every wait is bounded.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "engine/unique_fd.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/ssl/tls_test_util.h"
#include "tests/support/certs_fixture.h"
#include "tests/support/test_certs.h"

extern char** environ;

namespace zrelay {
namespace {

using ::testing::HasSubstr;
using testing::Describe;
using Clock = std::chrono::steady_clock;

const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
constexpr char kOpenssl[] = "/usr/bin/openssl";

// A child process with its stdin, stdout and stderr on pipes. The destructor
// kills it (SIGKILL, by PID) and reaps it.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2";
      return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0].c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    stdin_.Reset(in[1]);
    stdout_.Reset(out[0]);
    stderr_.Reset(err[0]);
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void Send(const std::string& text) {
    ASSERT_EQ(write(stdin_.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void CloseStdin() { stdin_.Reset(); }

  // Reads stdout until it contains `want` or `timeout` passes; returns all read.
  std::string ReadStdoutUntil(const std::string& want,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto end = Clock::now() + timeout;
    while (out_.find(want) == std::string::npos && Clock::now() < end) {
      pollfd p{stdout_.get(), POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(stdout_.get(), buf, sizeof buf);
      if (n <= 0) break;
      out_.append(buf, n);
    }
    return out_;
  }
  // Everything on stderr, once the child has exited (or after `timeout`).
  std::string Stderr(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string text;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      pollfd p{stderr_.get(), POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(stderr_.get(), buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, n);
    }
    return text;
  }
  // Waits for the child to exit by itself; returns its status or -1.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd stdin_, stdout_, stderr_;
  std::string out_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Connects to 127.0.0.1:port, retrying while the server starts up (bounded).
UniqueFd ConnectWithRetry(int port, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = Clock::now() + timeout;
  const sockaddr_in addr = Loopback(port);
  while (Clock::now() < end) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
      return fd;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "nothing accepted on port " << port;
  return UniqueFd();
}

TlsResult Drive(const std::function<TlsResult()>& step, int fd, int deadline_ms = 10000) {
  TlsResult r = step();
  for (int waited = 0; r.would_block() && waited < deadline_ms;) {
    if (!testing::WaitFor(fd, r, 100)) waited += 100;
    r = step();
  }
  return r;
}

// Reads until `got` contains `want`, or the stream ends / fails / times out.
TlsResult ReadUntil(TlsStream& s, int fd, const std::string& want, std::string& got) {
  TlsResult r;
  char buf[4096];
  while (got.find(want) == std::string::npos) {
    r = Drive([&] { return s.Read(buf, sizeof buf); }, fd);
    if (!r.ok()) return r;
    got.append(buf, r.bytes);
  }
  return r;
}

TlsResult WriteAll(TlsStream& s, int fd, const std::string& data) {
  size_t off = 0;
  TlsResult r;
  while (off < data.size()) {
    r = Drive([&] { return s.Write(data.data() + off, data.size() - off); }, fd);
    if (!r.ok()) return r;
    off += r.bytes;
  }
  return r;
}

class OpensslCliTest : public testing::CertsTest {
 protected:
  void SetUp() override {
    if (access(kOpenssl, X_OK) != 0) GTEST_SKIP() << kOpenssl << " not installed";
  }
  void TearDown() override { EXPECT_EQ(ERR_peek_error(), 0u); }

  // `openssl s_server -rev` on a free port: echoes each line reversed.
  std::unique_ptr<Child> StartServer(int port, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {kOpenssl, "s_server", "-accept",
                                     "127.0.0.1:" + std::to_string(port), "-cert",
                                     certs_->server.cert, "-key", certs_->server.key, "-rev",
                                     "-naccept", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(argv);
  }

};

// ---- our client, their server -------------------------------------------------

TEST_F(OpensslCliTest, OurClientTalksToSServer) {
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    const int port = testing::FreeTcpPort();
    auto server = StartServer(port, {version, "-alpn", "http/1.1,h2"});
    UniqueFd fd = ConnectWithRetry(port);
    ASSERT_TRUE(fd.valid());
    TlsClientConfig config;
    config.ca_file = certs_->ca.cert;
    config.sni = "localhost";
    config.alpn = {"h2"};
    auto ctx = BuildClientContext(config);
    ASSERT_TRUE(ctx.ok()) << ctx.error().message();
    TlsStream tls(NewClientSsl(*ctx, fd.get()));

    TlsResult r = Drive([&] { return tls.Handshake(); }, fd.get());
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(tls.alpn(), "h2");
    EXPECT_EQ(SSL_version(tls.ssl()), std::string(version) == "-tls1_2" ? TLS1_2_VERSION
                                                                          : TLS1_3_VERSION);
    ASSERT_TRUE(WriteAll(tls, fd.get(), "hello zrelay\n").ok());
    std::string got;
    r = ReadUntil(tls, fd.get(), "\n", got);
    ASSERT_TRUE(r.ok()) << Describe(r) << " got '" << got << "'";
    EXPECT_EQ(got, "yalerz olleh\n");

    // Our close_notify makes s_server end the connection and exit (-naccept 1).
    ASSERT_TRUE(Drive([&] { return tls.Shutdown(); }, fd.get()).ok());
    shutdown(fd.get(), SHUT_WR);
    r = ReadUntil(tls, fd.get(), "never", got);
    EXPECT_TRUE(r.status == TlsIo::kEof || r.status == TlsIo::kTruncated) << Describe(r);
    EXPECT_EQ(server->Wait(), 0) << server->Stderr();
  }
}

TEST_F(OpensslCliTest, OurClientRejectsSServerWithUntrustedCertificate) {
  const int port = testing::FreeTcpPort();
  auto server = std::make_unique<Child>(std::vector<std::string>{
      kOpenssl, "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
      certs_->untrusted.cert, "-key", certs_->untrusted.key, "-naccept", "1", "-quiet"});
  UniqueFd fd = ConnectWithRetry(port);
  ASSERT_TRUE(fd.valid());
  TlsClientConfig config;
  config.ca_file = certs_->ca.cert;
  config.sni = "localhost";
  auto ctx = BuildClientContext(config);
  ASSERT_TRUE(ctx.ok());
  TlsStream tls(NewClientSsl(*ctx, fd.get()));
  TlsResult r = Drive([&] { return tls.Handshake(); }, fd.get());
  EXPECT_EQ(r.status, TlsIo::kError);
  EXPECT_THAT(r.detail, HasSubstr("certificate verify failed: unable to get local issuer"));
}

// ---- their client, our server ---------------------------------------------------

class OurServer {
 public:
  explicit OurServer(const TlsContext& ctx) : ctx_(ctx) {
    listener_.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in addr = Loopback(0);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listener_.get(), 4), 0);
    getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  int port() const { return port_; }

  // Accepts one connection (bounded wait) and runs the TLS handshake.
  TlsResult AcceptAndHandshake() {
    pollfd p{listener_.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
      TlsResult r;
      r.status = TlsIo::kError;
      r.detail = "no connection within 10 s";
      return r;
    }
    conn_.Reset(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    tls_ = TlsStream(NewServerSsl(ctx_, conn_.get()));
    return Drive([this] { return tls_.Handshake(); }, conn_.get());
  }
  TlsStream& tls() { return tls_; }
  int fd() const { return conn_.get(); }

 private:
  const TlsContext& ctx_;
  UniqueFd listener_;
  int port_ = 0;
  UniqueFd conn_;
  TlsStream tls_;
};

std::vector<std::string> SClient(int port, std::vector<std::string> extra) {
  std::vector<std::string> argv = {kOpenssl, "s_client", "-connect",
                                   "127.0.0.1:" + std::to_string(port), "-brief"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

TEST_F(OpensslCliTest, SClientTalksToOurServer) {
  TlsServerConfig config;
  config.certs = {{certs_->server.cert, certs_->server.key},
                  {certs_->second.cert, certs_->second.key}};
  config.alpn = {"h2", "http/1.1"};
  auto ctx = BuildServerContext(config);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message();
  OurServer server(*ctx);
  Child client(SClient(server.port(), {"-servername", "other.test", "-CAfile", certs_->ca.cert,
                                       "-verify_return_error", "-verify_hostname", "other.test",
                                       "-alpn", "http/1.1"}));

  TlsResult r = server.AcceptAndHandshake();
  ASSERT_TRUE(r.ok()) << Describe(r) << "\n" << client.Stderr();
  EXPECT_EQ(server.tls().sni(), "other.test");
  EXPECT_EQ(server.tls().alpn(), "http/1.1");

  client.Send("ping\n");
  std::string got;
  r = ReadUntil(server.tls(), server.fd(), "\n", got);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(got, "ping\n");
  ASSERT_TRUE(WriteAll(server.tls(), server.fd(), "pong\n").ok());
  EXPECT_THAT(client.ReadStdoutUntil("pong\n"), HasSubstr("pong\n"));

  // EOF on s_client's stdin: it sends close_notify and exits.
  client.CloseStdin();
  r = ReadUntil(server.tls(), server.fd(), "never", got);
  EXPECT_EQ(r.status, TlsIo::kEof) << Describe(r);
  EXPECT_EQ(client.Wait(), 0);
  const std::string log = client.Stderr();
  EXPECT_THAT(log, HasSubstr("Verification: OK"));
  EXPECT_THAT(log, HasSubstr("CN = other.test"));  // SNI chose the second certificate
}

TEST_F(OpensslCliTest, SClientWithClientCertificate) {
  TlsServerConfig config;
  config.certs = {{certs_->server.cert, certs_->server.key}};
  config.client_ca_file = certs_->ca.cert;
  auto ctx = BuildServerContext(config);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message();
  for (bool with_cert : {true, false}) {
    SCOPED_TRACE(with_cert ? "with a client certificate" : "without");
    OurServer server(*ctx);
    std::vector<std::string> extra = {"-servername", "localhost", "-CAfile", certs_->ca.cert};
    if (with_cert) {
      extra.insert(extra.end(), {"-cert", certs_->client.cert, "-key", certs_->client.key});
    }
    Child client(SClient(server.port(), extra));
    TlsResult r = server.AcceptAndHandshake();
    if (with_cert) {
      ASSERT_TRUE(r.ok()) << Describe(r) << "\n" << client.Stderr();
      EXPECT_EQ(testing::PeerCommonName(server.tls()), "zrelay test client");
      client.CloseStdin();
      std::string got;
      EXPECT_EQ(ReadUntil(server.tls(), server.fd(), "never", got).status, TlsIo::kEof);
    } else {
      EXPECT_EQ(r.status, TlsIo::kError);
      EXPECT_THAT(r.detail, HasSubstr("peer did not return a certificate"));
      client.CloseStdin();
      EXPECT_THAT(client.Stderr(), HasSubstr("alert certificate required"));
    }
  }
}

TEST_F(OpensslCliTest, SClientRejectsOurWrongNameCertificate) {
  TlsServerConfig config;
  config.certs = {{certs_->wrong_name.cert, certs_->wrong_name.key}};
  auto ctx = BuildServerContext(config);
  ASSERT_TRUE(ctx.ok());
  OurServer server(*ctx);
  Child client(SClient(server.port(), {"-servername", "localhost", "-CAfile", certs_->ca.cert,
                                       "-verify_return_error", "-verify_hostname", "localhost"}));
  TlsResult r = server.AcceptAndHandshake();
  EXPECT_EQ(r.status, TlsIo::kError);
  EXPECT_THAT(r.detail, HasSubstr("alert bad certificate"));
  EXPECT_NE(client.Wait(), 0);
}

}  // namespace
}  // namespace zrelay
