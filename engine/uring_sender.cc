#include "engine/uring_sender.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "engine/check.h"
#include "engine/event_loop.h"
#include "engine/uring_ring.h"

namespace zrelay {

// One send's copy of its bytes and its request. Outlives its sender when
// the sender goes first (detached: sender_ == nullptr).
class UringSender::Pending final : public UringOwnedOp {
 public:
  Pending(UringRing& ring, UringSender* sender, size_t len)
      : UringOwnedOp(ring), sender_(sender), len_(len), bytes_(new char[len]) {}

  char* bytes() { return bytes_.get(); }
  void Detach() { sender_ = nullptr; }

 private:
  void Completed(int res, uint32_t /*flags*/) override {
    if (sender_ != nullptr) sender_->Done(res, len_);
  }
  bool Finish() override { return true; }

  UringSender* sender_;
  size_t len_;
  std::unique_ptr<char[]> bytes_;
};

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

void UringSender::Done(int res, size_t len) {
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
