// UringPoller: readiness through the loop's io_uring (see poller.h).
//
// Each watched fd has a multishot POLL_ADD (POLLIN|POLLOUT|POLLRDHUP, edge
// triggered: one completion per wakeup, as EPOLLET). Its request lives in a
// small heap slot (a UringOwnedOp), not in the watch: the kernel may still
// complete it after the watch is gone, so Remove() only detaches the slot
// and cancels the request, and the slot frees itself at the final
// completion. The poll also
// holds the file: a closed fd's socket is released (FIN sent) when the
// cancel runs, at the start of the next turn.
//
// Wait() is the ring's single io_uring_enter of the turn: it submits the
// polls and cancels queued since the last one, and anything else queued on
// the ring, then waits for the first completion or the timeout.
#pragma once

#include <memory>

#include "engine/poller.h"
#include "engine/uring_ring.h"

namespace zrelay {

class UringPoller final : public Poller {
 public:
  // Errors as UringRing::Create's (io_uring unavailable, kernel too old).
  static Result<std::unique_ptr<Poller>> Create();
  // Any thread: the ring's exit cancels the polls still armed.
  ~UringPoller() override;

  IoBackend backend() const override { return IoBackend::kUring; }
  UringRing* uring() override { return ring_.get(); }
  Status Add(FdWatch& watch) override;
  void Remove(FdWatch& watch, bool fd_closing) override;
  void Wait(Duration max_wait, Sink& sink) override;

 private:
  class Slot;
  explicit UringPoller(std::unique_ptr<UringRing> ring);
  void Arm(Slot& slot);
  void Completed(Slot& slot, int res, uint32_t flags);

  std::unique_ptr<UringRing> ring_;  // owns the slots (UringOwnedOp)
  Sink* sink_ = nullptr;             // set during Wait()
};

}  // namespace zrelay
