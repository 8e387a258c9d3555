#include "relay/plain_transport.h"

#include <sys/socket.h>

#include <algorithm>

namespace zrelay {

IoResult PlainTransport::Read(RingBuffer& ring, size_t max) {
  if (receiving() && !streaming_) return Receive(ring, max);
  struct iovec iov[2];
  int n = ring.FreeIovecs(iov);
  size_t offered = std::min(ring.free_space(), max);
  // Trim the iovecs to `max`: the second half only takes what the first
  // leaves of it.
  iov[0].iov_len = std::min(iov[0].iov_len, offered);
  if (n == 2) {
    iov[1].iov_len = std::min(iov[1].iov_len, offered - iov[0].iov_len);
    if (iov[1].iov_len == 0) n = 1;
  }
  SysResult r = sys_.Readv(watch_.fd(), iov, n);
  if (r.rc > 0) {
    ring.Commit(static_cast<size_t>(r.rc));
    // A short read from a stream socket found its receive queue empty, and
    // every byte queued after that wakes epoll again (sk_data_ready runs per
    // arrival, and EPOLLET re-reports on every wake-up), so the socket counts
    // as drained without the extra read that would only say EAGAIN: a third
    // of the syscalls of small request/response traffic (HAProxy's raw_sock
    // does the same with epoll). Not when FIN was seen: the 0 must be read.
    if (static_cast<size_t>(r.rc) < offered) {
      if (!watch_.read_hup()) watch_.clear_readable();
      streaming_ = false;  // drained: the next small message goes through the ring
    }
    return {IoStatus::kOk, static_cast<size_t>(r.rc), 0};
  }
  if (r.rc == 0) return {IoStatus::kEof, 0, 0};
  if (r.would_block()) {
    watch_.clear_readable();
    streaming_ = false;
    return {IoStatus::kWouldBlock, 0, 0};
  }
  return {IoStatus::kError, 0, r.err};
}

IoResult PlainTransport::Receive(RingBuffer& ring, size_t max) {
  if (receiver_.buffered() > 0) {
    struct iovec iov[2];
    const int n = ring.FreeIovecs(iov);
    const size_t got = receiver_.Take(iov, n, std::min(ring.free_space(), max));
    ring.Commit(got);
    // A full-sized receive: more is queued; readv takes it from here.
    if (receiver_.buffered() == 0 && receiver_.filled()) streaming_ = true;
    return {IoStatus::kOk, got, 0};
  }
  if (receiver_.error() != 0) return {IoStatus::kError, 0, receiver_.error()};
  if (receiver_.eof()) return {IoStatus::kEof, 0, 0};
  if (!receiver_.busy()) {
    // The receive takes this readiness: the watch says readable again when
    // new bytes come, or the receive's completion does when it filled up.
    receiver_.Receive(std::min(max, UringReceiver::kMaxBytes));
    watch_.clear_readable();
  }
  return {IoStatus::kWouldBlock, 0, 0};
}

IoResult PlainTransport::WaitForSender() const {
  if (sender_.error() != 0) return {IoStatus::kError, 0, sender_.error()};
  if (sender_.busy()) return {IoStatus::kWouldBlock, 0, 0};
  return {};
}

IoResult PlainTransport::Write(RingBuffer& ring) {
  if (IoResult wait = WaitForSender(); wait.status != IoStatus::kOk) return wait;
  struct iovec iov[2];
  int n = ring.DataIovecs(iov);
  // Through the ring: the bytes are the sender's now, as if the socket had
  // taken them (a failure shows at the next write or shutdown, as a reset
  // would after send(2)).
  const size_t size = ring.size();
  if (size <= UringSender::kMaxBytes && sender_.available()) {
    sender_.Send(iov, n, size);
    ring.Consume(size);
    return {IoStatus::kOk, size, 0};
  }
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
  if (IoResult wait = WaitForSender(); wait.status != IoStatus::kOk) return wait;
  SysResult r = sys_.Shutdown(watch_.fd(), SHUT_WR);
  // ENOTCONN: the peer already reset; the read side will report it.
  if (r.ok() || r.err == ENOTCONN) return {};
  return {IoStatus::kError, 0, r.err};
}

}  // namespace zrelay
