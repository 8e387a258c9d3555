#include "relay/plain_transport.h"

#include <sys/socket.h>

namespace zrelay {

IoResult PlainTransport::Read(RingBuffer& ring) {
  struct iovec iov[2];
  int n = ring.FreeIovecs(iov);
  size_t offered = ring.free_space();
  SysResult r = sys_.Readv(watch_.fd(), iov, n);
  if (r.rc > 0) {
    ring.Commit(static_cast<size_t>(r.rc));
    // A short read from a stream socket found its receive queue empty, and
    // every byte queued after that wakes epoll again (sk_data_ready runs per
    // arrival, and EPOLLET re-reports on every wake-up), so the socket counts
    // as drained without the extra read that would only say EAGAIN: a third
    // of the syscalls of small request/response traffic (HAProxy's raw_sock
    // does the same with epoll). Not when FIN was seen: the 0 must be read.
    if (static_cast<size_t>(r.rc) < offered && !watch_.read_hup()) watch_.clear_readable();
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.rc == 0) return {IoStatus::kEof, 0, 0};
  if (r.would_block()) {
    watch_.clear_readable();
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.err};
}

IoResult PlainTransport::Write(RingBuffer& ring) {
  struct iovec iov[2];
  int n = ring.DataIovecs(iov);
  SysResult r = sys_.Writev(watch_.fd(), iov, n);
  if (r.rc > 0) {
    ring.Consume(static_cast<size_t>(r.rc));
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.would_block()) {
    watch_.clear_writable();
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.rc == 0 ? EPIPE : r.err};
}

IoResult PlainTransport::ShutdownWrite() {
  SysResult r = sys_.Shutdown(watch_.fd(), SHUT_WR);
  // ENOTCONN: the peer already reset; the read side will report it.
  if (r.ok() || r.err == ENOTCONN) return {};
  return {IoStatus::kError, 0, r.err};
}

}  // namespace zrelay
