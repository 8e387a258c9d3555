#include "tools/load/tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

namespace zrelay::load {
namespace {

bool IsIpLiteral(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// The target's IP as text, without port or brackets ("" for unix sockets).
std::string IpOf(const Address& address) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (address.family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(address.sockaddr());
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
  } else if (address.family() == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr());
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

}  // namespace

Result<std::unique_ptr<TlsClient>> TlsClient::Create(const Config& config) {
  TlsClientConfig tls;
  tls.verify = !config.tls_insecure;
  tls.ca_file = config.tls_ca;
  if (!config.sni.empty()) {
    tls.sni = config.sni;
  } else if (!config.target_host.empty() && !IsIpLiteral(config.target_host)) {
    tls.sni = config.target_host;
  } else {
    tls.verify_hostname = IpOf(config.target);
  }
  auto ctx = BuildClientContext(tls);
  if (!ctx.ok()) {
    const char* flag = !config.tls_ca.empty() ? "--tls-ca"
                       : !config.sni.empty()  ? "--sni"
                                              : "--tls";
    return Error(ctx.error().code(), std::string(flag) + ": " + ctx.error().message());
  }
  return std::unique_ptr<TlsClient>(new TlsClient(std::move(ctx).value()));
}

std::unique_ptr<Transport> TlsClient::Wrap(EventLoop& loop, FdWatch& watch, int fd) const {
  SSL* ssl = NewClientSsl(ctx_, fd);
  // nullptr only when OpenSSL cannot allocate: the transport then fails its
  // handshake with that message, counted like any other error.
  return std::make_unique<TlsTransport>(loop, watch, fd, ssl);
}

IoResult TlsTransport::Map(const TlsResult& r, Wait* wait, const char* what) {
  switch (r.status) {
    case TlsIo::kOk:
      return IoResult::Ok(r.bytes);
    case TlsIo::kWantRead:
      watch_.clear_readable();
      *wait = Wait::kRead;
      return IoResult::Blocked();
    case TlsIo::kWantWrite:
      watch_.clear_writable();
      *wait = Wait::kWrite;
      return IoResult::Blocked();
    case TlsIo::kEof:
      return IoResult::Eof();
    case TlsIo::kTruncated:
      return IoResult::Fail(r.sys_errno, std::string("TLS ") + what +
                                             ": the peer closed without close_notify" +
                                             (r.detail.empty() ? "" : " (" + r.detail + ")"));
    case TlsIo::kError:
      break;
  }
  return IoResult::Fail(r.sys_errno, std::string("TLS ") + what + ": " + r.detail);
}

IoResult TlsTransport::Handshake() {
  if (stream_.ssl() == nullptr) return IoResult::Fail(ENOMEM, "TLS: cannot create an SSL object");
  Wait wait = Wait::kRead;
  IoResult r = Map(stream_.Handshake(), &wait, "handshake");
  return r.status == IoStatus::kOk ? IoResult::Ok(0) : r;
}

IoResult TlsTransport::Read(void* buf, size_t len) {
  IoResult r = Map(stream_.Read(buf, len), &read_wait_, "read");
  if (r.status != IoStatus::kBlocked) read_wait_ = Wait::kRead;
  return r;
}

IoResult TlsTransport::Write(const void* buf, size_t len) {
  IoResult r = Map(stream_.Write(buf, len), &write_wait_, "write");
  if (r.status != IoStatus::kBlocked) write_wait_ = Wait::kWrite;
  return r;
}

IoResult TlsTransport::ShutdownWrite() {
  if (!close_notify_done_) {
    TlsResult r = stream_.Shutdown();
    if (r.status == TlsIo::kWantRead || r.status == TlsIo::kWantWrite) {
      return Map(r, &write_wait_, "shutdown");
    }
    if (r.status == TlsIo::kError) return Map(r, &shutdown_wait_, "shutdown");
    // kOk, or kTruncated (the peer already ended uncleanly: no close_notify
    // can go out, but the TCP half-close still can).
    close_notify_done_ = true;
  }
  SysResult s = loop_.sys().Shutdown(fd_, SHUT_WR);
  if (s.ok() || s.err == ENOTCONN) return IoResult::Ok(0);
  return IoResult::Fail(s.err, "shutdown: " + ErrnoText(s.err));
}

void TlsTransport::CloseNotify() {
  if (close_notify_done_ || !stream_.handshake_done()) return;
  close_notify_done_ = true;
  (void)stream_.Shutdown();  // best effort: the socket closes right after
}

}  // namespace zrelay::load
