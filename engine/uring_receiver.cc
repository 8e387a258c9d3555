#include "engine/uring_receiver.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/check.h"
#include "engine/event_loop.h"
#include "engine/uring_ring.h"

namespace zrelay {

UringReceiver::~UringReceiver() {
  if (pending_ != nullptr) pending_->Detach();
}

bool UringReceiver::available() const {
  return watch_.loop() != nullptr && watch_.loop()->uring() != nullptr;
}

void UringReceiver::Receive(size_t max) {
  ZR_CHECK(available() && !busy() && !has_result() && max > 0 && max <= kMaxBytes,
           "UringReceiver::Receive of %zu bytes in the wrong state", max);
  UringRing& ring = *watch_.loop()->uring();
  pending_ = new Pending(ring, this, max);
  ring.RecvNow(pending_->op, watch_.fd(), pending_->bytes(), max);
}

size_t UringReceiver::Take(const struct iovec* iov, int count, size_t max) {
  size_t copied = 0;
  for (int i = 0; i < count && copied < max && buffered() > 0; ++i) {
    const size_t n = std::min({iov[i].iov_len, max - copied, buffered()});
    std::memcpy(iov[i].iov_base, bytes_.get() + taken_, n);
    taken_ += n;
    copied += n;
  }
  if (buffered() == 0) {
    bytes_.reset();  // an idle socket holds no buffer
    len_ = taken_ = 0;
  }
  return copied;
}

void UringReceiver::Done(int res, Pending& pending) {
  pending_ = nullptr;
  filled_ = res > 0 && static_cast<size_t>(res) == pending.len();
  // EAGAIN: the bytes that made the socket readable were gone (a receive
  // before took them); the watch's next readiness says when to try again.
  if (res == -EAGAIN) return;
  uint32_t events = EPOLLIN;
  if (res > 0) {
    bytes_ = pending.TakeBytes();
    len_ = static_cast<size_t>(res);
    taken_ = 0;
    // A short receive emptied the socket's queue: the watch stays not
    // readable until new bytes wake it (the handler still runs, for these).
    // Not when FIN was seen: its wake-up is spent, and the 0 must be read.
    if (!filled_ && !watch_.read_hup()) events = 0;
  } else if (res == 0) {
    eof_ = true;
  } else {
    error_ = -res;
  }
  if (EventLoop* loop = watch_.loop()) loop->Notify(watch_, events);
}

}  // namespace zrelay
