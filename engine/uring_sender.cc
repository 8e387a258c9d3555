#include "engine/uring_sender.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/check.h"
#include "engine/event_loop.h"
#include "engine/uring_ring.h"

namespace zrelay {

UringSender::~UringSender() {
  if (pending_ != nullptr) pending_->Detach();
}

bool UringSender::available() const {
  return watch_.loop() != nullptr && watch_.loop()->uring() != nullptr;
}

void UringSender::Send(const struct iovec* iov, int count, size_t total) {
  ZR_CHECK(available() && !busy() && error_ == 0 && total > 0 && total <= kMaxBytes,
           "UringSender::Send of %zu bytes in the wrong state", total);
  UringRing& ring = *watch_.loop()->uring();
  auto* pending = new Pending(ring, this, total);
  size_t at = 0;
  for (int i = 0; i < count && at < total; ++i) {
    const size_t n = std::min(iov[i].iov_len, total - at);
    std::memcpy(pending->bytes() + at, iov[i].iov_base, n);
    at += n;
  }
  pending_ = pending;
  ring.SendAll(pending->op, watch_.fd(), pending->bytes(), total);
}

void UringSender::Done(int res, Pending& pending) {
  const size_t len = pending.len();
  pending_ = nullptr;
  // MSG_WAITALL: short only when the socket failed part way.
  if (res < 0) {
    error_ = -res;
  } else if (static_cast<size_t>(res) < len) {
    error_ = EPIPE;
  }
  if (EventLoop* loop = watch_.loop()) loop->Notify(watch_, EPOLLOUT);
}

}  // namespace zrelay
