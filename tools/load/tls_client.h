// The TLS client side of zrelay-load (--tls), over ssl/TlsStream.
//
// One client context per run (ssl/BuildClientContext), shared read-only by
// every worker; one SSL per connection, wrapped as a Transport so the
// connection code is the same as for plain TCP.
//
// Verification is on by default, against --tls-ca (else the system trust
// store); --tls-insecure turns it off. The name checked: --sni when given
// (also sent as SNI); else the host of --target when it is a name (also
// sent as SNI); else the target's IP literal, checked against the
// certificate's IP SANs (IP literals are never sent as SNI).
#pragma once

#include <memory>
#include <string>

#include "engine/event_loop.h"
#include "engine/result.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tools/load/config.h"
#include "tools/load/transport.h"

namespace zrelay::load {

class TlsClient {
 public:
  // Errors name the flag ("--tls-ca: CA file '/x.pem': No such file ...").
  static Result<std::unique_ptr<TlsClient>> Create(const Config& config);

  // A TLS transport for a connected socket, in connect state (the handshake
  // runs from Transport::Handshake). Loop thread of that connection.
  std::unique_ptr<Transport> Wrap(EventLoop& loop, FdWatch& watch, int fd) const;

 private:
  explicit TlsClient(TlsContext ctx) : ctx_(std::move(ctx)) {}
  TlsContext ctx_;
};

// TLS over one socket. The fd and watch are owned by the caller.
class TlsTransport final : public Transport {
 public:
  TlsTransport(EventLoop& loop, FdWatch& watch, int fd, SSL* ssl)
      : loop_(loop), watch_(watch), fd_(fd), stream_(ssl) {}

  IoResult Handshake() override;
  IoResult Read(void* buf, size_t len) override;
  IoResult Write(const void* buf, size_t len) override;
  IoResult ShutdownWrite() override;
  void CloseNotify() override;
  bool CanRead() const override { return stream_.pending() > 0 || Ready(read_wait_); }
  bool CanWrite() const override { return Ready(write_wait_); }

 private:
  enum class Wait { kRead, kWrite };
  bool Ready(Wait w) const { return w == Wait::kRead ? watch_.readable() : watch_.writable(); }
  // Maps a TlsResult to an IoResult; for kWant* clears the watch flag the
  // call waits on and records it in `*wait`.
  IoResult Map(const TlsResult& r, Wait* wait, const char* what);

  EventLoop& loop_;
  FdWatch& watch_;
  int fd_;
  TlsStream stream_;
  Wait read_wait_ = Wait::kRead;
  Wait write_wait_ = Wait::kWrite;
  Wait shutdown_wait_ = Wait::kWrite;
  bool close_notify_done_ = false;
};

}  // namespace zrelay::load
