#include "engine/uring_poller.h"

#include <poll.h>
#include <sys/epoll.h>

#include "engine/check.h"
#include "engine/event_loop.h"

namespace zrelay {
namespace {

constexpr unsigned kPollEvents = POLLIN | POLLOUT | POLLRDHUP;
// poll(2) and epoll share these bits; the sink takes an EPOLL* mask.
static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT && POLLRDHUP == EPOLLRDHUP &&
              POLLERR == EPOLLERR && POLLHUP == EPOLLHUP);
// Ring size: polls and cancels of one turn; a full SQ is flushed, not refused.
constexpr unsigned kRingEntries = 256;

}  // namespace

// One watched fd's poll request. Frees itself at its final completion once
// detached (watch == nullptr); Remove() frees it at once when nothing is in
// flight and no delivery is running on it.
class UringPoller::Slot final : public UringOwnedOp {
 public:
  Slot(UringPoller* poller, UringRing& ring) : UringOwnedOp(ring), poller_(poller) {}

  FdWatch* watch = nullptr;
  int fd = -1;
  bool delivering = false;  // inside Completed(): it is freed after, not during

 private:
  void Completed(int res, uint32_t flags) override { poller_->Completed(*this, res, flags); }
  bool Finish() override { return watch == nullptr; }

  UringPoller* poller_;
};

Result<std::unique_ptr<Poller>> UringPoller::Create() {
  Result<std::unique_ptr<UringRing>> ring = UringRing::Create(kRingEntries);
  if (!ring.ok()) return ring.error();
  return std::unique_ptr<Poller>(new UringPoller(std::move(ring.value())));
}

UringPoller::UringPoller(std::unique_ptr<UringRing> ring) : ring_(std::move(ring)) {}

// Often on another thread than the loop's (a worker pool destroys its loops
// after joining them), where this single-issuer ring may not submit: the
// ring deletes the slots still alive, and its exit cancels their polls.
UringPoller::~UringPoller() = default;

Status UringPoller::Add(FdWatch& watch) {
  auto* slot = new Slot(this, *ring_);
  slot->watch = &watch;
  slot->fd = watch.fd();
  watch.poller_token_ = reinterpret_cast<uintptr_t>(slot);
  Arm(*slot);
  return Status::Ok();  // a bad fd shows as the poll's error completion
}

void UringPoller::Arm(Slot& slot) { ring_->PollMultishot(slot.op, slot.fd, kPollEvents); }

void UringPoller::Remove(FdWatch& watch, bool /*fd_closing*/) {
  auto* slot = reinterpret_cast<Slot*>(watch.poller_token_);
  ZR_CHECK(slot != nullptr && slot->watch == &watch, "io_uring poll slot lost its watch");
  slot->watch = nullptr;
  if (slot->op.in_flight()) {
    ring_->Cancel(slot->op);  // freed at its final completion
  } else if (!slot->delivering) {
    delete slot;
  }
}

void UringPoller::Wait(Duration max_wait, Sink& sink) {
  sink_ = &sink;
  ring_->RunOnce(max_wait);
  sink_ = nullptr;
}

void UringPoller::Completed(Slot& slot, int res, uint32_t /*flags*/) {
  if (slot.watch == nullptr) return;
  // A failed poll (a bad fd) shows as an error, so the owner tries its fd
  // and learns the cause; it is not armed again.
  const uint32_t events = res >= 0 ? static_cast<uint32_t>(res) : (EPOLLERR | EPOLLHUP);
  slot.delivering = true;
  sink_->Deliver(*slot.watch, events);
  slot.delivering = false;
  // A multishot poll can end while its fd is still watched (the CQ
  // overflowed): arm it again, and take a fresh look at the fd meanwhile.
  if (slot.watch != nullptr && res >= 0 && !slot.op.in_flight()) Arm(slot);
}

}  // namespace zrelay
