// Poller: how an EventLoop learns that its fds are ready. Two backends give
// the loop the same edge-triggered readiness (EventLoop's FdWatch flags):
//   - EpollPoller: one epoll instance, EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET
//     per fd, epoll_wait with the timer wheel's timeout.
//   - UringPoller: one io_uring per loop, a multishot POLL_ADD per fd (edge
//     triggered like EPOLLET: one completion per wakeup of the socket), and
//     the wait in the same io_uring_enter that submits every request queued
//     during the turn. Its ring is the loop's: transports that issue their
//     own requests (recv, send, splice) queue them on it, so one kernel
//     entry per turn carries them all.
// The loop owns its poller and calls it from its own thread only.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/clock.h"
#include "engine/io_backend.h"
#include "engine/result.h"

namespace zrelay {

class FdWatch;
class UringRing;

class Poller {
 public:
  // Receives the readiness of one watch: `events` is an EPOLL* mask (poll(2)
  // and epoll share the bit values).
  class Sink {
   public:
    virtual void Deliver(FdWatch& watch, uint32_t events) = 0;

   protected:
    ~Sink() = default;
  };

  // The backend `io` names (kAuto: the best one this process can have).
  // Errors name the backend and why it is unavailable.
  static Result<std::unique_ptr<Poller>> Create(IoBackend io);
  virtual ~Poller() = default;

  virtual IoBackend backend() const = 0;
  // Non-null for kUring: the loop's ring, for requests of the loop's thread.
  virtual UringRing* uring() { return nullptr; }

  // Starts reporting `watch.fd()`'s readiness (the watch's fd is set).
  virtual Status Add(FdWatch& watch) = 0;
  // Stops it. `fd_closing`: the caller closes the fd right after and holds
  // its only reference (epoll forgets a closed fd by itself; io_uring holds
  // the file until its poll is cancelled, so it cancels either way).
  virtual void Remove(FdWatch& watch, bool fd_closing) = 0;

  // Waits up to `max_wait` (zero: not at all; Duration::max(): no limit) and
  // delivers what is ready. A watch removed by an earlier delivery of the
  // same wait gets nothing more.
  virtual void Wait(Duration max_wait, Sink& sink) = 0;
};

}  // namespace zrelay
