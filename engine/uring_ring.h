// UringRing: one io_uring instance, driven by exactly one thread.
//
// The io_uring counterpart of EventLoop's epoll instance. Operations are
// queued as SQEs by the prep methods below and all go to the kernel in ONE
// io_uring_submit_and_wait_timeout per RunOnce(), which also waits for the
// first completion (or the timeout: the caller passes the timer wheel's next
// expiry). Every CQE is then dispatched to its UringOp's handler.
//
// Setup flags, best first (Create() falls back on EINVAL and reports what it
// got): SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1+: completion work runs only
// inside our own io_uring_enter, never as an interrupt of the thread), then
// SINGLE_ISSUER | COOP_TASKRUN, COOP_TASKRUN, none. The ring starts disabled
// and binds to the thread that first submits (RunOnce or a full-SQ flush),
// like EventLoop::Run: it may be created on another thread, but once bound,
// a submit from any other thread is a bug (SINGLE_ISSUER: -EEXIST, checked).
//
// Operations and lifetime (the rules the ZR_CHECKs enforce):
//   - A UringOp is embedded in its owner (no allocation per operation); the
//     SQE's user_data is the op's address. An op carries at most one request
//     at a time: preparing an op that is in flight is a bug.
//   - An op is in flight from its prep call until the CQE that ends it: a
//     one-shot op's only CQE, or a multishot op's CQE without
//     IORING_CQE_F_MORE. in_flight() is cleared BEFORE the handler runs, so
//     the handler may re-arm the same op.
//   - Buffers, addresses and fds given to a prep call belong to the kernel
//     until the op's final CQE: they must stay valid and unchanged.
//   - The owner of an op must not be destroyed (nor its buffers freed) while
//     the op is in flight, not even from inside a completion handler: the
//     kernel still holds the address and later CQEs would reach freed memory.
//     To stop an op early, Cancel() it and keep running RunOnce() until its
//     final CQE arrives (res == -ECANCELED, or the op's own result when it
//     completed first). Only then may the owner die. ~UringOp checks this.
//   - The ring must outlive its ops: destroying a ring with ops in flight is
//     a bug (checked), since their owners would never learn the outcome.
//   - Cancel() itself takes no op slot; its own CQE is consumed by the ring.
//
// A full SQ is never a failure: the prep call submits what is queued (counted
// in sq_full_flushes) and takes the freed slot.
//
// Every method but Create() is for the ring's thread only.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay {

class UringOp;
class UringRing;

class UringHandler {
 public:
  virtual ~UringHandler() = default;
  // The kernel completed a request of `op`: `res` is its result (a byte count
  // or fd, or -errno), `flags` the raw IORING_CQE_F_* bits (F_MORE: a
  // multishot op stays armed). Runs on the ring's thread, inside RunOnce();
  // new ops queued here go to the kernel with the next RunOnce().
  virtual void OnCompletion(UringOp& op, int res, uint32_t flags) = 0;
};

// One operation slot, embedded in its owner. Not movable: the kernel holds
// its address while it is in flight.
class UringOp {
 public:
  explicit UringOp(UringHandler* handler) : handler_(handler) {}
  ~UringOp();
  UringOp(const UringOp&) = delete;
  UringOp& operator=(const UringOp&) = delete;

  bool in_flight() const { return in_flight_; }

 private:
  friend class UringRing;
  UringHandler* handler_;
  bool in_flight_ = false;
};

// An operation that owns itself: a heap object that may outlive whoever
// started it (a poll whose watch is gone, a send whose pair has closed), so
// its kernel request never points at freed memory. It frees itself once
// Finish() says so at a final completion; the ring deletes the ones still
// alive when it goes (their requests die with it).
class UringOwnedOp : public UringHandler {
 public:
  explicit UringOwnedOp(UringRing& ring);
  ~UringOwnedOp() override;
  UringOwnedOp(const UringOwnedOp&) = delete;
  UringOwnedOp& operator=(const UringOwnedOp&) = delete;

  UringRing& ring() { return ring_; }
  UringOp op{this};

 protected:
  // At a completion that ended the request (op not in flight, not re-armed
  // by the handler), the owner decides: true deletes this object.
  virtual bool Finish() = 0;

 private:
  friend class UringRing;
  void OnCompletion(UringOp&, int res, uint32_t flags) final;
  // The request completed: res and flags as UringHandler's.
  virtual void Completed(int res, uint32_t flags) = 0;

  UringRing& ring_;
  UringOwnedOp* prev_ = nullptr;
  UringOwnedOp* next_ = nullptr;
};

struct UringStats {
  uint64_t submits = 0;          // calls into the kernel: RunOnce() plus SQ-full flushes
  uint64_t sqes = 0;             // requests queued (cancels included)
  uint64_t cqes = 0;             // completions reaped (those of cancels included)
  uint64_t sq_full_flushes = 0;  // prep calls that found the SQ full and submitted first
};

// io_uring_queue_init_params, or a test's stand-in that fails.
using UringInitFn = int (*)(unsigned entries, struct io_uring* ring,
                            struct io_uring_params* params);

class UringRing {
 public:
  // A ring with `entries` SQ slots (1 to 32768, rounded up to a power of
  // two; the CQ gets twice as many). Fails with a message naming the cause: io_uring disabled or
  // filtered ("io_uring unavailable: ... (kernel.io_uring_disabled=2?)"), a
  // kernel too old for a feature zrelay relies on, or an operation it lacks.
  static Result<std::unique_ptr<UringRing>> Create(
      unsigned entries, UringInitFn init = &io_uring_queue_init_params);
  ~UringRing();
  UringRing(const UringRing&) = delete;
  UringRing& operator=(const UringRing&) = delete;

  // Multishot accept on a listening socket: one CQE per connection (res is
  // the new non-blocking, close-on-exec fd, or -errno), F_MORE while armed.
  void Accept(UringOp& op, int listen_fd);
  // connect(2) of a non-blocking socket: res 0 or -errno (-ECONNREFUSED).
  // `addr` must stay valid until the CQE.
  void Connect(UringOp& op, int fd, const struct sockaddr* addr, socklen_t len);
  // recv(2) into `buf`: res is the byte count, 0 at EOF, or -errno. The
  // buffer is pinned until the CQE: to wait for data without pinning one,
  // PollAdd(POLLIN) first and Recv once it fires.
  void Recv(UringOp& op, int fd, void* buf, size_t len);
  // Recv() with MSG_DONTWAIT: never waits for data (res is -EAGAIN when
  // none is queued), so the buffer is the kernel's only while it runs.
  void RecvNow(UringOp& op, int fd, void* buf, size_t len);
  // send(2) with MSG_NOSIGNAL (a peer that is gone is -EPIPE, not SIGPIPE).
  void Send(UringOp& op, int fd, const void* buf, size_t len);
  // Send() with MSG_WAITALL: the kernel keeps sending (waiting for room as
  // needed) until all `len` bytes went or an error: res is len, or short /
  // -errno only when the socket failed.
  void SendAll(UringOp& op, int fd, const void* buf, size_t len);
  // splice(2) between a socket and a pipe (either way), SPLICE_F_MOVE |
  // SPLICE_F_NONBLOCK. The kernel runs splice in its worker threads, where a
  // splice that waits would hold a thread: the pipe must be O_NONBLOCK or
  // the flag covers it, and the socket must be O_NONBLOCK (TCP's splice
  // reads the socket's own flag, not SPLICE_F_NONBLOCK). Then res is -EAGAIN
  // when nothing can move yet: wait with PollAdd, then splice again.
  void Splice(UringOp& op, int fd_in, int fd_out, size_t len);
  // close(2) of `fd`: res 0 or -errno. The caller gives `fd` up with this
  // call: the kernel closes it when the request runs.
  void Close(UringOp& op, int fd);
  // Close() with nobody to tell: its completion is dropped. Requests queued
  // before it for the same fd have taken their file by then (the kernel
  // issues a submission's requests in order), so it never cuts them off.
  void CloseDetached(int fd);
  // Readiness of `fd` for `events` (POLLIN, POLLOUT, ...): res is the
  // revents mask. One-shot, or multishot (F_MORE while armed).
  void PollAdd(UringOp& op, int fd, unsigned events);
  void PollMultishot(UringOp& op, int fd, unsigned events);
  // Asks the kernel to cancel `op`'s request. A no-op when `op` is not in
  // flight. Its final CQE still comes, in a later RunOnce (see the rules).
  void Cancel(UringOp& op);

  // Gives `op` up without its final completion: only for an owner that
  // destroys the ring next (io_uring_queue_exit cancels every request, and
  // nothing is dispatched after it). Unlike Cancel(), it needs no further
  // RunOnce, so it works from any thread, after the ring's own is gone.
  void Abandon(UringOp& op);

  // Submits every queued SQE, without waiting and without dispatching a
  // completion. The kernel issues them in order and each takes its file
  // then, so the fds they name may be closed after this call.
  void SubmitQueued();
  // Submits every queued SQE and waits up to `max_wait` (zero: do not wait)
  // for a completion, then dispatches all the completions that are there.
  // Returns how many CQEs reached handlers.
  int RunOnce(Duration max_wait);

  // IORING_SETUP_* flags the ring was created with (R_DISABLED left out: it
  // only defers the binding to a thread).
  unsigned setup_flags() const { return setup_flags_; }
  // "SINGLE_ISSUER|DEFER_TASKRUN", ..., or "none".
  std::string SetupFlagsName() const;
  unsigned sq_entries() const { return ring_.sq.ring_entries; }
  // Ops whose final CQE has not come yet.
  size_t in_flight() const { return in_flight_; }
  // Calls into the kernel so far (stats().submits, readable without a copy).
  uint64_t submits() const { return stats_.submits; }
  const UringStats& stats() const { return stats_; }

 private:
  UringRing() = default;
  // A free SQE for `op` (nullptr: one that reports no completion), flushing
  // a full SQ first.
  struct io_uring_sqe* NextSqe(UringOp* op);
  void Dispatch(const struct io_uring_cqe& cqe);
  // Enables the ring (created with R_DISABLED) on its first submit, which
  // makes the calling thread its single issuer.
  void BindToThisThread();

  friend class UringOwnedOp;
  UringOwnedOp* owned_ = nullptr;  // every UringOwnedOp alive (intrusive list)
  struct io_uring ring_ {};
  bool live_ = false;     // ring_ was set up (io_uring_queue_exit is due)
  bool enabled_ = false;  // io_uring_enable_rings done: bound to a thread
  unsigned setup_flags_ = 0;
  size_t in_flight_ = 0;
  UringStats stats_;
};

}  // namespace zrelay
