#include "relay/tls_transport.h"

#include <sys/socket.h>

#include <algorithm>

namespace zrelay {

IoResult TlsTransport::Map(const TlsResult& r, Wait& wait) {
  switch (r.status) {
    case TlsIo::kOk:
      return {IoStatus::kOk, r.bytes, 0};
    case TlsIo::kWantRead:
      watch_.clear_readable();
      wait = Wait::kReadable;
      return {IoStatus::kWouldBlock, 0, 0};
    case TlsIo::kWantWrite:
      watch_.clear_writable();
      wait = Wait::kWritable;
      return {IoStatus::kWouldBlock, 0, 0};
    case TlsIo::kEof:
      return {IoStatus::kEof, 0, 0};
    case TlsIo::kTruncated:
      // The peer's direction ended without close_notify. Its EOF is passed
      // on like any other, and the pair reports the truncation when it
      // closes (a cut-off response must not look complete to the embedder).
      truncated_ = true;
      detail_ = r.detail;
      return {IoStatus::kEof, 0, 0};
    case TlsIo::kError:
      break;
  }
  detail_ = r.detail;
  return {IoStatus::kError, 0, r.sys_errno};
}

IoResult TlsTransport::Handshake() {
  IoResult r = Map(tls_.Handshake(), handshake_wait_);
  // A peer that hangs up mid-handshake is a failed handshake, not an EOF.
  if (r.status == IoStatus::kEof) return {IoStatus::kError, 0, ECONNRESET};
  return r;
}

IoResult TlsTransport::Read(RingBuffer& ring, size_t max) {
  struct iovec span = ring.FreeSpan();
  IoResult r = Map(tls_.Read(span.iov_base, std::min(span.iov_len, max)), read_wait_);
  if (r.status == IoStatus::kOk) ring.Commit(r.bytes);
  return r;
}

IoResult TlsTransport::Write(RingBuffer& ring) {
  // After a kWouldBlock the ring still starts with the same bytes, which is
  // what OpenSSL requires of a retried SSL_write.
  struct iovec span = ring.DataSpan();
  IoResult r = Map(tls_.Write(span.iov_base, span.iov_len), write_wait_);
  if (r.status == IoStatus::kOk) ring.Consume(r.bytes);
  return r;
}

IoResult TlsTransport::ShutdownWrite() {
  // A peer that ended without close_notify left OpenSSL unable to send one
  // (ssl/tls_stream.h): the FIN alone ends our side.
  if (!close_notify_sent_ && !truncated_) {
    IoResult r = Map(tls_.Shutdown(), shutdown_wait_);
    if (r.status != IoStatus::kOk) return r;
    close_notify_sent_ = true;
  }
  // close_notify, then FIN: peers that read to EOF need both.
  SysResult s = sys_.Shutdown(watch_.fd(), SHUT_WR);
  if (s.ok() || s.err == ENOTCONN) return {};
  return {IoStatus::kError, 0, s.err};
}

}  // namespace zrelay
