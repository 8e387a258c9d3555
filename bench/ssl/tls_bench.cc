// Costs of the ssl/ layer on one core:
//   BM_TlsTransfer/<chunk>   TlsStream bytes/s over loopback TCP (client -> server)
//   BM_PlainTransfer/<chunk> the same socket pair with send/recv, for the ratio
//   BM_Handshake             full TLS 1.3 handshakes (ECDSA P-256), both ends
//   BM_IdlePairMemory        heap held per idle, handshaken TLS connection pair,
//                            with and without SSL_MODE_RELEASE_BUFFERS
//   BM_ParseClientHello      ClientHello peek of a real OpenSSL hello
//
//   bazel run -c opt //bench/ssl:tls_bench
//
// Rates use wall time (UseRealTime): on a shared or loaded machine they move
// with the load; the ratio to BM_PlainTransfer on the same run is the figure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <benchmark/benchmark.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/unique_fd.h"
#include "ssl/client_hello.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "tls_bench: %s\n", why.c_str());
  std::abort();
}

// Certificates and contexts shared by every benchmark.
struct Setup {
  Setup() {
    std::signal(SIGPIPE, SIG_IGN);
    auto made = testing::MakeTestCerts();
    if (!made.ok()) Die(made.error().message());
    certs = std::move(made.value());
    TlsServerConfig sc;
    sc.certs = {{certs.server.cert, certs.server.key}};
    auto s = BuildServerContext(sc);
    if (!s.ok()) Die(s.error().message());
    server = std::move(s.value());
    TlsClientConfig cc;
    cc.ca_file = certs.ca.cert;
    cc.sni = "localhost";
    cc.alpn = {"h2", "http/1.1"};
    auto c = BuildClientContext(cc);
    if (!c.ok()) Die(c.error().message());
    client = std::move(c.value());
  }
  ~Setup() { testing::RemoveTestCerts(certs); }
  testing::TestCerts certs;
  TlsContext server;
  TlsContext client;
};
Setup& Shared() {
  static Setup* setup = new Setup;
  return *setup;
}

struct Pair {
  UniqueFd client;
  UniqueFd server;
};
Pair TcpPair() {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("listen");
  }
  Pair p;
  p.client.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(p.client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("connect");
  p.server.Reset(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  for (int fd : {p.client.get(), p.server.get()}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return p;
}

void Wait(int fd, const TlsResult& r) {
  pollfd p{fd, static_cast<short>(r.status == TlsIo::kWantWrite ? POLLOUT : POLLIN), 0};
  poll(&p, 1, 1000);
}

void HandshakeBoth(TlsStream& c, int cfd, TlsStream& s, int sfd) {
  TlsResult rc = c.Handshake(), rs = s.Handshake();
  for (int i = 0; i < 1000 && (rc.would_block() || rs.would_block()); ++i) {
    if (rc.would_block()) rc = c.Handshake();
    if (rs.would_block()) rs = s.Handshake();
    if (rc.would_block() && rs.would_block()) {
      pollfd p[2] = {{cfd, POLLIN, 0}, {sfd, POLLIN, 0}};
      poll(p, 2, 1000);
    }
  }
  if (!rc.ok() || !rs.ok()) Die("handshake: " + rc.detail + " / " + rs.detail);
}

// Moves `total` bytes client -> server in `chunk`-sized writes, interleaving
// reads so neither socket buffer stalls. One thread drives both ends.
void BM_TlsTransfer(benchmark::State& state) {
  Setup& setup = Shared();
  const size_t chunk = static_cast<size_t>(state.range(0));
  Pair p = TcpPair();
  TlsStream c(NewClientSsl(setup.client, p.client.get()));
  TlsStream s(NewServerSsl(setup.server, p.server.get()));
  HandshakeBoth(c, p.client.get(), s, p.server.get());
  const std::string data(chunk, 'x');
  std::vector<char> buf(256 << 10);
  constexpr size_t kPerIteration = 8 << 20;
  for (auto _ : state) {
    size_t sent = 0, received = 0;
    size_t retry = 0;
    while (received < kPerIteration) {
      if (sent < kPerIteration) {
        TlsResult w = c.Write(data.data(), retry ? retry : chunk);
        if (w.ok()) {
          sent += w.bytes;
          retry = 0;
        } else if (w.would_block()) {
          retry = retry ? retry : chunk;
        } else {
          Die("write: " + w.detail);
        }
      }
      while (true) {
        TlsResult r = s.Read(buf.data(), buf.size());
        if (!r.ok()) {
          if (!r.would_block()) Die("read: " + r.detail);
          if (retry) {
            // The client's record is partly inside OpenSSL: only another
            // Write flushes it, once the socket has room again.
            pollfd out{p.client.get(), POLLOUT, 0};
            poll(&out, 1, 1000);
          } else if (sent >= kPerIteration && received < kPerIteration) {
            Wait(p.server.get(), r);
          }
          break;
        }
        received += r.bytes;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPerIteration));
}
BENCHMARK(BM_TlsTransfer)->UseRealTime()->Arg(1 << 10)->Arg(16 << 10)->Arg(64 << 10)->Arg(256 << 10);

void BM_PlainTransfer(benchmark::State& state) {
  const size_t chunk = static_cast<size_t>(state.range(0));
  Pair p = TcpPair();
  const std::string data(chunk, 'x');
  std::vector<char> buf(256 << 10);
  constexpr size_t kPerIteration = 8 << 20;
  for (auto _ : state) {
    size_t sent = 0, received = 0;
    while (received < kPerIteration) {
      if (sent < kPerIteration) {
        const ssize_t n = send(p.client.get(), data.data(), chunk, MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
      }
      ssize_t n;
      while ((n = recv(p.server.get(), buf.data(), buf.size(), 0)) > 0) received += n;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPerIteration));
}
BENCHMARK(BM_PlainTransfer)->UseRealTime()->Arg(1 << 10)->Arg(16 << 10)->Arg(64 << 10)->Arg(256 << 10);

void BM_Handshake(benchmark::State& state) {
  Setup& setup = Shared();
  for (auto _ : state) {
    state.PauseTiming();
    Pair p = TcpPair();
    state.ResumeTiming();
    TlsStream c(NewClientSsl(setup.client, p.client.get()));
    TlsStream s(NewServerSsl(setup.server, p.server.get()));
    HandshakeBoth(c, p.client.get(), s, p.server.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Handshake)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Heap bytes per idle pair (client + server SSL) after a handshake and one
// small exchange, measured with mallinfo2 across 200 pairs.
void BM_IdlePairMemory(benchmark::State& state) {
  Setup& setup = Shared();
  const bool release = state.range(0) != 0;
  constexpr int kPairs = 200;
  double per_pair = 0;
  for (auto _ : state) {
    std::vector<Pair> fds;
    std::vector<std::unique_ptr<TlsStream>> streams;
    fds.reserve(kPairs);
    streams.reserve(2 * kPairs);
    for (int i = 0; i < kPairs; ++i) fds.push_back(TcpPair());
    const size_t before = mallinfo2().uordblks;
    for (int i = 0; i < kPairs; ++i) {
      auto c = std::make_unique<TlsStream>(NewClientSsl(setup.client, fds[i].client.get()));
      auto s = std::make_unique<TlsStream>(NewServerSsl(setup.server, fds[i].server.get()));
      if (!release) {
        SSL_clear_mode(c->ssl(), SSL_MODE_RELEASE_BUFFERS);
        SSL_clear_mode(s->ssl(), SSL_MODE_RELEASE_BUFFERS);
      }
      HandshakeBoth(*c, fds[i].client.get(), *s, fds[i].server.get());
      char b[64];
      c->Write("hello", 5);
      TlsResult r;
      do {
        r = s->Read(b, sizeof b);
        if (r.would_block()) Wait(fds[i].server.get(), r);
      } while (!r.ok());
      do {  // the client drains TLS 1.3 session tickets: now both are idle
        r = c->Read(b, sizeof b);
      } while (r.ok());
      streams.push_back(std::move(c));
      streams.push_back(std::move(s));
    }
    per_pair = static_cast<double>(mallinfo2().uordblks - before) / kPairs;
  }
  state.counters["heap_bytes_per_idle_pair"] = per_pair;
}
BENCHMARK(BM_IdlePairMemory)->Arg(1)->Arg(0)->ArgName("release_buffers")->Iterations(1);

std::string CaptureHello() {
  SSL* ssl = NewClientSsl(Shared().client, -1, "bench.example.com");
  if (ssl == nullptr) Die("NewClientSsl");
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, BIO_new(BIO_s_mem()), wbio);
  SSL_connect(ssl);
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio, &data);
  std::string hello(data, n > 0 ? n : 0);
  SSL_free(ssl);
  ERR_clear_error();
  return hello;
}

void BM_ParseClientHello(benchmark::State& state) {
  const std::string hello = CaptureHello();
  for (auto _ : state) {
    ClientHelloPeek p = ParseClientHello(hello);
    benchmark::DoNotOptimize(p);
    if (p.status != PeekStatus::kOk) Die("parse: " + p.error);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * hello.size()));
}
BENCHMARK(BM_ParseClientHello);

}  // namespace
}  // namespace zrelay
